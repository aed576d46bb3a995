"""The ``web:`` section's address rules, and the zone editor's save and rollback
(edge_agent/web/config.py, edge_agent/web/edit.py) against real files and a stub reload."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from realdata import require_model

import edge_agent.web.edit as edit_module
from edge_agent.config import load_config
from edge_agent.privacy import CameraPrivacy, privacy_filter
from edge_agent.privacy.faces import loaded_face_models
from edge_agent.privacy.filter import cached_filters
from edge_agent.rules.config import LineCrossingRuleConfig
from edge_agent.service.reload import ReloadOutcome
from edge_agent.web.config import WebConfig, split_listen
from edge_agent.web.edit import ConfigEditor, previous_path


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:8080", "192.168.1.20:8080", "10.1.2.3:80", "[fe80::1]:8080", "[::1]:0"]
)
def test_local_addresses_are_accepted(listen: str) -> None:
    assert WebConfig(listen=listen).listen == listen


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", "8.8.8.8:8080"])
def test_every_interface_or_a_public_address_needs_allow_any_address(listen: str) -> None:
    with pytest.raises(ValidationError, match="local network only"):
        WebConfig(listen=listen)
    assert WebConfig(listen=listen, allow_any_address=True).listen == listen


@pytest.mark.parametrize("listen", ["8080", "pi.local:8080", "127.0.0.1:http", "127.0.0.1:70000"])
def test_a_listen_without_an_ip_and_port_is_refused(listen: str) -> None:
    with pytest.raises(ValidationError):
        WebConfig(listen=listen)


def test_split_listen() -> None:
    assert split_listen("[fe80::1]:8080") == ("fe80::1", 8080)
    assert split_listen("192.168.1.20:80") == ("192.168.1.20", 80)


CONFIG = """\
# a comment the editor does not keep (it stays in config.yaml.prev)
site_id: s1
device_id: d1
cameras:
  - id: cam1
    source: {kind: sim, scenario: street}
    zones:
      - name: gate
        polygon: [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
        inertia_frames: 5
      - name: old
        polygon: [[0.6, 0.6], [0.9, 0.6], [0.9, 0.9]]
    rules:
      - {kind: intrusion, zone: gate, min_duration_s: 3}
      - {kind: loitering, zone: old}
      - {kind: line_crossing, name: kerb, a: [0.0, 0.8], b: [1.0, 0.8]}
outbox: {path: OUTBOX}
"""


class Reloads:
    def __init__(self, applied: bool = True) -> None:
        self.applied = applied
        self.calls = 0

    def __call__(self) -> ReloadOutcome:
        self.calls += 1
        if self.applied:
            return ReloadOutcome(True, changed=("cameras",))
        return ReloadOutcome(False, ("cameras: cannot open",))


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("OUTBOX", str(tmp_path / "outbox.db")))
    path.chmod(0o640)
    return path


SAVE = {
    "camera": "cam1",
    "zones": [
        {"name": "gate", "polygon": [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6]], "rules": ["intrusion"]},
        {"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "rules": ["crowd"]},
    ],
}


def test_a_save_replaces_the_zones_keeps_what_it_can_and_the_previous_file(
    config_path: Path,
) -> None:
    before = config_path.read_bytes()
    reloads = Reloads()
    result = ConfigEditor(config_path, reloads).save_zones(SAVE)
    assert result.status == 200 and result.body["ok"] is True, result.body
    assert reloads.calls == 1
    assert config_path.with_name("config.yaml.prev").read_bytes() == before
    assert config_path.stat().st_mode & 0o777 == 0o640
    camera = load_config(config_path).cameras[0]
    assert [(z.name, z.inertia_frames) for z in camera.zones] == [("gate", 5), ("yard", 3)]
    assert camera.zones[0].polygon == [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6)]
    rules = [(r.kind, getattr(r, "zone", None), getattr(r, "name", None)) for r in camera.rules]
    # The gate's intrusion rule keeps its settings; "old" and its loitering rule are gone;
    # the line is no zone's and stays; the yard gets a crowd rule with the defaults.
    assert rules == [
        ("intrusion", "gate", None),
        ("line_crossing", None, "kerb"),
        ("crowd", "yard", None),
    ]
    assert camera.rules[0].min_duration_s == 3


def test_a_save_syncs_the_directory_after_the_rename(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the directory's fsync a power cut just after a save can bring the old file
    back under the config's name, though the page said saved."""
    synced: list[tuple[Path, bytes]] = []

    def record(path: Path) -> None:  # what the directory holds under the name when synced
        synced.append((path, config_path.read_bytes()))

    monkeypatch.setattr("edge_agent.web.edit.fsync_path", record)
    result = ConfigEditor(config_path, Reloads()).save_zones(SAVE)
    assert result.status == 200, result.body
    assert (config_path.parent, config_path.read_bytes()) in synced


def test_an_invalid_save_changes_nothing(config_path: Path) -> None:
    before = config_path.read_bytes()
    reloads = Reloads()
    bad = {"camera": "cam1", "zones": [{"name": "bad name", "polygon": [[0, 0], [1, 1]]}]}
    result = ConfigEditor(config_path, reloads).save_zones(bad)
    assert result.status == 422
    assert any("polygon" in p for p in result.body["problems"])
    assert (
        ConfigEditor(config_path, reloads).save_zones({"camera": "nope", "zones": []}).status == 400
    )
    assert ConfigEditor(config_path, reloads).save_zones({"zones": "x"}).status == 400
    assert config_path.read_bytes() == before and reloads.calls == 0
    assert not config_path.with_name("config.yaml.prev").exists()


@pytest.mark.parametrize(
    ("polygon", "problem"),
    [
        ([[0.5, 0.5]] * 20_000, "at most 256"),  # 20,000 points (within the page's 256 kB)
        ([[0.5, 0.5]] * 4, "no area"),  # one point four times: nothing can stand in it
        ([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], "no area"),  # a line
    ],
    ids=["20000-points", "a-point", "a-line"],
)
def test_a_zone_no_one_can_stand_in_or_of_many_points_is_refused(
    config_path: Path, polygon: list[list[float]], problem: str
) -> None:
    """What a hostile save found: both were written to the config and applied (each point
    is a test for every track on every frame)."""
    before = config_path.read_bytes()
    reloads = Reloads()
    save = {"camera": "cam1", "zones": [{"name": "gate", "polygon": polygon}]}
    result = ConfigEditor(config_path, reloads).save_zones(save)
    assert result.status == 422, result.body
    assert any(problem in p and "zones[0].polygon" in p for p in result.body["problems"])
    assert config_path.read_bytes() == before and reloads.calls == 0


def test_a_save_the_agent_refuses_puts_the_file_back(config_path: Path) -> None:
    before = config_path.read_bytes()
    result = ConfigEditor(config_path, Reloads(applied=False)).save_zones(SAVE)
    assert result.status == 409 and result.body["problems"] == ["cameras: cannot open"]
    assert config_path.read_bytes() == before


def test_rollback_swaps_the_file_and_its_previous_one(config_path: Path) -> None:
    before = config_path.read_bytes()
    editor = ConfigEditor(config_path, Reloads())
    assert editor.rollback().status == 404  # nothing to go back to yet
    assert editor.save_zones(SAVE).status == 200
    saved = config_path.read_bytes()
    result = editor.rollback()
    assert result.status == 200, result.body
    assert yaml.safe_load(config_path.read_bytes()) == yaml.safe_load(before)
    assert config_path.with_name("config.yaml.prev").read_bytes() == saved


def test_lines_are_replaced_when_sent_and_keep_their_settings(config_path: Path) -> None:
    lines = [
        {"name": "kerb", "a": [0.0, 0.7], "b": [1.0, 0.7]},
        {"name": "gate_line", "a": [0.2, 0.1], "b": [0.2, 0.9]},
    ]
    result = ConfigEditor(config_path, Reloads()).save_zones({**SAVE, "lines": lines})
    assert result.status == 200, result.body
    rules = load_config(config_path).cameras[0].rules
    crossing = [r for r in rules if isinstance(r, LineCrossingRuleConfig)]
    assert [(r.name, r.a, r.b) for r in crossing] == [
        ("kerb", (0.0, 0.7), (1.0, 0.7)),
        ("gate_line", (0.2, 0.1), (0.2, 0.9)),
    ]
    assert ConfigEditor(config_path, Reloads()).save_zones({**SAVE, "lines": []}).status == 200
    assert not any(
        isinstance(r, LineCrossingRuleConfig) for r in load_config(config_path).cameras[0].rules
    )


def test_a_config_the_agent_may_not_write_is_said_and_left_alone(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(path: Path, data: bytes, mode: int, **_: object) -> None:
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr("edge_agent.web.edit.write_atomic", read_only)
    before = config_path.read_bytes()
    reloads = Reloads()
    result = ConfigEditor(config_path, reloads).save_zones(SAVE)
    assert result.status == 409 and reloads.calls == 0
    (problem,) = result.body["problems"]
    assert "Read-only file system" in problem and "Under systemd" in problem
    assert config_path.read_bytes() == before


@pytest.mark.parametrize("full_at", ["the new file", "the previous file"])
def test_a_full_disk_during_a_save_keeps_the_config_and_its_rollback_point(
    config_path: Path, monkeypatch: pytest.MonkeyPatch, full_at: str
) -> None:
    """The rollback point was written first: a disk that filled up before the new config
    was written left the config as it was but its ``.prev`` replaced by that same config,
    so the earlier version a rollback would go back to was lost; and the reason said to
    give the agent write access."""
    previous = config_path.with_name("config.yaml.prev")
    previous.write_text("the version a rollback goes back to\n")
    before = config_path.read_bytes()
    real_write = edit_module.write_atomic

    def write_until_full(path: Path, data: bytes, mode: int, **options: object) -> None:
        if (full_at == "the previous file") == (path == previous):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data, mode, **options)

    monkeypatch.setattr(edit_module, "write_atomic", write_until_full)
    reloads = Reloads()
    result = ConfigEditor(config_path, reloads).save_zones(SAVE)
    assert result.status == 409 and reloads.calls == 0
    (problem,) = result.body["problems"]
    assert "No space left on device" in problem and "free space" in problem
    assert "write access" not in problem
    assert config_path.read_bytes() == before
    assert previous.read_text() == "the version a rollback goes back to\n"
    assert sorted(p.name for p in config_path.parent.iterdir()) == [
        "config.yaml",
        "config.yaml.prev",
    ]  # no staged file left behind


def test_a_refused_save_that_cannot_be_put_back_says_where_each_version_is(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent refuses the reload and the disk fills before the file is put back: an
    answer (it was an exception, a 500 with no reason) naming where each version is."""
    real_write = edit_module.write_atomic
    writes: list[Path] = []

    def full_after_the_save(path: Path, data: bytes, mode: int, **options: object) -> None:
        writes.append(path)
        if len(writes) > 2:  # the staged config and the .prev went through
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data, mode, **options)

    monkeypatch.setattr(edit_module, "write_atomic", full_after_the_save)
    result = ConfigEditor(config_path, Reloads(applied=False)).save_zones(SAVE)
    assert result.status == 409
    reason, put_back = result.body["problems"]
    assert reason == "cameras: cannot open"
    assert "could not be put back" in put_back and "config.yaml.prev" in put_back


def test_a_zone_schedule_is_kept_unless_sent(config_path: Path) -> None:
    editor = ConfigEditor(config_path, Reloads())
    night = {"start": "22:00", "end": "05:00"}
    gate = {"name": "gate", "polygon": [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6]], "schedule": night}
    assert editor.save_zones({"camera": "cam1", "zones": [gate]}).status == 200
    (zone,) = load_config(config_path).cameras[0].zones
    assert zone.schedule is not None and (zone.schedule.start, zone.schedule.end) == (
        "22:00",
        "05:00",
    )
    del gate["schedule"]  # left out: kept
    assert editor.save_zones({"camera": "cam1", "zones": [gate]}).status == 200
    assert load_config(config_path).cameras[0].zones[0].schedule is not None
    gate["schedule"] = None  # null: always active
    assert editor.save_zones({"camera": "cam1", "zones": [gate]}).status == 200
    assert load_config(config_path).cameras[0].zones[0].schedule is None
    gate["schedule"] = {"start": "25:00", "end": "05:00"}  # the whole config's check
    assert editor.save_zones({"camera": "cam1", "zones": [gate]}).status == 422


def test_masks_are_saved_when_sent_and_kept_when_left_out(config_path: Path) -> None:
    data = yaml.safe_load(config_path.read_text())
    data["cameras"][0]["privacy"] = {"face_min_px": 40}  # no face model needed to check
    config_path.write_text(yaml.safe_dump(data))
    editor = ConfigEditor(config_path, Reloads())
    window = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.3], [0.1, 0.3]]
    assert editor.save_zones({**SAVE, "masks": [window]}).status == 200
    privacy = load_config(config_path).cameras[0].privacy
    assert privacy.masks == [[(0.1, 0.1), (0.4, 0.1), (0.4, 0.3), (0.1, 0.3)]]
    assert privacy.face_min_px == 40  # the section's other keys stay
    assert editor.save_zones(SAVE).status == 200  # no masks sent: they stay
    assert len(load_config(config_path).cameras[0].privacy.masks) == 1
    assert editor.save_zones({**SAVE, "masks": []}).status == 200
    assert load_config(config_path).cameras[0].privacy.masks == []


def test_a_camera_without_privacy_gets_it_with_its_first_mask(config_path: Path) -> None:
    triangle = [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]]
    result = ConfigEditor(config_path, Reloads()).save_zones({**SAVE, "masks": [triangle]})
    assert result.status == 200, result.body
    assert load_config(config_path).cameras[0].privacy.masks == [
        [(0.5, 0.5), (0.9, 0.5), (0.9, 0.9)]
    ]


def test_masks_for_one_camera_stay_on_that_camera_when_its_privacy_is_an_alias(
    config_path: Path,
) -> None:
    """A file whose cameras share one privacy section through a YAML anchor (`privacy: *p`):
    the save changed the shared mapping in place, so cam1's new masks were written to both
    cameras and blacked out the same area of a camera the technician never touched."""
    text = config_path.read_text().replace(
        "    source: {kind: sim, scenario: street}\n",
        "    source: {kind: sim, scenario: street}\n    privacy: &p {face_min_px: 40}\n",
        1,
    )
    text = text.replace(
        "outbox:",
        "  - id: cam2\n    source: {kind: sim, scenario: street}\n    privacy: *p\noutbox:",
    )
    config_path.write_text(text)
    triangle = [[0.5, 0.5], [0.9, 0.5], [0.9, 0.9]]
    result = ConfigEditor(config_path, Reloads()).save_zones({**SAVE, "masks": [triangle]})
    assert result.status == 200, result.body
    cam1, cam2 = load_config(config_path).cameras
    assert cam1.privacy.masks == [[(0.5, 0.5), (0.9, 0.5), (0.9, 0.9)]]
    assert cam2.privacy.masks == [] and cam2.privacy.face_min_px == 40


CIRCLE = [  # 300 points on a circle: a real polygon, more points than a mask may have
    [0.5 + 0.3 * math.cos(2 * math.pi * i / 300), 0.5 + 0.3 * math.sin(2 * math.pi * i / 300)]
    for i in range(300)
]


@pytest.mark.parametrize(
    ("masks", "reason"),
    [
        ([[[0.1, 0.1], [0.5, 0.5]]], "at least 3 points"),
        ([CIRCLE], "300 points; at most 256 per mask"),
        ([[[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]] * 65, "at most 64"),
    ],
)
def test_a_mask_no_one_should_save_is_refused_with_the_config_checks_reason(
    config_path: Path, masks: list[object], reason: str
) -> None:
    before = config_path.read_bytes()
    reloads = Reloads()
    result = ConfigEditor(config_path, reloads).save_zones({**SAVE, "masks": masks})
    assert result.status == 422
    assert any(reason in p for p in result.body["problems"]), result.body
    assert config_path.read_bytes() == before and reloads.calls == 0
    assert not config_path.with_name("config.yaml.prev").exists()


def test_a_refused_save_leaves_the_rollback_where_it_was(config_path: Path) -> None:
    """Save A (applied), then save B the agent refuses: the file is A again and a
    rollback still goes to what ran before A."""
    original = config_path.read_bytes()
    reloads = Reloads()
    editor = ConfigEditor(config_path, reloads)
    assert editor.save_zones(SAVE).status == 200
    after_a = config_path.read_bytes()
    reloads.applied = False
    other = {"camera": "cam1", "zones": [SAVE["zones"][0]]}  # type: ignore[index]
    assert editor.save_zones(other).status == 409
    assert config_path.read_bytes() == after_a
    assert previous_path(config_path).read_bytes() == original


class LiveFilters:
    """A reload as the agent's: the camera's new pipeline takes the filter of its new
    config (``build_pipeline``), the old pipeline goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.live: CameraPrivacy | None = None

    def __call__(self) -> ReloadOutcome:
        self.live = privacy_filter(load_config(self.path).cameras[0].privacy)
        return ReloadOutcome(True, changed=("cameras",))


def test_saving_masks_again_and_again_with_face_blur_keeps_one_face_model(
    config_path: Path,
) -> None:
    require_model("blazeface_full_range")
    data = yaml.safe_load(config_path.read_text())
    data["cameras"][0]["privacy"] = {"blur_faces": True}
    config_path.write_text(yaml.safe_dump(data))
    reload = LiveFilters(config_path)
    reload()
    filters = cached_filters()
    editor = ConfigEditor(config_path, reload)
    for i in range(6):
        mask = [[0.1, 0.1], [0.2 + i / 20, 0.1], [0.2 + i / 20, 0.3], [0.1, 0.3]]
        assert editor.save_zones({**SAVE, "masks": [mask]}).status == 200
        assert reload.live is not None and reload.live.faces is not None
        assert len(reload.live.masks.polygons) == 1
        assert loaded_face_models() == 1
        assert cached_filters() == filters  # the previous masks' filter went with its pipeline
