"""The checklist in the order a technician fixes things: config, cameras, model, outbox,
clock, broker. Each result is reported as soon as it is known (``report``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from edge_agent.assemble import birth_payload, build_detector, camera_models, new_boot_id
from edge_agent.capture import open_source
from edge_agent.config import AgentConfig
from edge_agent.config_check import check_config_file
from edge_agent.detect.base import Detector
from edge_agent.encode import Topics
from edge_agent.mqtt import MqttSettings
from edge_agent.mqtt.probe import BrokerProbe, probe_broker
from edge_agent.runlock import running_pid
from edge_agent.selftest.checks import (
    SourceOpener,
    check_broker,
    check_camera,
    check_clock,
    check_config,
    check_model,
    check_outbox,
    check_standby_broker,
    sample_camera,
)
from edge_agent.selftest.clock import ClockState, read_clock_state
from edge_agent.selftest.device import LedCheck, check_page
from edge_agent.selftest.report import CheckResult
from edge_agent.types import Frame


class BrokerProber(Protocol):
    def __call__(
        self,
        settings: MqttSettings,
        topics: Topics,
        *,
        birth: Mapping[str, object],
        timeout_s: float,
        centre_wait_s: float,
        on_ready: Callable[[BrokerProbe], None] | None,
    ) -> BrokerProbe: ...


@dataclass(frozen=True)
class SelftestOptions:
    camera_s: float = 3.0  # how long each camera is watched to measure its frame rate
    timeout_s: float = 10.0  # each broker step's bound
    centre_wait_s: float = 0.0  # 0: the round trip through the centre is skipped


def selftest_settings(config: AgentConfig) -> MqttSettings:
    """The device's broker settings under a client id of its own (a running agent keeps
    its connection) and a session that ends with the test."""
    return replace(
        MqttSettings.from_config(config),
        client_id=f"{config.client_id}-selftest",
        session_expiry_s=0,
    )


def check_running_agent(pid: int) -> CheckResult:
    holder = f"pid {pid}" if pid else "another process"
    return CheckResult(
        "agent",
        "WARN",
        f"the agent is running on this config ({holder}): cameras and broker not checked",
        "stop it to run every check (sudo systemctl stop edge-agent), start it again after",
        {"pid": pid},
    )


def run_selftest(
    path: Path,
    options: SelftestOptions = SelftestOptions(),
    *,
    report: Callable[[CheckResult], None] = lambda result: None,
    clock_state: Callable[[], ClockState] = read_clock_state,
    opener: SourceOpener = open_source,
    build: Callable[[AgentConfig], Detector] = build_detector,
    prober: BrokerProber = probe_broker,
    led_pin_factory: object = None,
) -> list[CheckResult]:
    results: list[CheckResult] = []

    def add(result: CheckResult) -> None:
        results.append(result)
        report(result)

    check = check_config_file(path)
    add(check_config(path, check))
    config = check.config
    if config is None:
        return results

    agent_pid = running_pid(config.outbox.path)
    if agent_pid is not None:
        # Its cameras are open and the broker binds its client id to its certificate: a
        # second login as this device would throw the agent off and wipe its session.
        add(check_running_agent(agent_pid))
    # The LED first: lit from here to the end, through the cameras' seconds, to be seen.
    led = LedCheck(config.status.led, pin_factory=led_pin_factory) if config.status.led else None
    try:
        if led is not None:
            add(led.check(agent_running=agent_pid is not None))
        live: Frame | None = None
        for camera in config.cameras:
            if agent_pid is not None:
                add(CheckResult(f"camera {camera.id}", "SKIP", "in use by the running agent"))
                continue
            sample = sample_camera(camera, options.camera_s, opener)
            add(check_camera(camera, sample))
            live = live or sample.last
        add(check_model(config, live, build, cameras_in_use=agent_pid is not None))
        add(check_outbox(config.outbox.path, config.outbox.max_bytes))
        add(check_clock(clock_state(), time.time()))
        if config.web.enabled:
            add(check_page(config, path, agent_running=agent_pid is not None))
        if agent_pid is not None:
            add(CheckResult("broker", "SKIP", "the running agent holds this device's session"))
            return results

        settings = selftest_settings(config)
        birth = {
            **birth_payload(config, new_boot_id(), camera_models=camera_models(config)),
            "selftest": True,
        }
        where = f"{settings.host}:{settings.port}"
        early: list[CheckResult] = []

        def ready(so_far: BrokerProbe) -> None:
            """Broker, birth and commands are known: said now, while the centre is awaited."""
            early.extend(check_broker(so_far, where, settings.client_id)[:-1])
            for line in early:
                add(line)

        probe = prober(
            settings,
            Topics(config.topic_root),
            birth=birth,
            timeout_s=options.timeout_s,
            centre_wait_s=options.centre_wait_s,
            on_ready=ready,
        )
        for line in check_broker(probe, where, settings.client_id)[len(early) :]:
            add(line)
        for standby in settings.broker_list[1:]:
            # Failover only helps if the next broker takes this device too: connect, birth
            # and the command loop-back on each, with the same TLS and identity.
            alone = replace(settings, host=standby.host, port=standby.port, brokers=())
            standby_probe = prober(
                alone,
                Topics(config.topic_root),
                birth=birth,
                timeout_s=options.timeout_s,
                centre_wait_s=0.0,
                on_ready=None,
            )
            add(check_standby_broker(standby_probe, str(standby)))
        return results
    finally:
        if led is not None:
            led.close()
