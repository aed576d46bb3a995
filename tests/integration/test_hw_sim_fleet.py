"""``hw-sim fleet`` against a real mosquitto: ten simulated devices (the agent's real
outbox and publisher) deliver every seq once; a broker SIGKILL and restart brings every
device back with no seq gap the tool cannot explain (issue 13). The figures for 500
devices are in bench/README.md; these runs only check the accounting end to end."""

from __future__ import annotations

import json

import pytest
from hw_sim.cli import main as hw_sim_main
from hw_sim.fleet import PROFILES, FleetOptions, run_fleet

from edge_agent.broker import LocalBroker


def test_ten_devices_over_tls_deliver_every_seq_once(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = "fleet --devices 10 --duration-s 3 --profile busy --tls --processes 0"
    code = hw_sim_main([*arguments.split(), "--ramp-s", "0.5", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["connected_at_start"] == 10
    assert report["sent"] > 0
    assert report["received"] == report["sent"]
    assert report["duplicates"] == 0
    assert report["undelivered"] == report["lost_in_broker"] == report["unexplained_missing"] == 0
    assert report["latency_p50_ms"] is not None
    assert report["restart"] is None


def test_a_broker_sigkill_and_restart_leaves_no_unexplained_gap(
    private_broker: LocalBroker,
) -> None:
    options = FleetOptions(
        devices=10,
        duration_s=4.0,
        profile=PROFILES["busy"],
        processes=0,
        kill_broker_at_s=1.0,
        broker_down_s=0.5,
        ramp_s=0.5,
    )
    report = run_fleet(options, broker=private_broker, log=lambda line: None)
    restart = report.restart
    assert restart is not None
    assert restart.devices_back == 10  # every device reconnected (the run waits for it)
    assert report.unexplained_missing == 0
    assert report.unexplained_duplicates == 0
    assert report.undelivered == 0  # every backlog drained
    assert report.received + report.lost_in_broker == report.sent
    assert restart.drain.backlog_msgs_max > 0  # the kill did cut the devices off
    assert len(restart.histogram) >= 1
