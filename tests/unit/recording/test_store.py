"""The clip store: the index survives a reopen, retention deletes the oldest unheld clip
first, and a held clip is never deleted: recording stops instead."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge_agent.recording.store import (
    REASON_DISK_FULL,
    REASON_HELD_FULL,
    ClipStore,
    RetentionCaps,
)


def put(store: ClipStore, clip_id: str, size: int, start_s: float, camera: str = "cam1") -> None:
    store.part_path(clip_id).write_bytes(b"\0" * size)
    store.add(
        clip_id=clip_id,
        camera=camera,
        start_s=start_s,
        end_s=start_s + 10,
        frames=50,
        events=(f"ev-{clip_id}",),
    )


def caps(max_total_bytes: int = 1000, min_free_bytes: int = 0, max_age_s: float | None = None):
    return RetentionCaps(max_total_bytes, min_free_bytes, max_age_s)


def test_the_index_survives_a_reopen(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, caps())
    put(store, "a", 100, 1000.0)
    put(store, "b", 200, 2000.0)
    store.hold("a", True)
    sha = store.get("b").sha256  # type: ignore[union-attr]
    store.close()
    again = ClipStore(tmp_path, caps())
    assert [c.id for c in again.clips()] == ["a", "b"]
    assert again.get("a").held  # type: ignore[union-attr]
    assert again.get("b").sha256 == sha  # type: ignore[union-attr]
    assert again.get("b").events == ("ev-b",)  # type: ignore[union-attr]
    assert again.total_bytes() == 300


def test_a_reopen_cleans_up_what_a_crash_left(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, caps())
    put(store, "kept", 10, 1.0)
    put(store, "lost", 10, 2.0)
    store.close()
    (tmp_path / "half.mp4.part").write_bytes(b"x")  # died while writing
    (tmp_path / "orphan.mp4").write_bytes(b"x")  # died between the rename and the row
    (tmp_path / "lost.mp4").unlink()  # someone deleted a file by hand
    again = ClipStore(tmp_path, caps())
    assert [c.id for c in again.clips()] == ["kept"]
    assert sorted(p.name for p in tmp_path.glob("*.mp4*")) == ["kept.mp4"]
    assert (tmp_path / "unindexed" / "orphan.mp4").read_bytes() == b"x"  # set aside, kept


def test_a_corrupt_index_is_set_aside_and_no_clip_is_deleted(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, caps())
    put(store, "evidence", 10, 1.0)
    store.close()
    (tmp_path / "clips.sqlite").write_bytes(b"not a database" * 100)
    again = ClipStore(tmp_path, caps())  # starts: a bad index must not stop the agent
    assert again.clips() == []
    assert (tmp_path / "unindexed" / "evidence.mp4").exists()
    assert list(tmp_path.glob("clips.sqlite.corrupt-*"))


@pytest.mark.parametrize(
    "message",
    ["unable to open database file", "attempt to write a readonly database", "disk I/O error"],
)
def test_an_index_the_agent_cannot_open_is_kept_with_its_clips_and_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    """A permission or disk problem was taken for corruption: the index was moved aside
    and every clip moved to unindexed/, their holds lost."""
    store = ClipStore(tmp_path, caps())
    put(store, "evidence", 10, 1.0)
    store.hold("evidence", True)
    store.close()

    def refuse(self: ClipStore) -> sqlite3.Connection:
        raise sqlite3.OperationalError(message)

    monkeypatch.setattr(ClipStore, "_open_index", refuse)
    with pytest.raises(OSError, match=f"clips index .*cannot be opened: {message}.*uid"):
        ClipStore(tmp_path, caps())
    monkeypatch.undo()
    assert not list(tmp_path.glob("clips.sqlite.corrupt-*"))
    assert not (tmp_path / "unindexed").exists()
    again = ClipStore(tmp_path, caps())  # fixed: everything as it was
    assert [(c.id, c.held) for c in again.clips()] == [("evidence", True)]


def test_retention_deletes_the_oldest_unheld_clip_first(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, caps(max_total_bytes=500))
    for i, clip_id in enumerate(("old", "held", "mid", "new")):
        put(store, clip_id, 150, 1000.0 * i)
    store.hold("held", True)
    assert store.make_room() is None  # 600 > 500: the oldest unheld goes
    assert [c.id for c in store.clips()] == ["held", "mid", "new"]
    assert store.make_room(open_bytes=200) is None  # room for a clip being written
    assert [c.id for c in store.clips()] == ["held", "new"]
    assert not (tmp_path / "mid.mp4").exists()


def test_when_only_held_clips_are_left_recording_stops_instead(tmp_path: Path) -> None:
    store = ClipStore(tmp_path, caps(max_total_bytes=500))
    put(store, "a", 300, 1.0)
    put(store, "b", 150, 2.0)
    store.hold("a", True)
    store.hold("b", True)
    assert store.make_room(open_bytes=100) == REASON_HELD_FULL
    assert {c.id for c in store.clips()} == {"a", "b"}  # nothing deleted
    store.hold("b", False)
    assert store.make_room(open_bytes=100) is None  # released: b goes, recording resumes
    assert [c.id for c in store.clips()] == ["a"]


def test_the_free_space_watermark_deletes_and_then_stops(tmp_path: Path) -> None:
    disk = {"free": 100}
    store = ClipStore(
        tmp_path, caps(max_total_bytes=10**9, min_free_bytes=250), free_bytes=lambda _: disk["free"]
    )
    put(store, "a", 100, 1.0)
    put(store, "b", 100, 2.0)
    store.hold("b", True)
    original_delete = store._delete_locked

    def delete_frees(clip_id: str) -> None:
        original_delete(clip_id)
        disk["free"] += 100

    store._delete_locked = delete_frees  # type: ignore[method-assign]
    assert store.make_room() == REASON_DISK_FULL  # a went, b is held, still under the mark
    assert [c.id for c in store.clips()] == ["b"]


SET_CLOCK_S = 1_780_000_000.0  # a set clock (2026)
DAY_S = 86_400.0


def test_age_deletes_old_unheld_clips_but_never_held_ones(tmp_path: Path) -> None:
    now = {"s": SET_CLOCK_S + 100_000.0}
    store = ClipStore(tmp_path, caps(max_age_s=3600), clock=lambda: now["s"])
    put(store, "old", 10, SET_CLOCK_S + 10_000.0)
    put(store, "old-held", 10, SET_CLOCK_S + 10_000.0)
    put(store, "recent", 10, SET_CLOCK_S + 99_000.0)
    store.hold("old-held", True)
    store.close()  # an earlier run's clips are judged by their stamps
    store = ClipStore(tmp_path, caps(max_age_s=3600), clock=lambda: now["s"])
    assert store.make_room() is None
    assert [c.id for c in store.clips()] == ["old-held", "recent"]


class _Clocks:
    def __init__(self, wall_s: float) -> None:
        self.wall_s, self.mono_s = wall_s, 50.0

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds


def _stepping_store(tmp_path: Path, clocks: _Clocks, max_age_s: float) -> ClipStore:
    return ClipStore(
        tmp_path,
        caps(max_total_bytes=10_000, max_age_s=max_age_s),
        clock=lambda: clocks.wall_s,
        monotonic=lambda: clocks.mono_s,
    )


def test_a_forward_clock_step_does_not_delete_this_runs_clips(tmp_path: Path) -> None:
    clocks = _Clocks(30.0)  # a Pi booted without fake-hwclock: 1970
    store = _stepping_store(tmp_path, clocks, max_age_s=7 * DAY_S)
    put(store, "incident", 10, clocks.wall_s - 10)
    clocks.advance(60)
    clocks.wall_s = SET_CLOCK_S  # NTP answers: 56 years forward
    assert store.make_room() is None
    assert [c.id for c in store.clips()] == ["incident"]
    clocks.advance(7 * DAY_S + 1)  # its true age passes the limit
    assert store.make_room() is None
    assert store.clips() == []


def test_a_backward_clock_step_does_not_keep_this_runs_clips_past_their_age(
    tmp_path: Path,
) -> None:
    clocks = _Clocks(SET_CLOCK_S)
    store = _stepping_store(tmp_path, clocks, max_age_s=3600)
    put(store, "a", 10, clocks.wall_s)
    put(store, "held", 10, clocks.wall_s)
    store.hold("held", True)
    clocks.wall_s -= DAY_S  # the clock had run a day ahead
    clocks.advance(3601)
    assert store.make_room() is None
    assert [c.id for c in store.clips()] == ["held"]
    assert store.make_room() is None  # asked again: the held clip stays
    assert [c.id for c in store.clips()] == ["held"]


def test_an_earlier_runs_clips_stamped_by_an_unset_clock_are_not_deleted_by_age(
    tmp_path: Path,
) -> None:
    clocks = _Clocks(30.0)
    store = _stepping_store(tmp_path, clocks, max_age_s=3600)
    put(store, "before-ntp", 10, 20.0)
    store.close()  # power cut before NTP answered
    clocks = _Clocks(SET_CLOCK_S)
    store = _stepping_store(tmp_path, clocks, max_age_s=3600)
    assert store.make_room() is None
    assert [c.id for c in store.clips()] == ["before-ntp"]  # the byte caps still bound it


@pytest.mark.parametrize(
    ("camera", "since", "until", "expected"),
    [
        (None, None, None, ["a", "b", "c"]),
        ("cam2", None, None, ["b"]),
        (None, 1500.0, None, ["b", "c"]),
        (None, None, 1500.0, ["a"]),
    ],
)
def test_clips_filter_by_camera_and_time(
    tmp_path: Path, camera: str | None, since: float | None, until: float | None, expected: list
) -> None:
    store = ClipStore(tmp_path, caps(max_total_bytes=10**6))
    put(store, "a", 1, 1000.0)
    put(store, "b", 1, 2000.0, camera="cam2")
    put(store, "c", 1, 3000.0)
    assert [c.id for c in store.clips(camera=camera, since_s=since, until_s=until)] == expected


def test_hold_of_an_unknown_clip_says_so(tmp_path: Path) -> None:
    assert ClipStore(tmp_path, caps()).hold("nope", True) is None


def test_after_a_forward_clock_step_the_cap_deletes_an_earlier_runs_clip_first(
    tmp_path: Path,
) -> None:
    """This run's clips recorded before NTP set the clock carry 1970 stamps: ordered by
    stamp they were the 'oldest', and the cap deleted the newest evidence first."""
    clocks = _Clocks(SET_CLOCK_S - DAY_S)
    store = ClipStore(tmp_path, caps(max_total_bytes=25), clock=lambda: clocks.wall_s)
    put(store, "yesterday", 10, clocks.wall_s)
    store.close()
    clocks = _Clocks(30.0)  # rebooted without a battery clock: 1970
    store = ClipStore(
        tmp_path,
        caps(max_total_bytes=25),
        clock=lambda: clocks.wall_s,
        monotonic=lambda: clocks.mono_s,
    )
    put(store, "at-boot", 10, clocks.wall_s)
    clocks.advance(60)
    clocks.wall_s = SET_CLOCK_S  # NTP answers
    put(store, "now", 10, clocks.wall_s)
    assert store.make_room() is None
    assert [c.id for c in store.clips()] == ["at-boot", "now"]
    put(store, "later", 10, clocks.wall_s + 20)
    assert store.make_room() is None  # then this run's oldest: the one at boot
    assert [c.id for c in store.clips()] == ["now", "later"]
