"""JSON from outside (command payloads, the page's saves, a renewal answer): read only
what every parser reads the same way, never deeper than a limit, and quoted back short.

``remote`` re-exports these names; they live here so the page and the renewer need not
import the command handler.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

__all__ = [
    "MAX_ECHO_CHARS",
    "AmbiguousJSON",
    "finite",
    "loads_strict",
    "nests_deeper_than",
    "shown",
]

MAX_ECHO_CHARS = 64
"""How much of the request's own text (a command name, a key) a reply or log line repeats."""


def shown(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters for echoing back, saying how long it was.

    >>> shown("x" * 100, 8)
    'xxxxxxxx… (100 characters)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def nests_deeper_than(text: str, limit: int) -> bool:
    """Whether JSON ``text`` opens more than ``limit`` arrays/objects inside each other
    (brackets inside strings do not count). Checked before parsing: the parser recurses."""
    if text.count("[") + text.count("{") <= limit:
        return False  # the usual case: too few brackets to be that deep
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


class AmbiguousJSON(ValueError):
    """A JSON object that Python would read one way and another parser another way."""


def _distinct_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` for :func:`loads_strict`: a key given twice, or a key that
    is not Unicode text (a lone UTF-16 surrogate), is refused rather than resolved."""
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise AmbiguousJSON(f"key {shown(key)!r} given twice in one object")
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            raise AmbiguousJSON(
                f"key {shown(key)!r} is not valid Unicode text (a lone surrogate)"
            ) from None
        result[key] = value
    return result


def loads_strict(text: str) -> object:
    """``json.loads`` that refuses (``AmbiguousJSON``) what parsers disagree on: a key
    given twice in one object (Python keeps the last, others the first or refuse), and a
    key that is no text. NaN and Infinity are still read: the models refuse them, by field."""
    return json.loads(text, object_pairs_hook=_distinct_keys)


def finite(value: object) -> object:
    """``value`` with every non-finite float replaced by None, through dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
