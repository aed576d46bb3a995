"""When READY, STATUS and WATCHDOG are sent: the ServiceMonitor's decisions on plain values."""

from __future__ import annotations

from dataclasses import replace

from edge_agent.service.health import STATUS_PERIOD_S, ServiceHealth, ServiceMonitor

UP = ServiceHealth(
    starting=False,
    cameras=("cam1", "cam2"),
    silent_cameras=(),
    frames_total=0,
    outbox_depth=3,
    outbox_writable=True,
    uplink_connected=True,
)


class Recorder:
    enabled = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    def send(self, *fields: str) -> bool:
        self.sent.append(fields)
        return True

    def close(self) -> None:
        pass


def monitor(watchdog_s: float | None = 1.0) -> tuple[ServiceMonitor, Recorder]:
    recorder = Recorder()
    return ServiceMonitor(recorder, watchdog_s=watchdog_s), recorder


def test_ready_only_once_the_cameras_are_up_then_watchdog_each_period() -> None:
    service, sent = monitor()
    service.tick(replace(UP, starting=True), 0.0)
    assert sent.sent == [("STATUS=starting: 2 camera(s); outbox 3 queued; broker connected",)]
    service.tick(UP, 1.0)
    assert sent.sent[-1][:2] == ("WATCHDOG=1", "READY=1")
    service.tick(replace(UP, frames_total=10), 1.5)  # not due yet
    assert len(sent.sent) == 2
    service.tick(replace(UP, frames_total=10), 2.0)
    assert sent.sent[-1] == (
        "WATCHDOG=1",
        "STATUS=2 camera(s) ok, 10.0 fps; outbox 3 queued; broker connected",
    )
    assert service.watchdog_pings == 2


def test_no_watchdog_while_a_camera_is_silent_or_the_outbox_refuses_writes() -> None:
    service, sent = monitor()
    service.tick(UP, 0.0)
    service.tick(replace(UP, silent_cameras=("cam2",)), 1.0)
    assert sent.sent[-1] == (
        "STATUS=camera(s) silent: cam2 of 2, 0.0 fps; outbox 3 queued; broker connected",
    )
    service.tick(replace(UP, outbox_writable=False, uplink_connected=False), 2.0)
    assert sent.sent[-1] == (
        "STATUS=2 camera(s) ok, 0.0 fps; outbox NOT WRITABLE (3 queued); broker down",
    )
    service.tick(UP, 3.0)
    assert sent.sent[-1][0] == "WATCHDOG=1"
    assert service.watchdog_pings == 2


def test_without_a_watchdog_status_still_goes_out_at_its_own_pace() -> None:
    service, sent = monitor(watchdog_s=None)
    service.tick(UP, 0.0)
    service.tick(UP, STATUS_PERIOD_S / 2)
    service.tick(UP, STATUS_PERIOD_S)
    assert [m[0] for m in sent.sent] == [
        "READY=1",
        "STATUS=2 camera(s) ok, 0.0 fps; outbox 3 queued; broker connected",
    ]
    assert service.watchdog_pings == 0


def test_reload_pauses_the_pings_and_says_ready_again() -> None:
    service, sent = monitor()
    service.tick(UP, 0.0)
    service.reloading(123)
    service.tick(UP, 5.0)  # paused: nothing
    assert sent.sent[-1] == ("RELOADING=1", "MONOTONIC_USEC=123", "STATUS=reloading the config")
    service.reloaded("config x reloaded (cameras)")
    assert sent.sent[-1] == ("READY=1", "STATUS=config x reloaded (cameras)")
    service.tick(UP, 5.0)
    assert sent.sent[-1][0] == "WATCHDOG=1"


def test_stopping_is_said_once_and_silences_the_rest() -> None:
    service, sent = monitor()
    service.tick(UP, 0.0)
    service.stopping()
    service.tick(UP, 10.0)
    assert sent.sent[-1] == ("STOPPING=1", "STATUS=stopping")
