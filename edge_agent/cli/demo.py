"""``edge-agent demo``: see the whole system work in one command.

A local mosquitto (or ``--broker``), the agent on a simulated camera publishing to
it, and a subscriber that prints every message as one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

from edge_agent.capture.sim_source import SIMULATOR_MISSING
from edge_agent.cli.common import error
from edge_agent.cli.run import run_agent
from edge_agent.config import AgentConfig, parse_config
from edge_agent.config_check import sim_scene_problem
from edge_agent.datafiles import (
    DataFileError,
    load_manifest,
    locate,
    resolve_media,
    resolve_model_file,
)

DEMO_MODEL = "ssd_mobilenet_v1"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="local broker + agent on a simulated camera + a subscriber printing events",
        description="See the whole system work in one command: a mosquitto of its own on a "
        "free loopback port (or --broker), the agent on a simulated street camera publishing "
        "to it, and a subscriber printing each message as one line. Needs mosquitto, the "
        "simulator (hw-sim) and the model (downloaded on first use where there is internet). "
        "Ctrl-C stops it.",
    )
    demo.add_argument(
        "--seconds", type=float, default=None, help="stop after N seconds (default: Ctrl-C)"
    )
    demo.add_argument("--broker", default=None, help="HOST:PORT of a broker to use instead")
    demo.add_argument(
        "--scenario", default="street", help="simulator scene (default street; hw-sim list)"
    )
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.broker import BrokerNotAvailable, LocalBroker

    if importlib.util.find_spec("hw_sim") is None:  # before any download
        return error(SIMULATOR_MISSING)
    scene_problem = sim_scene_problem(args.scenario)  # before any download or broker
    if scene_problem is not None:
        return error(f"--scenario: {scene_problem}")
    try:
        prefetch_demo_data()
    except DataFileError as problem:
        return error(str(problem))
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as workdir:
        if args.broker:
            host, _, port = args.broker.rpartition(":")
            if not port.isdigit() or not 0 < int(port) < 65536:
                return error(f"--broker must be HOST:PORT, not {args.broker!r}")
            return run_demo(
                Path(workdir), host or "127.0.0.1", int(port), args.seconds, args.scenario
            )
        try:
            with LocalBroker() as broker:
                print(f"demo: started mosquitto on 127.0.0.1:{broker.port}", flush=True)
                return run_demo(
                    Path(workdir), "127.0.0.1", broker.port, args.seconds, args.scenario
                )
        except BrokerNotAvailable as problem:
            return error(f"{problem} (install it: apt-get install mosquitto)")


def prefetch_demo_data() -> None:
    """Make sure the model and the footage the simulator cuts from are here (fetch if not)."""
    from edge_agent.datafiles import fetch

    manifest = load_manifest()
    model = manifest.model(DEMO_MODEL)
    if locate(model) is None:
        print(f"demo: fetching model {model.name} from {model.source_url}", flush=True)
        fetch(model)
    resolve_model_file(DEMO_MODEL)
    for entry in manifest.entries:
        if entry.kind == "media":
            resolve_media(entry.file, allow_fetch=True)


def demo_config(workdir: Path, host: str, port: int, scenario: str) -> AgentConfig:
    return parse_config(
        {
            "site_id": "demo-plaza",
            "device_id": "pi-001",
            "cameras": [
                {
                    "id": "cam1",
                    "fps": 5,
                    "source": {"kind": "sim", "scenario": scenario},
                    "zones": [{"name": "plaza", "polygon": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}],
                    # One rule and one analyzer, so the demo shows alerts and states too.
                    "rules": [{"kind": "intrusion", "zone": "plaza", "labels": ["person"]}],
                    "analyzers": [{"kind": "tamper"}],
                }
            ],
            "detector": {"model": DEMO_MODEL},
            "mqtt": {"host": host, "port": port, "topic_prefix": "city"},
            "outbox": {"path": str(workdir / "outbox.db")},
        },
        "<demo>",
    )


def run_demo(
    workdir: Path, host: str, port: int, seconds: float | None, scenario: str = "street"
) -> int:
    from edge_agent.mqtt import MqttSettings, Subscriber
    from edge_agent.watch import Watcher

    config = demo_config(workdir, host, port, scenario)

    watcher = Watcher(lambda line: print(line, flush=True))
    subscriber = Subscriber(
        MqttSettings.consumer(host, port, "edge-agent-demo-watch"),
        [f"{config.topic_root}/#"],
        watcher.on_message,
    )
    subscriber.start(timeout_s=10.0)
    print(
        f"demo: agent on simulated scene {scenario!r}, events under {config.topic_root}/ "
        f"({f'for {seconds:.0f} s' if seconds else 'Ctrl-C to stop'})",
        flush=True,
    )
    try:
        code = run_agent(config, seconds=seconds)
    finally:
        subscriber.stop()
    print("demo: done", file=sys.stderr)
    return code
