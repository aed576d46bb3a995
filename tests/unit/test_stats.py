"""The stats payload: every drop counted by class and reason, always valid JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from api_contract import (
    BOOT,
    ROOT,
    check_wrong,
    gap_notice_scenario,
    gaps_mutations,
    mutations,
    new_publisher,
    stats_inputs,
    stats_mutations,
    validator,
)

from edge_agent.mqtt import PublisherStats
from edge_agent.outbox import OutboxStats
from edge_agent.stats import CameraStats, build_stats, encode_stats, stats_expiry_s
from edge_agent.types import SourceHealth


def test_stats_carry_outbox_drops_publisher_state_and_cameras() -> None:
    outbox = replace(
        stats_inputs()[0], dead_lettered_by_class={"event": 1}, unstored_by_class={"event": 3}
    )
    publisher = PublisherStats(
        published_total=90, acked_total=80, reconnects=3, inflight=7, connected=True
    )
    cameras = {
        "cam1": CameraStats(
            fps=4.9876,
            detector_runs=120,
            invokes=150,
            full_frame_passes=30,
            skipped_frames=9,
            inference_ms=float("nan"),
            motion_ratio=0.123456,
            source=SourceHealth(connected=True, frames_read=300, reconnects=1),
            failed_frames=2,
            last_error="analysis failed: boom",
            stage_errors={"flood": 2},
        ),
        "cam2": {"fps": float("inf"), "note": "passed through"},
    }
    body = build_stats(
        boot_id="b1",
        uptime_s=61.26,
        outbox=outbox,
        publisher=publisher,
        cameras=cameras,
        disk_free_bytes=1 << 30,
        now_s=1_700_000_000.12345,
        extra={"temperature_c": 51.5},
    )
    decoded = json.loads(encode_stats(body))
    assert decoded["v"] == 1 and decoded["boot"] == "b1"
    assert decoded["ts"] == 1_700_000_000.123 and decoded["uptime_s"] == 61.3
    assert decoded["outbox"] == {
        "depth_rows": 12,
        "depth_bytes": 3456,
        "enqueued": 100,
        "acked": 80,
        "last_seq": 103,
        "evicted": {"thumbnail": 5},
        "expired": {"state": 2},
        "dead_lettered": {"event": 1},
        "unstored": {"event": 3},
        "gaps_unreported": 4,
        "gap_notices": 2,
        "write_failures": 1,
        "last_error": "disk full during enqueue: database or disk is full",
        "recovered_from": "/var/lib/edge-agent/outbox.db.corrupt-20240101T000000",
        "disk_free_bytes": 1 << 30,
    }
    assert decoded["publisher"]["reconnects"] == 3
    assert decoded["publisher"]["inflight"] == 7 and decoded["publisher"]["connected"] is True
    assert decoded["cameras"]["cam1"] == {
        "fps": 4.99,
        "detector_runs": 120,
        "invokes": 150,
        "full_frame_passes": 30,
        "skipped_frames": 9,
        "inference_ms": None,  # NaN is not JSON
        "motion_ratio": 0.1235,
        "failed_frames": 2,
        "last_error": "analysis failed: boom",
        "stage_errors": {"flood": 2},
        "preview_bytes": 0,
        "source": {
            "connected": True,
            "frames_read": 300,
            "reconnects": 1,
            "ended": False,
            "last_error": None,
        },
    }
    assert decoded["cameras"]["cam2"] == {"fps": None, "note": "passed through"}
    assert decoded["temperature_c"] == 51.5


def test_stats_without_a_publisher_and_expiry() -> None:
    body = build_stats(boot_id="b", uptime_s=0.0, outbox=OutboxStats(0, 0, 0, 0), cameras={})
    assert "publisher" not in body and body["cameras"] == {}
    assert stats_expiry_s(60) == 120 and stats_expiry_s(0.1) == 1.0


def test_stats_from_the_real_builder_validate(tmp_path: Path) -> None:
    outbox_stats, publisher_stats, cameras = stats_inputs()
    body = build_stats(
        boot_id=BOOT,
        uptime_s=61.04,
        outbox=outbox_stats,
        publisher=publisher_stats,
        cameras=cameras,
        disk_free_bytes=-1,
        condition="ok",
    )
    wire = json.loads(encode_stats(body))
    validator("stats").validate(wire)
    assert wire["cameras"]["cam2"]["inference_ms"] is None
    # And from a real outbox that dropped messages, and a real (idle) publisher.
    box = gap_notice_scenario(tmp_path)
    try:
        publisher, _ = new_publisher(box)
        body = build_stats(
            boot_id=BOOT,
            uptime_s=5.0,
            outbox=box.stats(),
            publisher=publisher.stats(),
            cameras={"cam1": cameras["cam1"]},
            disk_free_bytes=123456789,
            condition="camera_fault",
        )
        wire = json.loads(encode_stats(body))
        validator("stats").validate(wire)
        drops = wire["outbox"]
        assert (drops["evicted"], drops["expired"], drops["dead_lettered"]) == (
            {"event": 1},
            {"thumbnail": 1},
            {"event": 1},
        )
    finally:
        box.close()


def test_wrong_gap_notices_and_stats_fail(tmp_path: Path) -> None:
    box = gap_notice_scenario(tmp_path)
    try:
        notice = box.issue_gap_notice(f"{ROOT}/gaps")
        assert notice is not None
        body = json.loads(notice.payload)
        check_wrong("gaps", body, iter([*mutations(body), *gaps_mutations(body)]))
    finally:
        box.close()
    outbox_stats, publisher_stats, cameras = stats_inputs()
    body = json.loads(
        encode_stats(
            build_stats(
                boot_id=BOOT,
                uptime_s=1.0,
                outbox=outbox_stats,
                publisher=publisher_stats,
                cameras=cameras,
                disk_free_bytes=10,
                condition="starting",
            )
        )
    )
    check_wrong("stats", body, iter([*mutations(body), *stats_mutations(body)]))
