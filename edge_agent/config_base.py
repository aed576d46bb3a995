"""Building blocks shared by every config model (here so rule and analyzer configs can
live beside their code without importing the whole agent config)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Ids become MQTT topic levels: no '/', '+', '#', spaces or empty strings."""


class StrictModel(BaseModel):
    """Unknown keys are errors; loaded config never changes at run time."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Upper bounds of the config's durations: a slip (``stats_interval_s: 1e300``, ``.inf``) is
# a config error naming the field, not an agent that never sends stats.
MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0
WEEK_S = 7 * DAY_S
MONTH_S = 30 * DAY_S

Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
UnitFloat = Annotated[float, Field(ge=0.0, le=1.0)]


def mqtt_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be an MQTT string (a topic, client id, user name), or None.
    MQTT forbids these characters; the broker (mosquitto checks them all) takes a packet
    holding one as malformed and drops the connection that sent it."""
    for char in text:
        code = ord(char)
        if (
            code <= 0x1F
            or 0x7F <= code <= 0x9F
            or 0xD800 <= code <= 0xDFFF
            or 0xFDD0 <= code <= 0xFDEF
            or code & 0xFFFF in (0xFFFE, 0xFFFF)
        ):
            return f"it holds U+{code:04X}, which MQTT does not allow (a broker drops the link)"
    return None


def repeated_names(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    return sorted({n for n in names if names.count(n) > 1})
