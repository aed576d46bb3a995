"""The page's password hash, sessions, CSRF tokens and login limits (edge_agent/web/auth.py),
and ``edge-agent web-password`` that sets it."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from fakes.clock import FakeClock

from edge_agent.cli import main
from edge_agent.web.auth import (
    LoginLimiter,
    PasswordFileError,
    SessionStore,
    csrf_matches,
    hash_password,
    read_password_hash,
    verify_password,
    write_password_file,
)


def test_a_password_is_kept_as_a_salted_scrypt_hash() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$16384$8$1$") and "correct" not in first
    assert first != second  # a new salt each time
    assert verify_password(first, "correct horse") and verify_password(second, "correct horse")
    assert not verify_password(first, "correct horsE")
    assert not verify_password("scrypt$1$2$3$not-base64$x", "correct horse")
    assert not verify_password("md5$x$y$z$a$b", "correct horse")


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_a_password_too_short_or_too_long_is_refused(password: str) -> None:
    with pytest.raises(ValueError, match="characters"):
        hash_password(password)


def test_the_password_file_is_private_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "web-password"
    write_password_file(path, "first-password")
    write_password_file(path, "second-password")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = read_password_hash(path)
    assert verify_password(stored, "second-password")
    assert not verify_password(stored, "first-password")
    assert [p.name for p in tmp_path.iterdir()] == ["web-password"]


def test_a_missing_or_foreign_password_file_says_how_to_set_one(tmp_path: Path) -> None:
    with pytest.raises(PasswordFileError, match="edge-agent web-password"):
        read_password_hash(tmp_path / "web-password")
    (tmp_path / "plain").write_text("hunter2\n")
    with pytest.raises(PasswordFileError, match="not hold a password hash"):
        read_password_hash(tmp_path / "plain")


def test_sessions_expire_and_carry_their_own_csrf_token() -> None:
    clock = FakeClock()
    store = SessionStore(60.0, clock=clock)
    one, two = store.create(), store.create()
    assert one.token != two.token and one.csrf_token != two.csrf_token
    assert store.get(one.token) == one and store.get("forged") is None and store.get(None) is None
    assert csrf_matches(one, one.csrf_token)
    assert not csrf_matches(one, two.csrf_token) and not csrf_matches(one, None)
    store.end(two.token)
    assert store.get(two.token) is None
    clock.now_s += 60.0
    assert store.get(one.token) is None


def test_failed_logins_are_limited_per_address_and_in_total() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(2, clock=clock)
    for _ in range(2):
        assert limiter.retry_after_s("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
    assert limiter.retry_after_s("10.0.0.1") == pytest.approx(60.0)
    assert limiter.retry_after_s("10.0.0.2") == 0  # another address may still try
    for address in ("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"):
        limiter.failed(address)
    assert limiter.retry_after_s("10.0.0.9") == 0  # 7 failures in all
    limiter.failed("10.0.0.7")  # 8: four times the per-address limit
    assert limiter.retry_after_s("10.0.0.9") > 0
    clock.now_s += 60.0
    assert limiter.retry_after_s("10.0.0.1") == 0 and limiter.retry_after_s("10.0.0.9") == 0


def test_a_good_login_clears_the_address_failures() -> None:
    limiter = LoginLimiter(2, clock=FakeClock())
    limiter.failed("10.0.0.1")
    limiter.succeeded("10.0.0.1")
    limiter.failed("10.0.0.1")
    assert limiter.retry_after_s("10.0.0.1") == 0


def test_the_web_password_command_stores_a_hash_for_the_config_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "site_id: s1\ndevice_id: d1\ncameras: [{id: cam1, source: {kind: sim}}]\n"
        f"outbox: {{path: {tmp_path / 'outbox.db'}}}\n"
    )
    if os.geteuid() == 0:  # as root (sudo) the file goes to the config's owner
        os.chown(config, 12345, 12346)
    monkeypatch.setattr("sys.stdin", io.StringIO("ladder-and-phone\n"))
    assert main(["web-password", "--config", str(config), "--stdin"]) == 0
    path = tmp_path / "web-password"
    assert verify_password(read_password_hash(path), "ladder-and-phone")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        assert (path.stat().st_uid, path.stat().st_gid) == (12345, 12346)
    assert "the page is off" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["web-password", "--config", str(config), "--stdin"]) == 2
    assert verify_password(read_password_hash(path), "ladder-and-phone")  # unchanged


def test_attempts_at_once_are_counted_before_any_is_hashed() -> None:
    """Many logins at the same moment cannot all pass the check before the first fails:
    ``begin`` counts each as a failure until it succeeds."""
    clock = FakeClock()
    limiter = LoginLimiter(5, clock=clock)
    stamps = [limiter.begin("10.0.0.1") for _ in range(8)]
    assert all(s is not None for s in stamps[:5]) and stamps[5:] == [None, None, None]
    limiter.succeeded("10.0.0.1", stamps[0])  # the right password: its failures are forgotten
    assert limiter.begin("10.0.0.1") is not None
    for _ in range(19):  # a script's Basic-auth requests do not fill the limit of all
        stamp = limiter.begin("10.0.0.2")
        assert stamp is not None
        limiter.succeeded("10.0.0.2", stamp)
    busy = limiter.begin("10.0.0.3")
    assert busy is not None
    limiter.cancel("10.0.0.3", busy)  # never tried: not held against anyone
    assert limiter.retry_after_s("10.0.0.3") == 0
