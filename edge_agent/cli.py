"""``edge-agent``: the command line a technician and a developer use.

Exit codes: 0 success, 1 the agent failed while running, 2 bad input (config,
file, model) — with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from edge_agent import __version__
from edge_agent.capture import CaptureError, EndOfStream, open_source
from edge_agent.config import AgentConfig, ConfigError, OpenCVSource, load_config
from edge_agent.datafiles import DataFileError
from edge_agent.outbox import OutboxError
from edge_agent.pipeline import FrameOutput
from edge_agent.security import TlsConfigError, check_secret_file, tls_problems
from edge_agent.types import OutboundMessage

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

log = logging.getLogger("edge_agent")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _error(message: str) -> int:
    print(f"edge-agent: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


# ---------------------------------------------------------------- check-config


def semantic_problems(config: AgentConfig, config_path: Path | None = None) -> list[str]:
    """What the schema cannot see: files that must exist, names that must be known."""
    from edge_agent.datafiles import load_manifest
    from edge_agent.detect.labels import LABEL_SETS

    problems: list[str] = []
    try:
        manifest = load_manifest()
        try:
            entry = manifest.model(config.detector.model)
            problems.extend(_label_problems(config, frozenset(LABEL_SETS[entry.labels])))
        except (KeyError, DataFileError):
            known = ", ".join(e.name for e in manifest.entries if e.kind == "model")
            problems.append(
                f"detector.model: unknown model {config.detector.model!r} (known: {known})"
            )
    except DataFileError as error:
        problems.append(f"detector.model: cannot read the model manifest: {error}")
    tls = config.mqtt.tls
    if tls is not None:
        problems.extend(
            f"mqtt.tls: {problem}"
            for problem in tls_problems(
                ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file
            )
        )
    if config.mqtt.password is not None and config_path is not None:
        try:
            check_secret_file(config_path, "config file holding mqtt.password")
        except TlsConfigError as error:
            problems.append(f"mqtt.password: {error}")
    for index, camera in enumerate(config.cameras):
        source = camera.source
        if isinstance(source, OpenCVSource) and "://" not in source.uri:
            is_device = source.uri.isdigit() or source.uri.startswith("/dev/video")
            if not is_device and not Path(source.uri).is_file():
                problems.append(f"cameras[{index}].source.uri: video file not found: {source.uri}")
    return problems


def _label_problems(config: AgentConfig, model_labels: frozenset[str]) -> list[str]:
    """Labels the model cannot produce: a typo here means a rule that silently never fires.
    (A rule label the detector is not asked for is fine: the rule is narrower.)"""
    problems = [
        f"detector.labels: {label!r} is not a label of model {config.detector.model}"
        for label in config.detector.labels
        if label not in model_labels
    ]
    for c, camera in enumerate(config.cameras):
        places = [
            (f"cameras[{c}].zones[{z}].labels", zone.labels) for z, zone in enumerate(camera.zones)
        ]
        places += [
            (f"cameras[{c}].rules[{r}].labels", getattr(rule, "labels", None))
            for r, rule in enumerate(camera.rules)
        ]
        for where, labels in places:
            problems.extend(
                f"{where}: {label!r} is not a label of model {config.detector.model}"
                for label in labels or ()
                if label not in model_labels
            )
    return problems


def load_checked_config(path: Path) -> AgentConfig | None:
    """The config, with every problem (schema and beyond) printed to stderr if any."""
    try:
        config = load_config(path)
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return None
    problems = semantic_problems(config, path)
    if problems:
        print(str(ConfigError(str(path), problems)), file=sys.stderr)
        return None
    return config


def cmd_check_config(args: argparse.Namespace) -> int:
    path = Path(args.config)
    config = load_checked_config(path)
    if config is None:
        return EXIT_BAD_INPUT
    print(
        f"{path}: OK — site {config.site_id}, device {config.device_id}, "
        f"{len(config.cameras)} camera(s), model {config.detector.model}, "
        f"broker {config.mqtt.host}:{config.mqtt.port}, topics under {config.topic_root}/"
    )
    return EXIT_OK


# ---------------------------------------------------------------- run


def run_agent(config: AgentConfig, *, seconds: float | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``seconds``); stop cleanly either way."""
    from edge_agent.app import Agent
    from edge_agent.detect.tflite import ModelLoadError

    try:
        agent = Agent(config)
    except (DataFileError, ModelLoadError, CaptureError, ValueError) as error:
        return _error(str(error))
    except (OutboxError, OSError) as error:  # the disk, not the input: exit 1
        print(f"edge-agent: error: cannot start: {error}", file=sys.stderr)
        return EXIT_FAILED

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        agent.request_stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    agent.start()
    try:
        agent.wait(seconds)
    finally:
        agent.stop()
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    config = load_checked_config(Path(args.config))
    if config is None:
        return EXIT_BAD_INPUT
    return run_agent(config)


# ---------------------------------------------------------------- replay


class _PrintSink:
    """Replay's sink: each event as one JSON line on stdout (no broker, no outbox)."""

    def __init__(self, as_json: bool, boot_id: str) -> None:
        self._as_json = as_json
        self._boot_id = boot_id
        self.count = 0

    def emit(self, messages: Sequence[OutboundMessage], output: FrameOutput) -> None:
        from edge_agent.encode import alert_body, counts_body, event_body, state_body

        if self._as_json:
            bodies = [alert_body(a, self._boot_id) for a in output.alerts]
            bodies += [state_body(s, self._boot_id) for s in output.states]
            bodies += [counts_body(c, self._boot_id) for c in output.counts]
            for body in bodies:
                print(json.dumps(body, separators=(",", ":")), flush=True)
        for event in output.events:
            self.count += 1
            body = event_body(event, self._boot_id)
            if self._as_json:
                print(json.dumps(body, separators=(",", ":")), flush=True)
            else:
                zones = ",".join(event.zones) or "-"
                print(
                    f"{event.frame_time_s:10.2f}s {event.lifecycle.value.upper():6} "
                    f"{event.label:10} score={event.score:.2f} zones={zones} id={event.event_id}",
                    flush=True,
                )


def cmd_replay(args: argparse.Namespace) -> int:
    import threading as _threading

    from edge_agent.app import build_detector, build_pipeline, new_boot_id
    from edge_agent.detect.tflite import ModelLoadError

    config = load_checked_config(Path(args.config))
    if config is None:
        return EXIT_BAD_INPUT
    video = Path(args.video)
    if not video.is_file():
        return _error(f"video file not found: {video}")
    base_camera = config.cameras[0]
    camera = base_camera.model_copy(
        update={"source": OpenCVSource(uri=str(video), loop=False, realtime=False)}
    )
    try:
        detector = build_detector(config)
        source = open_source(camera, realtime=False)
    except (DataFileError, ModelLoadError, CaptureError) as error:
        return _error(str(error))
    boot_id = new_boot_id()
    sink = _PrintSink(args.json, boot_id)
    # Offline the video's own time runs as fast as we can decode, so every frame is analysed:
    # that is what makes replay a faithful evaluation of what the live agent would see.
    pipeline = build_pipeline(
        config,
        camera,
        detector=detector,
        detector_lock=_threading.Lock(),
        boot_id=boot_id,
        sink=sink,
    )
    step = max(1, round(source.nominal_fps / camera.fps)) if args.every is None else args.every
    index = 0
    last_frame = None
    try:
        while True:
            try:
                frame = source.read(timeout_s=5.0)
            except EndOfStream:
                break
            if frame is None:
                continue
            if index % step == 0:
                pipeline.process(frame, always_detect=args.detect_every_frame)
                last_frame = frame
            index += 1
        pipeline.finish(last_frame)
    finally:
        source.close()
    clock = pipeline.clock
    print(
        f"replay: {clock.frames} frames analysed of {index}, "
        f"detector ran on {clock.detector_runs}, {sink.count} events",
        file=sys.stderr,
    )
    return EXIT_OK


# ---------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.broker import BrokerNotAvailable, LocalBroker
    from edge_agent.demo import prefetch_demo_data, run_demo

    try:
        prefetch_demo_data()
    except DataFileError as error:
        return _error(str(error))
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as workdir:
        if args.broker:
            host, _, port = args.broker.rpartition(":")
            if not port.isdigit() or not 0 < int(port) < 65536:
                return _error(f"--broker must be HOST:PORT, not {args.broker!r}")
            return run_demo(
                Path(workdir), host or "127.0.0.1", int(port), args.seconds, args.scenario
            )
        try:
            with LocalBroker() as broker:
                print(f"demo: started mosquitto on 127.0.0.1:{broker.port}", flush=True)
                return run_demo(
                    Path(workdir), "127.0.0.1", broker.port, args.seconds, args.scenario
                )
        except BrokerNotAvailable as error:
            return _error(f"{error} (install it: apt-get install mosquitto)")


# ---------------------------------------------------------------- watch


def cmd_watch(args: argparse.Namespace) -> int:
    from edge_agent.mqtt import MqttSettings, Subscriber, SubscriberError
    from edge_agent.watch import Watcher, topic_filter

    watcher = Watcher(lambda line: print(line, flush=True), as_json=args.json)
    topic = topic_filter(args.prefix, args.site, args.device)
    try:
        settings = MqttSettings.consumer(
            args.host,
            args.port,
            args.client_id or f"edge-agent-watch-{os.getpid()}",
            protocol=args.protocol,
            username=args.username,
            password=os.environ.get("EDGE_AGENT_WATCH_PASSWORD") if args.username else None,
            tls_ca_file=args.ca_file,
            tls_cert_file=args.cert_file,
            tls_key_file=args.key_file,
        )
        subscriber = Subscriber(settings, [topic], watcher.on_message)
    except ValueError as error:  # TLS files: missing, unreadable, too open
        return _error(str(error))
    try:
        subscriber.start(timeout_s=args.connect_timeout_s)
    except SubscriberError as error:
        return _error(str(error))
    print(f"watching {topic} on {args.host}:{args.port}", file=sys.stderr, flush=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _s, _f: stop.set())
    try:
        stop.wait(args.seconds)
    finally:
        subscriber.stop()
    if watcher.duplicates:
        print(f"watch: {watcher.duplicates} duplicate(s) dropped", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from edge_agent.commands import detect as detect_command
    from edge_agent.commands import models as models_command

    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    run.add_argument("--config", required=True, help="the agent's YAML config file")
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check-config", help="validate a config file, list every problem")
    check.add_argument("config", help="the YAML config file")
    check.set_defaults(handler=cmd_check_config)

    replay = commands.add_parser(
        "replay", help="run the full pipeline offline on a video file and print the events"
    )
    replay.add_argument("video", help="a video file")
    replay.add_argument(
        "--config", required=True, help="config whose first camera's settings apply"
    )
    replay.add_argument("--json", action="store_true", help="JSON lines (the event payloads)")
    replay.add_argument(
        "--every",
        type=_positive_int,
        default=None,
        help="analyse every Nth frame (default: by camera fps)",
    )
    replay.add_argument("--detect-every-frame", action="store_true", help="bypass the motion gate")
    replay.set_defaults(handler=cmd_replay)

    demo = commands.add_parser(
        "demo", help="local broker + agent on a simulated camera + a subscriber printing events"
    )
    demo.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    demo.add_argument("--broker", default=None, help="HOST:PORT of a broker to use instead")
    demo.add_argument("--scenario", default="street", help="simulator scene (hw-sim list)")
    demo.set_defaults(handler=cmd_demo)

    watch = commands.add_parser(
        "watch", help="follow a site's events as the command centre sees them (dedup, seq gaps)"
    )
    watch.add_argument("--host", default="127.0.0.1")
    watch.add_argument("--port", type=int, default=1883)
    watch.add_argument("--prefix", default="city", help="topic prefix (default: city)")
    watch.add_argument("--site", default=None, help="one site (default: every site)")
    watch.add_argument("--device", default=None, help="one device (default: every device)")
    watch.add_argument("--json", action="store_true", help="JSON lines instead of text")
    watch.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    watch.add_argument("--protocol", choices=("5", "3.1.1"), default="5")
    watch.add_argument("--client-id", default=None)
    watch.add_argument("--username", default=None, help="password from $EDGE_AGENT_WATCH_PASSWORD")
    watch.add_argument("--ca-file", type=Path, default=None)
    watch.add_argument("--cert-file", type=Path, default=None)
    watch.add_argument("--key-file", type=Path, default=None)
    watch.add_argument("--connect-timeout-s", type=float, default=10.0)
    watch.set_defaults(handler=cmd_watch)

    models_command.register(commands)
    detect_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    handler = args.handler
    try:
        code: int = handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
