"""The ``recording:`` section (docs/configuration.md, docs/recording.md): one per device,
since the caps share one disk; a camera opts out with ``record: false``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from edge_agent.config_base import HOUR_S, StrictModel


class RecordingConfig(StrictModel):
    path: Path = Path("/var/lib/edge-agent/clips")
    pre_roll_s: float = Field(5.0, ge=0, le=60)
    post_roll_s: float = Field(5.0, ge=0, le=300)
    keyframe_interval_s: float = Field(1.0, gt=0, le=10)  # pre-roll granularity
    max_clip_s: float = Field(600.0, ge=10, le=HOUR_S)  # a longer event goes on in a new clip
    # IP cameras read with kind: pyav go into clips as they come (remux); false: encode
    # them too (width_px and crf then apply to them)
    remux: bool = True
    pre_roll_max_mb: float = Field(16.0, gt=0)  # per camera: the pre-roll's memory bound
    width_px: int | None = Field(None, ge=160, le=3840)  # encoded cameras; None: their width
    crf: int = Field(28, ge=15, le=45)  # libx264 quality (encoded cameras): higher is smaller
    max_total_mb: float = Field(2048.0, gt=0)  # every clip together
    min_free_mb: float = Field(512.0, ge=0)  # keep this free on the clips' filesystem
    max_age_days: float | None = Field(7.0, gt=0, le=366)  # None: no age limit
    fetch_rate_bytes_per_s: int = Field(32 * 1024, ge=1024)  # clip_fetch's share of the uplink
    fetch_chunk_max_bytes: int = Field(256 * 1024, ge=1024, le=1024 * 1024)

    @model_validator(mode="after")
    def _keyframes_fit_the_pre_roll(self) -> RecordingConfig:
        if self.pre_roll_s and self.keyframe_interval_s > self.pre_roll_s:
            raise ValueError("keyframe_interval_s must not exceed pre_roll_s")
        return self
