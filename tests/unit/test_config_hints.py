"""What a command says when it cannot read the config at all: none there yet (a device not
enrolled), or not this user's to read (the service's file, as the technician's own user).
As root, a file's mode does not stop a read: the refusal is simulated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_agent.cli.common import load_checked_config
from edge_agent.config_check import (
    CONFIG_ENV,
    NO_CONFIG_YET,
    NOT_THIS_USERS,
    config_file_hint,
    no_such_file,
)


def refuse_stat_of(monkeypatch: pytest.MonkeyPatch, refused: Path) -> None:
    """``stat`` of ``refused`` fails as in a directory this user may not enter (where
    ``Path.exists`` raises instead of answering)."""
    real_stat = Path.stat

    def stat(self: Path, *, follow_symlinks: bool = True) -> os.stat_result:
        if self == refused:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(Path, "stat", stat)


def test_no_file_at_the_default_path_is_pointed_at_enrolment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "config.yaml"))  # the service's default
    assert config_file_hint(tmp_path / "config.yaml") == NO_CONFIG_YET


def test_a_named_file_that_does_not_exist_is_said_so_not_pointed_at_enrolment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--config sit.yaml`` (a typo) was told to enrol the device."""
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "etc" / "config.yaml"))
    typo = tmp_path / "sit.yaml"
    assert config_file_hint(typo) == no_such_file(typo)
    assert load_checked_config(typo) is None
    said = capsys.readouterr().err
    assert f"there is no file {typo}: check the name you gave" in said
    assert "enrol" not in said


def test_a_readable_file_needs_no_hint(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("site_id: x\n")
    assert config_file_hint(path) is None


def test_a_file_this_user_may_not_read_is_pointed_at_the_agents_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("site_id: x\n")
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    assert config_file_hint(path) == NOT_THIS_USERS
    assert "sudo -u edge-agent" in NOT_THIS_USERS


def test_a_directory_this_user_may_not_enter_is_a_hint_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "etc" / "config.yaml"
    refuse_stat_of(monkeypatch, path)
    with pytest.raises(PermissionError):
        path.exists()  # what the hint must not call
    assert config_file_hint(path) == NOT_THIS_USERS
    assert load_checked_config(path) is None
    assert NOT_THIS_USERS in capsys.readouterr().err
