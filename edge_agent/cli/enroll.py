"""`edge-agent enroll`: make this device's key here, get its certificate and config.

Over the broker (the site has an uplink):
  edge-agent enroll --token enrol-0123abcd...X --broker broker.city.example:8885 --ca ca.crt

From a USB stick (no uplink yet), two steps with a visit to the city side between:
  edge-agent enroll --bundle /media/usb/pi-01.enrol.json   # writes pi-01.request.json
  (city side: edge-provision sign STATE /media/usb/pi-01.request.json)
  edge-agent enroll --bundle /media/usb/pi-01.enrol.json   # reads pi-01.response.json

The private key is made in the identity directory (default /var/lib/edge-agent/identity),
mode 0600, and never written anywhere else; only the CSR travels. The config goes to --dir
(default /etc/edge-agent). Run as root after deploy/install.sh: the files then go to the
service's user. Exit 0 enrolled (or the USB request written), 1 the exchange failed (run
it again, or get a new token), 2 bad input. docs/enrolment.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.cli.common import EXIT_FAILED, EXIT_OK, error

if TYPE_CHECKING:
    from edge_agent.enrol import DeviceFiles

DEFAULT_DIR = Path("/etc/edge-agent")
DEFAULT_IDENTITY_DIR = Path("/var/lib/edge-agent/identity")  # the service's StateDirectory
SERVICE_USER = "edge-agent"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    enroll = subparsers.add_parser(
        "enroll",
        help="make this device's key, get its certificate and config (token or USB)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    how = enroll.add_mutually_exclusive_group(required=True)
    how.add_argument("--token", help="one-time enrolment token from edge-provision")
    how.add_argument("--bundle", type=Path, help="DEVICE.enrol.json carried on a USB stick")
    enroll.add_argument("--broker", help="HOST[:PORT] of the enrolment listener (default 8885)")
    enroll.add_argument("--ca", type=Path, help="CA file that signed the broker")
    enroll.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"config directory (default {DEFAULT_DIR})"
    )
    enroll.add_argument(
        "--identity-dir",
        type=Path,
        help=f"key and certificates (default {DEFAULT_IDENTITY_DIR} with the default --dir, "
        "else --dir): the agent renews them there, so it must be writable by the service",
    )
    enroll.add_argument(
        "--owner",
        default=None,
        help=f"run as root: give the files to this user (default {SERVICE_USER!r} if it exists)",
    )
    enroll.add_argument(
        "--timeout-s",
        type=float,
        default=30.0,
        help="how long to wait for the city side's answer (default 30)",
    )
    enroll.add_argument("--force", action="store_true", help="replace an existing enrolment")
    enroll.set_defaults(handler=cmd_enroll)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "8885")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"--broker must be HOST or HOST:PORT (e.g. broker.city.example:8885), not {text!r}"
        )
    return host, int(port)


def _what_next(why: str) -> str:
    """After a failed exchange: a new token, or the same command again."""
    if why.startswith("the city side refused"):  # used by another key, expired, unknown
        return "get a new token from the city side (`edge-provision token STATE DEVICE`)"
    if why.startswith("the broker refused the enrolment connection"):
        return (
            "the broker does not know this token: check it was copied whole, and that the "
            "city side gave the broker its tokens (enrol-passwd, reload; docs/enrolment.md)"
        )
    return (
        "the key is kept and the token is not spent: check the uplink, --broker and that "
        "the city side's `edge-provision serve` runs, then run the same command again"
    )


def _key(files: DeviceFiles, *, fresh: bool) -> None:
    """A new key, unless one is here from an attempt whose answer never came: the city
    side answers the same key again for the same token (a flaky uplink costs no token)."""
    if fresh or not files.path(files.KEY).exists():
        files.new_key()


def cmd_enroll(args: argparse.Namespace) -> int:
    from edge_agent.enrol import (
        DeviceFiles,
        EnrolmentError,
        enrol_over_broker,
        enrol_request,
        parse_response,
        parse_token,
    )
    from edge_agent.mqtt.settings import MqttSettings
    from edge_agent.security import TlsConfigError

    started_s = time.monotonic()
    try:
        files = DeviceFiles(args.dir, _identity_dir(args))
        if args.bundle is not None:
            return _owned(args, files, _by_bundle(args, files))
        if files.path(files.CERT).exists() and not args.force:
            return error(f"{args.dir} already holds an enrolment; --force replaces it")
        if not args.broker or args.ca is None:
            return error("--token needs --broker HOST[:PORT] and --ca FILE")
        token_id, secret = parse_token(args.token)
        host, port = _host_port(args.broker)
        _key(files, fresh=args.force)
        request = enrol_request(args.token, files.csr(token_id))
        settings = MqttSettings.consumer(
            host, port, token_id, tls_ca_file=args.ca, username=token_id, password=secret
        )
        answer = enrol_over_broker(settings, token_id, request, args.timeout_s)
        config_path = files.install(parse_response(answer))
    except (EnrolmentError, OSError) as why:  # the exchange failed: try again later
        print(f"edge-agent: enroll failed: {why}\n  ({_what_next(str(why))})", file=sys.stderr)
        return EXIT_FAILED
    except (TlsConfigError, ValueError, KeyError, TypeError) as why:  # bad input
        return error(f"enroll: {why}")
    print(
        f"enrolled in {time.monotonic() - started_s:.1f} s: config {config_path},"
        f" key {files.path(files.KEY)} (0600, made here)"
    )
    return _owned(args, files, EXIT_OK)


def _identity_dir(args: argparse.Namespace) -> Path:
    if args.identity_dir is not None:
        return Path(args.identity_dir)
    return DEFAULT_IDENTITY_DIR if args.dir == DEFAULT_DIR else Path(args.dir)


def _owned(args: argparse.Namespace, files: DeviceFiles, code: int) -> int:
    """The page's password when the config turns the page on; as root, the files go to
    the service user, who reads the key and renews it."""
    if code != EXIT_OK or not files.path(files.CERT).exists():
        return code  # not enrolled (yet): the USB flow's first step
    config_path = files.path(files.CONFIG)
    config_option = "" if config_path == DEFAULT_DIR / files.CONFIG else f" --config {config_path}"
    password = files.page_password()
    if password is not None:
        print(
            f"technician page password (shown once, write it down): {password}\n"
            f"  change it with: edge-agent web-password{config_option}"
        )
    user: str | None = None
    if os.geteuid() == 0:
        import pwd

        user = args.owner or SERVICE_USER
        try:
            pwd.getpwnam(user)
        except KeyError:
            if args.owner:  # asked for by name: a typo must not pass silently
                return error(f"enroll: no user {user!r} to give the files to")
            user = None  # no service installed yet: root keeps them (deploy/install.sh later)
        if user is not None:
            files.give_to(user)
            print(f"gave {files.identity_dir} and {config_path} to {user}")
    _say_next(config_path, config_option, user)
    return code


def _say_next(config_path: Path, config_option: str, user: str | None) -> None:
    """Who this device now is, and the technician's next step (docs/install.md)."""
    from edge_agent.config import ConfigError, brokers_text, load_config

    try:
        config = load_config(config_path)
    except ConfigError:
        return  # check-config names the problem; selftest's first line too
    as_user = f"sudo -u {user} " if user is not None else ""
    print(
        f"this device is {config.site_id}/{config.device_id}: its messages go to "
        f"{config.topic_root}/ on {brokers_text(config.mqtt)}\n"
        f"next: {as_user}edge-agent selftest{config_option}"
    )


def _by_bundle(args: argparse.Namespace, files: DeviceFiles) -> int:
    """Step 1 writes DEVICE.request.json beside the bundle; step 2 installs the answer."""
    from edge_agent.enrol import EnrolmentError, enrol_request, parse_response, read_bundle
    from edge_agent.ids import check_id, inside

    bundle: Path = args.bundle
    if not bundle.name.endswith(".enrol.json"):
        return error(f"{bundle}: expected a file named DEVICE.enrol.json (from edge-provision)")
    stem = bundle.name.removesuffix(".enrol.json")
    check_id(stem, "bundle device id")
    request_path = inside(bundle.parent, f"{stem}.request.json")
    response_path = inside(bundle.parent, f"{stem}.response.json")
    if response_path.exists() and files.path(files.KEY).exists():
        try:
            config_path = files.install(parse_response(response_path.read_bytes()))
        except EnrolmentError as why:
            return error(str(why))
        print(f"enrolled from {response_path}: config {config_path}")
        return EXIT_OK
    try:
        device_id, token = read_bundle(bundle)
    except EnrolmentError as why:
        return error(str(why))
    if device_id != stem:
        return error(f"{bundle} names device {device_id!r}")
    if files.path(files.CERT).exists() and not args.force:
        return error(f"{args.dir} already holds an enrolment; --force replaces it")
    _key(files, fresh=args.force)
    request_path.write_bytes(enrol_request(token, files.csr(device_id)))
    print(
        f"wrote {request_path} (a CSR; the key stays in {files.identity_dir}). At the city side run"
        f" `edge-provision sign STATE {request_path.name}`, then run this command again."
    )
    return EXIT_OK
