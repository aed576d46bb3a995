"""What a reload accepts: check-config's checks first, and nothing bound to the process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from helpers import sim_camera

from edge_agent.config import parse_config
from edge_agent.service.reload import check_reload


def data(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "site_id": "s",
        "device_id": "d",
        "cameras": [sim_camera()],
        "detector": {"model": "ssd_mobilenet_v1"},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "references": {"directory": None},
    }
    return {**base, **changes}


def write(tmp_path: Path, content: dict[str, Any] | str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def test_a_good_change_is_applied_and_named(tmp_path: Path) -> None:
    current = parse_config(data(tmp_path))
    new_data = data(tmp_path, cameras=[{**sim_camera(), "fps": 2}], stats_interval_s=30)
    new, outcome = check_reload(write(tmp_path, new_data), current)
    assert new is not None and new.cameras[0].fps == 2
    assert outcome.applied and outcome.changed == ("cameras", "stats_interval_s")
    assert outcome.reply_body() == {
        "ok": True,
        "config": str(tmp_path / "config.yaml"),
        "changed": ["cameras", "stats_interval_s"],
    }


def test_every_problem_is_given_and_nothing_is_applied(tmp_path: Path) -> None:
    current = parse_config(data(tmp_path))
    bad = data(tmp_path, cameras=[{**sim_camera(), "fps": -1}], timezone="Mars/Olympus")
    new, outcome = check_reload(write(tmp_path, bad), current)
    assert new is None and not outcome.applied
    text = outcome.summary()
    assert "refused, the running config is kept" in text
    assert "cameras[0].fps" in text and "Mars/Olympus" in text
    assert outcome.reply_body() == {"ok": False, "error": text}


def test_unreadable_yaml_is_refused(tmp_path: Path) -> None:
    current = parse_config(data(tmp_path))
    new, outcome = check_reload(write(tmp_path, "site_id: [unclosed"), current)
    assert new is None and not outcome.applied and outcome.problems


def test_sections_bound_to_the_process_need_a_restart(tmp_path: Path) -> None:
    current = parse_config(data(tmp_path))
    moved = data(tmp_path, device_id="other", outbox={"path": str(tmp_path / "b.db")})
    new, outcome = check_reload(write(tmp_path, moved), current)
    assert new is None and not outcome.applied
    assert outcome.problems == (
        "device_id, outbox can change only with a restart: systemctl restart edge-agent",
    )


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    current = parse_config(data(tmp_path))
    new, outcome = check_reload(tmp_path / "gone.yaml", current)
    assert new is None and not outcome.applied and "gone.yaml" in outcome.summary()
