"""Scene-state analyzers: flooding, garbage, camera tamper, on a region of interest."""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.analytics import SceneAnalyzer
from edge_agent.analyzers.config import AnalyzerConfig


def build_analyzers(configs: Sequence[AnalyzerConfig]) -> list[SceneAnalyzer]:
    """The configured analyzers of one camera (placeholder until the analyzers land)."""
    return []
