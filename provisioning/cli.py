"""``edge-provision``: the city side of enrolment (docs/enrolment.md).

    edge-provision init STATE --server-name broker.city.example
    edge-provision inventory STATE site.yaml [--usb DIR]     # configs, tokens, USB bundles
    edge-provision token STATE DEVICE                        # a fresh token for one device
    edge-provision serve STATE --host broker.city.example    # answers over the broker
    edge-provision sign STATE /media/usb/DEVICE.request.json # the USB stick's step 2
    edge-provision retire STATE DEVICE                       # no more renewals
    edge-provision release make|sign|pack|rollout ...        # signed updates (docs/updates.md)

Exit codes: 0 done, 1 failed while running, 2 bad input (with the reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType

from edge_agent.enrol import PROTOCOL_VERSION
from edge_agent.ids import check_id, inside, write_atomic
from edge_agent.mqtt.settings import MqttSettings
from provisioning import pki, release
from provisioning.inventory import InventoryError, load_inventory
from provisioning.server import Provisioner, serve, write_device
from provisioning.tokens import TokenStore

__all__ = ["PROVISIONER", "main"]

PROVISIONER = "provisioner"
"""The certificate CN (and ACL user) of ``edge-provision serve``."""

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _fail(message: str) -> int:
    print(f"edge-provision: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _cmd_init(args: argparse.Namespace) -> int:
    names = [part for name in args.server_name or [] for part in ("--server-name", name)]
    code = pki.main(["init", str(args.state), *names])
    if code != 0:
        return code
    ca = pki.load_credential(args.state / "ca.crt", args.state / "ca.key")
    cred = pki.issue_client_cert(ca, PROVISIONER, valid_for=timedelta(days=365))
    cred.write(
        args.state / "clients" / f"{PROVISIONER}.crt", args.state / "clients" / f"{PROVISIONER}.key"
    )
    print(f"wrote the provisioner's certificate to {args.state}/clients/{PROVISIONER}.crt")
    return EXIT_OK


def _bundle(usb: Path, device_id: str, token: str, ca_pem: bytes, enrol: dict[str, object]) -> Path:
    path = inside(usb, f"{device_id}.enrol.json")
    body = {
        "v": PROTOCOL_VERSION,
        "device_id": device_id,
        "token": token,
        "ca": ca_pem.decode(),
        "broker": enrol,
    }
    write_atomic(path, json.dumps(body, indent=1).encode(), 0o600)
    return path


def _cmd_inventory(args: argparse.Namespace) -> int:
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as error:
        return _fail(str(error))
    state: Path = args.state
    if not (state / "ca.key").exists():
        return _fail(f"{state} has no CA: run `edge-provision init {state}` first")
    tokens = TokenStore(state / "tokens.json")
    ca_pem = (state / "ca.crt").read_bytes()
    lines = []
    for device in inventory.devices:
        folder = write_device(
            state,
            inventory.site_id,
            device.device_id,
            inventory.agent_config(device),
            certificate_days=inventory.certificate_days,
            acl_lines=inventory.acl_lines(device),
        )
        token = tokens.issue(
            inventory.site_id, device.device_id, timedelta(days=inventory.token_days)
        )
        where = f"{folder}"
        if args.usb is not None:
            broker = {"host": inventory.broker.host, "enrol_port": inventory.broker.enrol_port}
            where = str(_bundle(args.usb, device.device_id, token, ca_pem, broker))
        lines.append(f"{device.device_id}\t{token}\t{where}")
    print(
        f"# site {inventory.site_id}: {len(lines)} device(s);"
        f" tokens valid {inventory.token_days} days, shown once"
    )
    print("\n".join(lines))
    return EXIT_OK


def _cmd_token(args: argparse.Namespace) -> int:
    try:
        record = Provisioner(args.state).device(args.device)
    except (ValueError, OSError) as error:
        return _fail(f"{args.device}: not in the inventory ({error})")
    token = TokenStore(args.state / "tokens.json").issue(
        record.site_id, record.device_id, timedelta(days=args.days)
    )
    print(token)
    return EXIT_OK


def _cmd_retire(args: argparse.Namespace) -> int:
    """No more certificates for this device: its current one runs out within
    ``certificate_days`` (revoke it as well to cut it off sooner)."""
    state: Path = args.state
    try:
        folder = inside(state / "devices", args.device)
        target = inside(state / "retired", args.device)
    except ValueError as error:
        return _fail(str(error))
    if not folder.is_dir():
        return _fail(f"{args.device} is not an active device in {state}")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.replace(target)
    print(f"retired {args.device}: no renewal or enrolment from now on ({target})")
    return EXIT_OK


def _cmd_sign(args: argparse.Namespace) -> int:
    request: Path = args.request
    name = request.name
    if not name.endswith(".request.json"):
        return _fail(f"{request}: expected DEVICE.request.json (from `edge-agent enroll --bundle`)")
    try:
        response = inside(request.parent, name.removesuffix(".request.json") + ".response.json")
        payload = request.read_bytes()
    except (ValueError, OSError) as error:
        return _fail(str(error))
    answer = Provisioner(args.state).enrol(payload)
    write_atomic(response, answer, 0o644)
    body = json.loads(answer)
    if not body.get("ok"):
        return _fail(f"refused: {body.get('error')}")
    print(
        f"wrote {response}: take it back to the device and run `edge-agent enroll --bundle` again"
    )
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    state: Path = args.state
    clients = state / "clients"
    settings = MqttSettings.consumer(
        args.host,
        args.port,
        PROVISIONER,
        tls_ca_file=args.ca or state / "ca.crt",
        tls_cert_file=clients / f"{PROVISIONER}.crt",
        tls_key_file=clients / f"{PROVISIONER}.key",
        reconnect_max_delay_s=30.0,
    )
    valid_for = timedelta(seconds=args.certificate_s) if args.certificate_s else None
    provisioner = Provisioner(state, valid_for=valid_for)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serve(provisioner, settings, topic_prefix=args.topic_prefix, stop=stop)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-provision",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = commands.add_parser("init", help="new CA, broker and provisioner certificates, CRL")
    init.add_argument("state", type=Path)
    init.add_argument("--server-name", action="append", help="name or IP devices dial (repeat)")
    init.set_defaults(handler=_cmd_init)
    inv = commands.add_parser("inventory", help="site inventory → device configs and tokens")
    inv.add_argument("state", type=Path)
    inv.add_argument("inventory", type=Path)
    inv.add_argument("--usb", type=Path, help="also write DEVICE.enrol.json bundles here")
    inv.set_defaults(handler=_cmd_inventory)
    token = commands.add_parser("token", help="a new one-time token for an inventoried device")
    token.add_argument("state", type=Path)
    token.add_argument("device")
    token.add_argument("--days", type=int, default=7)
    token.set_defaults(handler=_cmd_token)
    retire = commands.add_parser("retire", help="stop renewing a device's certificate")
    retire.add_argument("state", type=Path)
    retire.add_argument("device")
    retire.set_defaults(handler=_cmd_retire)
    sign = commands.add_parser("sign", help="answer a DEVICE.request.json from a USB stick")
    sign.add_argument("state", type=Path)
    sign.add_argument("request", type=Path)
    sign.set_defaults(handler=_cmd_sign)
    srv = commands.add_parser("serve", help="answer enrolment and renewal over the broker")
    srv.add_argument("state", type=Path)
    srv.add_argument("--host", required=True)
    srv.add_argument("--port", type=int, default=8883)
    srv.add_argument("--ca", type=Path, help="CA that signed the broker (default STATE/ca.crt)")
    srv.add_argument("--topic-prefix", default="city")
    srv.add_argument("--certificate-s", type=float, help="override certificate lifetime (labs)")
    srv.set_defaults(handler=_cmd_serve)
    release.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "device", None) is not None:
        try:
            check_id(args.device, "device id")
        except ValueError as error:
            return _fail(str(error))
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
