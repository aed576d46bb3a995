"""Signed updates (docs/updates.md): metadata verification, the transfer, the store's steps
and its repair at start, and the updater's keep / roll back / defer with a fake agent."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socketserver
import tarfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fakes.releases import KEY, OTHER_KEY, PUBLIC_HEX, archive_of, make_release
from helpers import wait_until

from edge_agent import crypto
from edge_agent.update.config import UpdatesConfig
from edge_agent.update.errors import UpdateError
from edge_agent.update.host import effective_config_path
from edge_agent.update.manager import Updater
from edge_agent.update.release import METADATA, ReleaseRefused, verify_release
from edge_agent.update.store import ReleaseStore
from edge_agent.update.transfer import Staging, TransferError, unpack

NOW = datetime.now(timezone.utc)
CONFIG = {"config.yaml": b"site_id: s\n"}


def verify(folder: Path, installed: str | None = "1", keys: list[bytes] | None = None) -> object:
    return verify_release(
        folder,
        trusted_keys=keys or [crypto.ed25519_public(KEY)],
        installed=installed,
        now=NOW,
    )


# -- metadata ------------------------------------------------------------------------


def test_a_good_release_verifies(tmp_path: Path) -> None:
    release = verify(make_release(tmp_path / "r", CONFIG, version="2.1"))
    assert release.kind == "config" and release.version == "2.1"  # type: ignore[attr-defined]


def test_a_tampered_file_is_refused(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "r", CONFIG)
    (folder / "config.yaml").write_bytes(b"site_id: x\n")  # same size, other bytes
    with pytest.raises(ReleaseRefused, match="does not match its sha256"):
        verify(folder)


@pytest.mark.parametrize(
    "metadata",
    [b"[" * 200_000 + b"]" * 200_000, b'{"signed":' * 50_000 + b"1" + b"}" * 50_000],
    ids=["array", "object"],
)
def test_metadata_nested_too_deep_is_refused_not_a_recursion_error(
    tmp_path: Path, metadata: bytes
) -> None:
    """release.json is read before its signature is checked: anyone who may send
    update_chunk could make the commit end in a RecursionError ('internal error' and a
    traceback) instead of a refusal."""
    folder = make_release(tmp_path / "r", CONFIG)
    (folder / METADATA).write_bytes(metadata)
    with pytest.raises(ReleaseRefused, match="cannot be read: nested deeper than"):
        verify(folder)


def test_a_commit_of_metadata_nested_too_deep_is_a_refusal(tmp_path: Path) -> None:
    """The commit reads the claimed kind before the signature: there too a RecursionError
    was 'internal error' and a traceback."""
    folder = make_release(tmp_path / "r", CONFIG)
    (folder / METADATA).write_bytes(b"[" * 200_000 + b"]" * 200_000)
    data = archive_of(folder)
    up = updater(tmp_path, FakeHost())
    up.begin("r1", len(data), hashlib.sha256(data).hexdigest())
    up.chunk("r1", 0, base64.b64encode(data).decode(), None)
    with pytest.raises(UpdateError, match="nested deeper than"):
        up.commit("r1")


def test_tampered_metadata_is_refused(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "r", CONFIG, version="2")
    body = json.loads((folder / METADATA).read_text())
    body["signed"]["version"] = "9"  # a newer version claimed without the key
    (folder / METADATA).write_text(json.dumps(body))
    with pytest.raises(ReleaseRefused, match="not signed by a trusted key"):
        verify(folder)


def test_a_release_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "r", CONFIG, key=OTHER_KEY)
    with pytest.raises(ReleaseRefused, match="not signed by a trusted key"):
        verify(folder)
    # ... and accepted by a device that trusts that key too (a key rotation)
    verify(folder, keys=[crypto.ed25519_public(KEY), crypto.ed25519_public(OTHER_KEY)])


def test_an_older_or_the_same_version_is_refused(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "r", CONFIG, version="2")
    with pytest.raises(ReleaseRefused, match=r"older than the installed 10 \(rollback refused\)"):
        verify(folder, installed="10")
    with pytest.raises(ReleaseRefused, match="already installed"):
        verify(folder, installed="2")
    verify(folder, installed=None)  # nothing installed yet: any version


def test_an_expired_release_is_refused(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "r", CONFIG, expires=NOW - timedelta(seconds=1))
    with pytest.raises(ReleaseRefused, match="expired"):
        verify(folder)


def test_a_release_is_refused_while_the_device_clock_is_not_set(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "r", CONFIG, expires=NOW + timedelta(days=1))
    booted_without_rtc = datetime.fromtimestamp(42.0, timezone.utc)
    with pytest.raises(ReleaseRefused, match="clock is not set"):
        verify_release(
            folder,
            trusted_keys=[crypto.ed25519_public(KEY)],
            installed="1",
            now=booted_without_rtc,
        )
    assert verify(folder)  # the same release, once NTP has set the clock


def test_an_unlisted_or_missing_file_is_refused(tmp_path: Path) -> None:
    folder = make_release(tmp_path / "r", CONFIG)
    (folder / "extra.sh").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(ReleaseRefused, match=r"'extra\.sh' is not listed"):
        verify(folder)
    (folder / "extra.sh").unlink()
    (folder / "config.yaml").unlink()
    with pytest.raises(ReleaseRefused, match="listed but missing"):
        verify(folder)


def test_a_config_release_without_a_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseRefused, match=r"must hold config\.yaml"):
        verify(make_release(tmp_path / "r", {"other.yaml": b"x"}))


# -- transfer ------------------------------------------------------------------------


def test_chunks_resume_from_the_offset_the_device_holds(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1 << 20)
    data = bytes(range(256)) * 10
    digest = hashlib.sha256(data).hexdigest()
    assert staging.begin("a1", len(data), digest) == 0
    assert staging.chunk("a1", 0, data[:1000], hashlib.sha256(data[:1000]).hexdigest()) == 1000
    with pytest.raises(TransferError) as wrong:
        staging.chunk("a1", 500, data[500:900], None)
    assert wrong.value.have == 1000
    with pytest.raises(TransferError, match="does not match its sha256"):
        staging.chunk("a1", 1000, data[1000:1100], "0" * 64)
    assert staging.begin("a1", len(data), digest) == 1000  # a sender restarted: resume
    staging.chunk("a1", 1000, data[1000:], None)
    assert staging.complete("a1").read_bytes() == data


@pytest.mark.parametrize(
    "record", [b"", b'{"size": 10', b"\xff\xfe", b"[1, 2]", b'{"size": "10", "sha256": 1}']
)
def test_a_damaged_transfer_record_asks_for_a_new_begin(tmp_path: Path, record: bytes) -> None:
    """A power cut while ``update_begin`` wrote its record: each step says so (no internal
    error), and a new ``update_begin`` starts the transfer again."""
    staging = Staging(tmp_path, max_bytes=1 << 20)
    data = b"release" * 100
    digest = hashlib.sha256(data).hexdigest()
    staging.begin("a1", len(data), digest)
    (tmp_path / "a1.expect").write_bytes(record)
    for step in (
        lambda: staging.chunk("a1", 0, data, None),
        lambda: staging.complete("a1"),
    ):
        with pytest.raises(TransferError, match=r"a1\.expect is damaged .*send update_begin again"):
            step()
    assert staging.begin("a1", len(data), digest) == 0
    assert staging.chunk("a1", 0, data, None) == len(data)
    assert staging.complete("a1").read_bytes() == data


class Drip(socketserver.BaseRequestHandler):
    """An HTTP server that sends its body a byte at a time, each within the socket
    timeout: a stalled mirror, or a hostile one."""

    body = b"release" * 20
    stop = threading.Event()

    def handle(self) -> None:
        self.request.recv(4096)
        head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(self.body)}\r\n\r\n".encode()
        self.request.sendall(head)
        for byte in self.body:
            if self.stop.wait(0.05):
                return
            try:
                self.request.sendall(bytes([byte]))
            except OSError:  # the device gave up
                return


def test_a_fetch_that_trickles_is_given_up_not_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """update_fetch runs on the command thread, and the 30 s socket timeout is per read: a
    server sending a byte every few seconds held every command behind it for as long as
    it liked. Now less than STALL_MIN_BYTES in a STALL_WINDOW_S is a refusal."""
    monkeypatch.setattr("edge_agent.update.transfer.STALL_WINDOW_S", 0.5)
    monkeypatch.setattr("edge_agent.update.transfer.STALL_MIN_BYTES", 1000)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        staging = Staging(tmp_path, max_bytes=1 << 20)
        url = f"http://127.0.0.1:{server.server_address[1]}/r.tar"
        digest = hashlib.sha256(Drip.body).hexdigest()
        with pytest.raises(TransferError, match="stalled"):
            staging.fetch("r1", url, len(Drip.body), digest)
    finally:
        Drip.stop.set()
        server.shutdown()
        server.server_close()


def test_a_fetch_error_never_repeats_the_url_s_password(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1 << 20)
    url = "http://ops:s3cret@127.0.0.1:9/r.tar"  # the discard port: refused
    with pytest.raises(TransferError, match="cannot fetch") as refused:
        staging.fetch("r1", url, 10, "0" * 64)
    assert "s3cret" not in str(refused.value) and "ops:***@" in str(refused.value)


def test_unpack_takes_plain_files_only(tmp_path: Path) -> None:
    for name, kind in (
        ("../escape", tarfile.REGTYPE),
        ("link", tarfile.SYMTYPE),
        ("d", tarfile.DIRTYPE),
    ):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        archive = tmp_path / "a.tar"
        archive.write_bytes(buffer.getvalue())
        with pytest.raises(TransferError, match="not a plain file"):
            unpack(archive, tmp_path / "out", max_bytes=1 << 20)
        assert not (tmp_path / "out").exists()


# -- the updater, with a fake agent --------------------------------------------------


class FakeHost:
    def __init__(self) -> None:
        self.open: list[str] = []
        self.healthy = True
        self.apply_problem: str | None = None
        self.applied: list[str | None] = []
        self.published: list[dict[str, object]] = []
        self.store: ReleaseStore | None = None

    def open_event_cameras(self) -> list[str]:
        return list(self.open)

    def apply_release(self, kind: str) -> str | None:
        assert self.store is not None
        self.applied.append(self.store.current(kind))
        return self.apply_problem

    def health_problems(self, since_mono_s: float) -> list[str]:
        return [] if self.healthy else ["camera cam1: no frame since the switch"]

    def publish_update(self, body: dict[str, object]) -> None:
        self.published.append(dict(body))

    def restart_for_update(self) -> None:
        self.published.append({"phase": "restart"})


def updater(tmp_path: Path, host: FakeHost, deadline_s: float = 0.5) -> Updater:
    settings = UpdatesConfig(
        dir=tmp_path / "releases", trusted_keys=[PUBLIC_HEX], health_deadline_s=deadline_s
    )
    result = Updater(settings, host)
    host.store = result.store
    return result


def send(
    up: Updater, tmp_path: Path, name: str, version: str, **options: object
) -> dict[str, object]:
    data = archive_of(make_release(tmp_path / name, CONFIG, version=version, **options))  # type: ignore[arg-type]
    up.begin(name, len(data), hashlib.sha256(data).hexdigest())
    up.chunk(name, 0, base64.b64encode(data).decode(), None)
    return up.commit(name)


def final(host: FakeHost, after: int = 0) -> dict[str, object]:
    """The first final outcome published after the first ``after`` messages."""
    done = ("kept", "rolled_back")
    wait_until(
        lambda: any(p["phase"] in done for p in host.published[after:]),
        10.0,
        "the update's outcome",
    )
    return next(p for p in host.published[after:] if p["phase"] in done)


def test_a_healthy_release_is_kept_and_an_unhealthy_one_rolled_back(tmp_path: Path) -> None:
    host = FakeHost()
    up = updater(tmp_path, host)
    assert send(up, tmp_path, "r1", "1")["state"] == "switching"
    assert final(host)["phase"] == "kept" and up.store.current("config") == "1"
    host.healthy = False
    before = len(host.published)
    send(up, tmp_path, "r2", "2")
    outcome = final(host, before)
    assert outcome["phase"] == "rolled_back" and "health check failed" in str(outcome["reason"])
    assert up.store.current("config") == "1"
    assert host.applied == ["1", "2", "1"]  # the old release applied again
    with pytest.raises(UpdateError, match="already installed"):
        send(up, tmp_path, "r1b", "1")
    assert host.published[-1]["phase"] == "refused"


def test_a_release_that_cannot_be_applied_is_rolled_back_to_nothing(tmp_path: Path) -> None:
    host = FakeHost()
    host.apply_problem = "detector: not a model"
    up = updater(tmp_path, host)
    send(up, tmp_path, "r1", "1")
    assert "could not be applied: detector: not a model" in str(final(host)["reason"])
    assert up.store.current("config") is None  # back on the bootstrap files


def test_the_switch_waits_while_an_event_is_open(tmp_path: Path) -> None:
    host = FakeHost()
    host.open = ["cam1"]
    up = updater(tmp_path, host)
    reply = send(up, tmp_path, "r1", "1")
    assert reply["state"] == "deferred" and "cam1" in str(reply["reason"])
    assert up.report()["pending"] and up.store.current("config") is None
    with pytest.raises(UpdateError, match="busy"):
        send(up, tmp_path, "r2", "2")
    host.open = []
    assert final(host)["phase"] == "kept" and up.store.current("config") == "1"
    assert any(p["phase"] == "deferred" for p in host.published)


# -- repair at start and a power cut at every step -----------------------------------

CHILD = """
import os, signal, sys
from pathlib import Path
sys.path[:0] = [{tests!r}]
from fakes.releases import make_release
from edge_agent.update.release import verify_release
from edge_agent.update.store import ReleaseStore
from edge_agent import crypto
from fakes.releases import KEY
from datetime import datetime, timezone

root, crash_at, healthy = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
def step(name):
    print(name, flush=True)
    if name == crash_at:
        os.kill(os.getpid(), signal.SIGKILL)
store = ReleaseStore(root / "releases", on_step=step)
folder = make_release(store.staging / "r.d", {{"config.yaml": b"site_id: new\\n"}}, version="2")
release = verify_release(folder, trusted_keys=[crypto.ed25519_public(KEY)], installed="1",
                         now=datetime.now(timezone.utc))
step("unpacked")  # verified in staging, not yet placed
state = store.switch(store.place(release))
if healthy:
    store.keep(state, "healthy")
else:
    store.roll_back(state, "unhealthy")
"""


def run_child(tmp_path: Path, crash_at: str, healthy: bool) -> list[str]:
    import subprocess
    import sys

    code = CHILD.format(tests=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), crash_at, "1" if healthy else "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    steps = done.stdout.split()
    assert done.returncode == (-9 if crash_at in steps else 0), done.stderr
    return steps


def installed_v1(tmp_path: Path) -> ReleaseStore:
    store = ReleaseStore(tmp_path / "releases")
    folder = make_release(store.staging / "v1.d", {"config.yaml": b"site_id: old\n"}, version="1")
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW
    )
    store.keep(store.switch(store.place(release)), "healthy")
    return store


@pytest.mark.parametrize("healthy", [True, False], ids=["kept", "rolled-back"])
def test_a_power_cut_at_every_step_leaves_the_old_or_the_new_release(
    tmp_path: Path, healthy: bool
) -> None:
    installed_v1(tmp_path / "probe")
    steps = run_child(tmp_path / "probe", "never", healthy)  # every step, by name
    assert "previous_linked" in steps and steps[-1] == ("kept" if healthy else "rolled_back")
    for k, step in enumerate(steps):
        base = tmp_path / f"{k}-{step}"
        installed_v1(base)
        run_child(base, step, healthy)
        # The next start: `edge-agent run` picks the config it runs (repairing first).
        settings = UpdatesConfig(dir=base / "releases", trusted_keys=[PUBLIC_HEX])
        running = effective_config_path(base / "bootstrap.yaml", settings)
        store = ReleaseStore(base / "releases")
        state = store.state()
        current = store.current("config")
        assert current in ("1", "2"), step
        assert running == store.current_dir("config") / "config.yaml", step
        text = running.read_text()
        assert text == {"1": "site_id: old\n", "2": "site_id: new\n"}[current], step
        assert state is not None and state.phase in ("kept", "rolled_back"), step
        # Never the new one unless it was kept: what was not proven healthy is taken back.
        assert (current == "2") == (state.phase == "kept" and state.version == "2"), step
        assert list(store.staging.iterdir()) == [], step
        assert store.repair() == store.state()  # a second start changes nothing


def test_a_new_agent_gets_one_start_to_keep_itself(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path)
    folder = make_release(
        store.staging / "a.d", {"edge_agent-5-py3-none-any.whl": b"PK"}, kind="agent", version="5"
    )
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW
    )
    store.switch(store.place(release))  # then the agent exits for systemd
    first = store.repair()
    assert first is not None and first.phase == "trial" and first.attempts == 1
    assert store.repair() == first  # the CLI and the agent both repair: one start
    assert store.current("agent") == "5"
    # The next process finds it still on trial: the new agent died before keeping itself.
    forget_pid(tmp_path)
    second = store.repair()
    assert second is not None and second.phase == "rolled_back"
    assert "did not keep itself" in second.reason and store.current("agent") is None


def test_the_updater_stops_cleanly_while_deferred(tmp_path: Path) -> None:
    host = FakeHost()
    host.open = ["cam1"]
    up = updater(tmp_path, host)
    send(up, tmp_path, "r1", "1")
    up.stop()
    assert not any(t.name == "update" and t.is_alive() for t in threading.enumerate())
    again = FakeHost()
    updater(tmp_path, again).start()  # the next start takes it back and says so, once
    assert [p["phase"] for p in again.published] == ["rolled_back"]
    assert "before the switch" in str(again.published[0]["reason"])
    later = FakeHost()
    updater(tmp_path, later).start()
    assert later.published == []


def test_the_agent_runs_the_installed_config_release(tmp_path: Path) -> None:
    bootstrap = tmp_path / "config.yaml"
    settings = UpdatesConfig(dir=tmp_path / "releases", trusted_keys=[PUBLIC_HEX])
    assert effective_config_path(bootstrap, settings) == bootstrap  # nothing installed
    assert effective_config_path(bootstrap, None) == bootstrap  # no updates
    store = ReleaseStore(settings.dir)
    folder = make_release(store.staging / "c.d", CONFIG, version="4")
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW
    )
    state = store.switch(store.place(release))
    # Not kept yet: a start now takes it back (a power cut during the health check).
    assert effective_config_path(bootstrap, settings) == bootstrap
    assert store.current("config") is None
    state = store.switch(
        store.place(
            verify_release(
                make_release(store.staging / "c2.d", CONFIG, version="4"),
                trusted_keys=[crypto.ed25519_public(KEY)],
                installed=None,
                now=NOW,
            )
        )
    )
    store.keep(state, "healthy")
    running = effective_config_path(bootstrap, settings)
    assert running == settings.dir / "config" / "current" / "config.yaml"
    assert running.read_bytes() == CONFIG["config.yaml"]


def test_the_operator_tool_makes_signs_and_packs_a_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from provisioning.cli import main

    key = tmp_path / "release.key"
    assert main(["release", "keygen", str(key)]) == 0
    public = capsys.readouterr().out.strip().splitlines()[-1].strip().removeprefix("- ")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    folder = tmp_path / "model-3"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"weights")
    made = ["release", "make", str(folder), "--kind", "model", "--version", "3"]
    assert main([*made, "--expires", "2099-01-01", "--key", str(key)]) == 0
    release = verify_release(folder, trusted_keys=[bytes.fromhex(public)], installed="2", now=NOW)
    assert (release.kind, release.version, release.files) == ("model", "3", ("model.tflite",))
    assert main(["release", "pack", str(folder), str(tmp_path / "m.tar")]) == 0
    unpack(tmp_path / "m.tar", tmp_path / "out", max_bytes=1 << 20)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.tflite", METADATA]


# -- review fixes: restart after a rollback at start, a dead thread, the staging fsync ---


def place_agent(store: ReleaseStore, version: str, installed: str | None) -> object:
    wheel = f"edge_agent-{version}-py3-none-any.whl"  # the env is not built here
    folder = make_release(
        store.staging / f"a{version}.d", {wheel: b"PK"}, kind="agent", version=version
    )
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=installed, now=NOW
    )
    return store.switch(store.place(release))  # then the agent exits for systemd


def forget_pid(root: Path) -> None:
    """What a later process sees: the pid that took the trial is not its own."""
    body = json.loads((root / "state.json").read_text())
    body["pid"] = 0
    (root / "state.json").write_text(json.dumps(body))


def test_a_rollback_at_start_restarts_into_the_old_agent(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / "releases")
    store.keep(place_agent(store, "1", None), "healthy")  # type: ignore[arg-type]
    place_agent(store, "2", "1")
    assert store.repair() is not None  # v2's first start takes the trial, then it crashes
    forget_pid(store.root)
    host = FakeHost()
    up = updater(tmp_path, host)  # the next start: its repair points current back to 1
    up.start()
    assert up.store.current("agent") == "1"
    # Still the v2 process: it says so, then exits 75 so that systemd starts v1.
    assert [p["phase"] for p in host.published] == ["rolled_back", "restart"]


def test_a_rollback_of_an_unswitched_agent_does_not_restart(tmp_path: Path) -> None:
    host = FakeHost()
    store = ReleaseStore(tmp_path / "releases")
    folder = make_release(
        store.staging / "a.d", {"edge_agent-3-py3-none-any.whl": b"PK"}, kind="agent", version="3"
    )
    store.place(
        verify_release(folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW)
    )  # placed, cut off before the switch: this process already runs what `current` names
    updater(tmp_path, host).start()
    assert [p["phase"] for p in host.published] == ["rolled_back"]


def test_a_separate_repair_never_takes_the_agents_trial(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path)
    place_agent(store, "5", None)
    pre = store.repair(agent_start=False)  # the unit's ExecStartPre, before the new agent
    assert pre is not None and pre.phase == "trial" and pre.attempts == 0
    started = store.repair()  # the new agent's own start takes the trial
    assert started is not None and started.phase == "trial" and started.attempts == 1
    forget_pid(tmp_path)  # it died before keeping itself; the next ExecStartPre:
    again = store.repair(agent_start=False)
    assert again is not None and again.phase == "rolled_back" and store.current("agent") is None


def test_a_separate_repair_takes_back_an_agent_that_never_started(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path)
    place_agent(store, "5", None)
    assert store.repair(agent_start=False).phase == "trial"  # type: ignore[union-attr]
    # The new agent could not even import (its repair never ran): the next ExecStartPre.
    again = store.repair(agent_start=False)
    assert again is not None and again.phase == "rolled_back" and store.current("agent") is None
    assert "did not start" in again.reason


def test_a_new_agent_that_refuses_the_installed_config_release_fails_its_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config release the old agent installed (a key given twice, which it accepted) and
    a new agent that refuses it: the new agent ran the bootstrap config instead (other
    cameras, zones, rules), its health check passed on that, and the update was kept. On
    its trial it now exits 2, so the next start rolls it back to the agent that runs the
    release."""
    import argparse

    from edge_agent.cli import run as run_cli

    releases = tmp_path / "releases"
    bootstrap = tmp_path / "config.yaml"
    bootstrap.write_text(
        "site_id: s\ndevice_id: d\n"
        "cameras: [{id: cam1, source: {kind: sim, scenario: street}}]\n"
        f"mqtt: {{host: 127.0.0.1}}\noutbox: {{path: {tmp_path / 'outbox.db'}}}\n"
        f"updates: {{dir: {releases}, trusted_keys: [{PUBLIC_HEX}]}}\n"
    )
    store = ReleaseStore(releases)
    twice = bootstrap.read_bytes() + b"site_id: s\n"  # the old agent kept the last
    folder = make_release(store.staging / "c.d", {"config.yaml": twice}, version="4")
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW
    )
    store.keep(store.switch(store.place(release)), "healthy")
    place_agent(store, "2", None)  # the switch: this start is the new agent's trial
    ran: list[object] = []
    monkeypatch.setattr(run_cli, "run_agent", lambda config, **_: ran.append(config) or 0)
    code = run_cli.cmd_run(argparse.Namespace(config=str(bootstrap)))
    assert (code, ran) == (2, [])
    forget_pid(releases)  # systemd starts it again: the next start rolls it back
    again = store.repair(agent_start=False)
    assert again is not None and again.phase == "rolled_back"
    assert store.current("config") == "4"


class BrokenHost(FakeHost):
    """Its second look for open events fails (the update thread's first)."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def open_event_cameras(self) -> list[str]:
        self.looks += 1
        if self.looks > 1:
            raise OSError(28, "No space left on device")
        return ["cam1"]


@pytest.mark.parametrize("where", ["deferral", "switch"])
def test_an_update_thread_that_dies_before_the_switch_says_so(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = BrokenHost() if where == "deferral" else FakeHost()
    up = updater(tmp_path, host)
    if where == "switch":
        write = up.store._write_state

        def full_once(state: object, step: str) -> object:
            if step == "switching":
                monkeypatch.setattr(up.store, "_write_state", write)
                raise OSError(28, "No space left on device")
            return write(state, step)  # type: ignore[arg-type]

        monkeypatch.setattr(up.store, "_write_state", full_once)
    send(up, tmp_path, "r1", "1")
    outcome = final(host)
    assert outcome["phase"] == "rolled_back" and "No space left" in str(outcome["reason"])
    state = up.store.state()
    assert state is not None and state.phase == "rolled_back"
    assert up.report()["pending"] is None and up.store.current("config") is None
    assert host.applied == []  # never switched: nothing is applied again


def test_the_staging_folder_is_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_agent.update.store as store_module

    store = ReleaseStore(tmp_path)
    folder = make_release(store.staging / "c.d", CONFIG, version="4")
    release = verify_release(
        folder, trusted_keys=[crypto.ed25519_public(KEY)], installed=None, now=NOW
    )
    synced: list[Path] = []

    def record(path: Path) -> None:
        synced.append(path)
        assert path.exists(), path  # before the rename moved it away

    monkeypatch.setattr(store_module, "fsync_path", record)
    store.place(release)
    assert folder in synced and synced.index(folder) < synced.index(tmp_path / "config")
