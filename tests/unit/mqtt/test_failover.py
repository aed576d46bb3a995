"""The broker list: which broker is dialled next (pure, fake clock), and its config."""

from __future__ import annotations

import socket

import pytest
from fakes.clock import FakeClock

from edge_agent.config import ConfigError, brokers_text, parse_config
from edge_agent.mqtt import MqttSettings
from edge_agent.mqtt.client import JitteredClient, new_client
from edge_agent.mqtt.drain import LinkState
from edge_agent.mqtt.failback import Failback, ProbeSchedule, probe_broker_port
from edge_agent.mqtt.failover import Attempt, Broker, BrokerChooser, FailoverSettings

A, B, C = Broker("a", 1883), Broker("b", 1883), Broker("c", 8883)


def chooser(*brokers: Broker, clock: FakeClock | None = None, **settings: object) -> BrokerChooser:
    return BrokerChooser(
        brokers,
        FailoverSettings(**settings),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )


def failures(chosen: BrokerChooser, count: int) -> list[Attempt]:
    return [chosen.next_attempt(connection_worked=False) for _ in range(count)]


def test_a_lost_connection_is_retried_on_the_same_broker_first() -> None:
    chosen = chooser(A, B, after_attempts=3)
    attempt = chosen.next_attempt(connection_worked=True)
    assert attempt == Attempt(0, restart_backoff=True)
    assert [a.index for a in failures(chosen, 2)] == [0, 0]


def test_after_the_bound_of_failed_attempts_the_next_broker_then_the_list_wraps() -> None:
    chosen = chooser(A, B, C, after_attempts=3, after_s=1000)
    chosen.next_attempt(connection_worked=True)
    attempts = failures(chosen, 9)
    assert [a.index for a in attempts] == [0, 0, 1, 1, 1, 2, 2, 2, 0]
    assert [i for i, a in enumerate(attempts) if a.moved] == [2, 5, 8]
    assert chosen.moves == 3 and chosen.broker == A


def test_the_time_bound_moves_on_before_the_attempt_bound() -> None:
    clock = FakeClock()
    chosen = chooser(A, B, clock=clock, after_attempts=100, after_s=20)
    chosen.next_attempt(connection_worked=True)
    failures(chosen, 1)  # the first failure starts the clock
    clock.now_s += 19.9
    assert failures(chosen, 1)[0].index == 0
    clock.now_s += 0.1
    assert failures(chosen, 1)[0] == Attempt(1, restart_backoff=True, moved=True)
    # The next broker gets its own bound, counted from its own first failure.
    clock.now_s += 100
    assert failures(chosen, 1)[0].index == 1
    clock.now_s += 19
    assert failures(chosen, 1)[0].index == 1


def test_the_backoff_restarts_on_each_broker_only_in_the_first_round() -> None:
    """Quick failover to a broker not tried yet; once all failed, keep backing off."""
    chosen = chooser(A, B, after_attempts=1)
    chosen.next_attempt(connection_worked=True)
    attempts = failures(chosen, 3)
    assert [(a.index, a.restart_backoff) for a in attempts] == [(1, True), (0, False), (1, False)]


def test_a_connection_that_worked_ends_the_outage() -> None:
    chosen = chooser(A, B, after_attempts=2)
    chosen.next_attempt(connection_worked=True)
    failures(chosen, 2)  # now on B
    assert chosen.current == 1
    # B worked for a while and was lost: B again first, A counts as untried again.
    assert chosen.next_attempt(connection_worked=True) == Attempt(1, restart_backoff=True)
    assert failures(chosen, 2)[-1] == Attempt(0, restart_backoff=True, moved=True)


def test_a_single_broker_is_never_left() -> None:
    chosen = chooser(A, after_attempts=1, after_s=0.001)
    assert {a.index for a in failures(chosen, 10)} == {0}
    assert not any(a.restart_backoff for a in failures(chosen, 3))
    assert chosen.moves == 0 and not chosen.wants_first


def test_a_planned_return_to_the_first_goes_at_once() -> None:
    chosen = chooser(A, B, after_attempts=1)
    failures(chosen, 1)
    assert chosen.current == 1 and chosen.wants_first
    chosen.plan_return_to_first()
    assert not chosen.wants_first  # already planned
    # Our own DISCONNECT ended a connection that worked: the plan wins over "retry B".
    assert chosen.next_attempt(connection_worked=True) == Attempt(
        0, restart_backoff=True, immediate=True, moved=True
    )
    assert chosen.current == 0 and not chosen.wants_first and chosen.moves == 2


def test_a_cancelled_plan_changes_nothing() -> None:
    chosen = chooser(A, B, after_attempts=1)
    failures(chosen, 1)
    chosen.plan_return_to_first()
    chosen.cancel_plan()
    assert chosen.next_attempt(connection_worked=True) == Attempt(1, restart_backoff=True)


def test_prefer_first_off_never_wants_the_first() -> None:
    chosen = chooser(A, B, after_attempts=1, prefer_first=False)
    failures(chosen, 1)
    assert chosen.current == 1 and not chosen.wants_first


@pytest.mark.parametrize(
    "settings",
    [{"after_attempts": 0}, {"after_s": 0}, {"probe_interval_s": -1}, {"probes_to_return": 0}],
)
def test_failover_settings_refuse_nonsense(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FailoverSettings(**settings)  # type: ignore[arg-type]


# -- config ---------------------------------------------------------------------------

MINIMAL: dict[str, object] = {
    "site_id": "s1",
    "device_id": "d1",
    "cameras": [{"id": "cam1", "source": {"kind": "sim"}}],
}


def problems(mqtt: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config({**MINIMAL, "mqtt": mqtt})
    return raised.value.problems


def test_a_broker_list_becomes_the_links_settings() -> None:
    config = parse_config(
        {
            **MINIMAL,
            "mqtt": {
                "brokers": [{"host": "a.example", "port": 8883}, {"host": "b.example"}],
                "failover": {"after_attempts": 2, "prefer_first": False},
            },
        }
    )
    settings = MqttSettings.from_config(config)
    assert settings.broker_list == (Broker("a.example", 8883), Broker("b.example", 1883))
    assert (settings.host, settings.port) == ("a.example", 8883)
    assert settings.failover == FailoverSettings(after_attempts=2, prefer_first=False)
    assert brokers_text(config.mqtt) == "a.example:8883, then b.example:1883"


def test_host_and_port_are_a_list_of_one() -> None:
    config = parse_config({**MINIMAL, "mqtt": {"host": "x.example", "port": 1884}})
    settings = MqttSettings.from_config(config)
    assert settings.broker_list == (Broker("x.example", 1884),) and settings.brokers == ()
    assert brokers_text(config.mqtt) == "x.example:1884"


@pytest.mark.parametrize(
    ("mqtt", "expected"),
    [
        ({"brokers": []}, "mqtt.brokers: List should have at least 1 item"),
        ({"brokers": [{"port": 1883}]}, "mqtt.brokers[0].host: Field required"),
        ({"brokers": [{"host": ""}]}, "mqtt.brokers[0].host: String should have at least 1"),
        ({"brokers": [{"host": "a", "port": 0}]}, "mqtt.brokers[0].port: Input should be"),
        ({"brokers": [{"host": "a", "tls": {}}]}, "mqtt.brokers[0].tls: unknown key"),
        ({"brokers": "a:1883"}, "mqtt.brokers: Input should be a valid list"),
        (
            {"host": "a", "brokers": [{"host": "b"}]},
            "mqtt: Value error, give either host/port (one broker) or brokers",
        ),
        (
            {"brokers": [{"host": "a"}, {"host": "b"}, {"host": "a", "port": 1883}]},
            "mqtt: Value error, brokers: listed twice: a:1883",
        ),
        ({"failover": {"after_attempts": 0}}, "mqtt.failover.after_attempts: Input should be"),
        ({"failover": {"probe_every_s": 5}}, "mqtt.failover.probe_every_s: unknown key"),
    ],
)
def test_bad_broker_lists_are_refused_clearly(mqtt: dict[str, object], expected: str) -> None:
    found = problems(mqtt)
    assert any(p.startswith(expected) for p in found), found


# -- paho's reconnect hook and the failback thread (no broker, no socket) ---------------


def test_the_client_dials_the_broker_the_chooser_picks() -> None:
    settings = MqttSettings(
        "a",
        1883,
        "dev",
        brokers=(A, C),
        failover=FailoverSettings(after_attempts=2),
    )
    client = new_client(settings, clean_session=True, uniform=lambda low, high: low)
    assert isinstance(client, JitteredClient)
    client.connect_async("a", 1883)
    dialled = []
    for _ in range(4):  # each call: the previous attempt failed (no CONNACK)
        client._reconnect_wait()
        dialled.append((client.host, client.port))
    assert dialled == [("a", 1883), ("c", 8883), ("c", 8883), ("a", 1883)]
    client._reconnect_delay = None  # what paho does on a successful CONNACK
    client._reconnect_wait()  # that connection was lost: the same broker first
    assert (client.host, client.port) == ("a", 1883) and client.brokers.moves == 2


class FailbackRig:
    """A Failback on the second of two brokers, its probe and leave recorded."""

    def __init__(self, *, inflight: int, leave_ok: bool = True) -> None:
        self.chooser = chooser(A, B, after_attempts=1)
        failures(self.chooser, 1)  # now on B
        self.link = LinkState(ready=True)
        self.inflight = inflight
        self.left = 0
        self.leave_ok = leave_ok
        self.failback = Failback(
            self.chooser,
            self.link,
            inflight=lambda: self.inflight,
            leave=self.leave,
            probe=lambda broker: True,
            drain_timeout_s=0.05,
        )

    def leave(self) -> bool:
        self.left += 1
        return self.leave_ok


def test_failback_leaves_once_nothing_is_in_flight_and_keeps_the_hold() -> None:
    rig = FailbackRig(inflight=0)
    assert rig.failback._move_back(A)
    assert rig.left == 1
    assert rig.link.hold  # lifted by the birth on the first broker, not before
    assert rig.chooser.next_attempt(connection_worked=True).immediate


def test_failback_is_put_off_while_messages_stay_in_flight() -> None:
    rig = FailbackRig(inflight=3)
    assert not rig.failback._move_back(A)
    assert rig.left == 0 and not rig.link.hold
    assert rig.chooser.wants_first  # no plan left behind: the next probe tries again


def test_failback_that_cannot_say_offline_stays_put() -> None:
    rig = FailbackRig(inflight=0, leave_ok=False)
    assert not rig.failback._move_back(A)
    assert rig.left == 1 and not rig.link.hold
    assert rig.chooser.next_attempt(connection_worked=True) == Attempt(1, restart_backoff=True)


def test_the_probe_is_a_tcp_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]
        assert probe_broker_port(Broker("127.0.0.1", port), None, 1.0)
    assert not probe_broker_port(Broker("127.0.0.1", port), None, 1.0)  # closed now


def test_a_return_that_does_not_hold_doubles_the_probe_interval() -> None:
    schedule = ProbeSchedule(30.0, cap_s=100.0)
    assert schedule.may_probe(on_first=False, ready=True)  # nothing pending: probe
    schedule.returned()
    assert not schedule.may_probe(on_first=True, ready=False)  # still connecting there
    assert schedule.may_probe(on_first=False, ready=True)  # failed over again: it did not hold
    assert schedule.interval_s == 60.0
    schedule.returned()
    schedule.may_probe(on_first=False, ready=False)
    schedule.returned()
    schedule.may_probe(on_first=False, ready=False)
    assert schedule.interval_s == 100.0  # capped
    schedule.returned()
    assert not schedule.may_probe(on_first=True, ready=True)  # it held: back to the base
    assert schedule.interval_s == 30.0 and schedule.may_probe(on_first=True, ready=True)
