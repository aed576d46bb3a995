"""sd_notify by hand: the datagram, the abstract namespace, WATCHDOG_USEC, never raising."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
from fakes.notify import NotifyListener
from helpers import wait_until

from edge_agent.service.notify import (
    NullNotifier,
    SocketNotifier,
    notifier_from_env,
    watchdog_interval_s,
)


class RecordingSocket:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[bytes, str | bytes]] = []
        self.fail = fail
        self.closed = False

    def sendto(self, data: bytes, address: str | bytes, /) -> int:
        if self.fail:
            raise ConnectionRefusedError("no one listening")
        self.sent.append((data, address))
        return len(data)

    def close(self) -> None:
        self.closed = True


def test_fields_go_as_one_datagram_of_lines() -> None:
    sock = RecordingSocket()
    notifier = SocketNotifier("/run/systemd/notify", sock)
    assert notifier.send("READY=1", "STATUS=1 camera(s) ok")
    assert sock.sent == [(b"READY=1\nSTATUS=1 camera(s) ok", "/run/systemd/notify")]


def test_an_at_address_is_the_abstract_namespace() -> None:
    sock = RecordingSocket()
    SocketNotifier("@sd-notify/x", sock).send("WATCHDOG=1")
    assert sock.sent == [(b"WATCHDOG=1", b"\0sd-notify/x")]


def test_a_failed_send_is_false_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    notifier = SocketNotifier("/nowhere", RecordingSocket(fail=True))
    assert not notifier.send("WATCHDOG=1")
    assert not notifier.send("WATCHDOG=1")
    assert caplog.text.count("sd_notify to /nowhere failed") == 1


def test_a_real_socket_receives_the_message() -> None:
    with NotifyListener() as listener:
        notifier = notifier_from_env({"NOTIFY_SOCKET": listener.path})
        assert notifier.enabled
        assert notifier.send("READY=1", "STATUS=up")
        wait_until(lambda: listener.messages(), 10.0, "the datagram")
        assert listener.messages() == [{"READY": "1", "STATUS": "up"}]
        notifier.close()


def test_a_real_abstract_socket_receives_the_message() -> None:
    name = f"edge-agent-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(b"\0" + name.encode())
    server.settimeout(10.0)
    try:
        notifier = notifier_from_env({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.send("STOPPING=1")
        assert server.recv(100) == b"STOPPING=1"
        notifier.close()
    finally:
        server.close()


@pytest.mark.parametrize("value", ["", "relative/path"])
def test_no_or_a_bad_socket_is_a_no_op(value: str) -> None:
    notifier = notifier_from_env({"NOTIFY_SOCKET": value} if value else {})
    assert isinstance(notifier, NullNotifier)
    assert not notifier.enabled and not notifier.send("READY=1")


def test_the_watchdog_period_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "60000000"}) == 30.0
    own = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval_s(own) == 1.0


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "100", "WATCHDOG_PID": "1"},
    ],
)
def test_no_watchdog_when_not_asked_for_this_process(env: dict[str, str]) -> None:
    if env.get("WATCHDOG_PID") == str(os.getpid()):
        pytest.skip("running as pid 1")
    assert watchdog_interval_s(env) is None
