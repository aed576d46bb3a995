"""``edge-agent watch``: follow a site's events as the command centre sees them; with
``--fleet``, one line per device, the ones in trouble first (edge_agent/cli/fleet_view.py)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.cli.common import EXIT_OK, error
from edge_agent.cli.fleet_view import add_fleet_arguments, run_fleet

if TYPE_CHECKING:
    from edge_agent.mqtt import ReceivedMessage, Subscriber


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = subparsers.add_parser(
        "watch",
        help="follow a site's events as the command centre sees them (dedup, seq gaps)",
        description="Follow what the devices publish, as the command centre sees it: one "
        "line per message (or JSON lines), duplicates dropped, seq gaps reported as missing, "
        "late or lost. A device's own certificate may read only its command topics, so run "
        "it with the centre's credentials; --fleet: one line per device instead.",
    )
    watch.add_argument("--host", default="127.0.0.1", help="the broker (default 127.0.0.1)")
    watch.add_argument("--port", type=int, default=1883, help="its port (default 1883)")
    watch.add_argument("--prefix", default="city", help="topic prefix (default: city)")
    watch.add_argument("--site", default=None, help="one site (default: every site)")
    watch.add_argument("--device", default=None, help="one device (default: every device)")
    watch.add_argument("--json", action="store_true", help="JSON lines instead of text")
    watch.add_argument("--seconds", type=float, default=None, help="stop after N seconds")
    watch.add_argument(
        "--protocol", choices=("5", "3.1.1"), default="5", help="MQTT version (default 5)"
    )
    watch.add_argument(
        "--client-id", default=None, help="default edge-agent-watch-PID (one of its own)"
    )
    watch.add_argument("--username", default=None, help="password from $EDGE_AGENT_WATCH_PASSWORD")
    watch.add_argument(
        "--ca-file", type=Path, default=None, help="TLS: the CA that signed the broker"
    )
    watch.add_argument(
        "--cert-file", type=Path, default=None, help="TLS: this client's certificate"
    )
    watch.add_argument("--key-file", type=Path, default=None, help="TLS: its private key")
    watch.add_argument(
        "--connect-timeout-s",
        type=float,
        default=10.0,
        help="give up when the broker does not answer within this (default 10)",
    )
    add_fleet_arguments(watch)
    watch.set_defaults(handler=cmd_watch)


def start_subscriber(
    args: argparse.Namespace, topics: list[str], on_message: Callable[[ReceivedMessage], None]
) -> Subscriber | str:
    """The consumer the options describe, connected and subscribed; or why it is not
    (TLS files missing, unreadable or too open; the broker unreachable or refusing)."""
    from edge_agent.mqtt import MqttSettings, Subscriber, SubscriberError

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
        subscriber = Subscriber(settings, topics, on_message)
    except ValueError as problem:
        return str(problem)
    try:
        subscriber.start(timeout_s=args.connect_timeout_s)
    except SubscriberError as problem:
        return str(problem)
    return subscriber


def stop_on_signals() -> threading.Event:
    """An event SIGTERM and SIGINT set (when called on the main thread)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _s, _f: stop.set())
    return stop


def cmd_watch(args: argparse.Namespace) -> int:
    from edge_agent.watch import Watcher, topic_filter

    if args.fleet:
        return run_fleet(args, start_subscriber, stop_on_signals())
    watcher = Watcher(lambda line: print(line, flush=True), as_json=args.json)
    topic = topic_filter(args.prefix, args.site, args.device)
    subscriber = start_subscriber(args, [topic], watcher.on_message)
    if isinstance(subscriber, str):
        return error(subscriber)
    print(f"watching {topic} on {args.host}:{args.port}", file=sys.stderr, flush=True)
    stop = stop_on_signals()
    try:
        stop.wait(args.seconds)
    finally:
        subscriber.stop()
    if watcher.duplicates:
        print(f"watch: {watcher.duplicates} duplicate(s) dropped", file=sys.stderr)
    return EXIT_OK
