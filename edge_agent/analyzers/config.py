"""Config of scene-state analyzers (placeholder: filled in by the analyzers work)."""

from __future__ import annotations

from typing import Literal

from edge_agent.config_base import Identifier, StrictModel


class TamperAnalyzerConfig(StrictModel):
    kind: Literal["tamper"] = "tamper"
    name: Identifier = "tamper"


AnalyzerConfig = TamperAnalyzerConfig
