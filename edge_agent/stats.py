"""The ``stats`` payload: is the device healthy, and what did it drop and why.

Published every ``stats_interval_s`` on ``{root}/stats`` as a *volatile* message (QoS 0,
MQTT 5 message expiry, never buffered: only the latest matters). Every drop the outbox
made is here, counted by class and reason, so "never evict silently" holds even for a
consumer that missed a gap notice. docs/delivery.md lists the fields.

>>> from edge_agent.outbox import OutboxStats
>>> body = build_stats(boot_id="b1", uptime_s=5.0, now_s=100.0, cameras={},
...                    outbox=OutboxStats(0, 0, 3, 3, evicted_by_class={"thumbnail": 1}))
>>> body["outbox"]["evicted"], body["uptime_s"]
({'thumbnail': 1}, 5.0)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_agent.types import SourceHealth

if TYPE_CHECKING:
    from edge_agent.mqtt import PublisherStats
    from edge_agent.outbox import OutboxStats

__all__ = ["STATS_SCHEMA", "CameraStats", "build_stats", "encode_stats", "stats_expiry_s"]

STATS_VERSION = 1
STATS_SCHEMA = f"edge-agent/stats/{STATS_VERSION}"
"""The ``schema`` user property of stats messages."""


@dataclass(frozen=True)
class CameraStats:
    """One camera's figures over the last stats interval."""

    fps: float  # frames analysed per second
    detector_runs: int  # frames the detector ran on in the interval
    inference_ms: float | None  # mean time of one invoke, None if it did not run
    motion_ratio: float | None  # mean share of changed pixels
    source: SourceHealth | None = None
    # Region detection: invokes (full-frame passes, crops, regrowths) and full-frame passes
    # in the interval; invokes / detector_runs is the regions per detection run.
    invokes: int = 0
    full_frame_passes: int = 0
    # Frames with motion on which the tracker carried every object instead of the detector
    # (cameras[].max_skipped_frames), in the interval.
    skipped_frames: int = 0
    # Since start: capture reads and frame analyses that raised (the camera went on),
    # the last one's message, and failures per rule or analyzer (each guarded alone).
    failed_frames: int = 0
    last_error: str | None = None
    stage_errors: Mapping[str, int] = field(default_factory=dict)
    preview_bytes: int = 0  # since start: JPEG bytes of previews sent

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "fps": _number(self.fps, 2),
            "detector_runs": self.detector_runs,
            "invokes": self.invokes,
            "full_frame_passes": self.full_frame_passes,
            "skipped_frames": self.skipped_frames,
            "inference_ms": _number(self.inference_ms, 2),
            "motion_ratio": _number(self.motion_ratio, 4),
            "failed_frames": self.failed_frames,
            "last_error": self.last_error,
            "stage_errors": dict(self.stage_errors),
            "preview_bytes": self.preview_bytes,
        }
        if self.source is not None:
            body["source"] = {
                "connected": self.source.connected,
                "frames_read": self.source.frames_read,
                "reconnects": self.source.reconnects,
                "ended": self.source.ended,
                "last_error": self.source.last_error,
            }
        return body


def _number(value: float | None, ndigits: int) -> float | None:
    """Rounded, and None for NaN/inf: stats must always be valid JSON."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, ndigits)


def _clean(value: object) -> object:
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, CameraStats):
        return value.as_dict()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def build_stats(
    *,
    boot_id: str,
    uptime_s: float,
    outbox: OutboxStats,
    cameras: Mapping[str, CameraStats | Mapping[str, object]],
    publisher: PublisherStats | None = None,
    disk_free_bytes: int | None = None,
    now_s: float | None = None,
    condition: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The stats body (a JSON-ready dict); ``condition``: what the status LED shows (the
    agent always says; a fleet view sorts by it); ``extra`` keys are added at the top level."""
    body: dict[str, object] = {
        "v": STATS_VERSION,
        "ts": round(time.time() if now_s is None else now_s, 3),
        "boot": boot_id,
        "uptime_s": round(uptime_s, 1),
        "outbox": {
            "depth_rows": outbox.depth_rows,
            "depth_bytes": outbox.depth_bytes,
            "enqueued": outbox.enqueued_total,
            "acked": outbox.acked_total,
            "last_seq": outbox.last_seq,
            "evicted": dict(outbox.evicted_by_class),
            "expired": dict(outbox.expired_by_class),
            "dead_lettered": dict(outbox.dead_lettered_by_class),
            "unstored": dict(outbox.unstored_by_class),
            "gaps_unreported": outbox.gap_seqs_unreported,
            "gap_notices": outbox.gap_notices_total,
            "write_failures": outbox.write_failures,
            "last_error": outbox.last_error,
            "recovered_from": outbox.recovered_from,
            "disk_free_bytes": disk_free_bytes,
        },
        "cameras": _clean(dict(cameras)),
    }
    if publisher is not None:
        body["publisher"] = {
            "connected": publisher.connected,
            "reconnects": publisher.reconnects,
            "inflight": publisher.inflight,
            "published": publisher.published_total,
            "acked": publisher.acked_total,
            "dead_lettered": publisher.rejected_total,
            "historical": publisher.historical_total,
            "paced": publisher.paced,
            "session_present": publisher.session_present,
            "volatile_dropped": publisher.volatile_dropped,
            "last_error": publisher.last_error,
            "broker": publisher.broker,
            "broker_moves": publisher.broker_moves,
        }
    if condition is not None:
        body["condition"] = condition
    if extra:
        for key, value in extra.items():
            body[key] = _clean(value)
    return body


def encode_stats(body: Mapping[str, object]) -> bytes:
    """Compact JSON; NaN and infinities become null rather than invalid JSON."""
    text = json.dumps(_clean(body), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def stats_expiry_s(interval_s: float) -> float:
    """Message expiry for stats: two intervals, so a consumer never sees a stale one."""
    return max(1.0, 2.0 * interval_s)
