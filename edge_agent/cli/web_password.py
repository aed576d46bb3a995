"""``edge-agent web-password [--config FILE]``: set the technician page's password on this device.

Stored as a scrypt hash (edge_agent/web/auth.py) in ``web.password_file`` or, by default,
``web-password`` beside the config file, mode 0600. Asked twice on a terminal; ``--stdin``
reads one line instead (enrolment scripts). Run as root, the file goes to the config
file's owner (``deploy/install.sh`` makes that the service's user). A running agent uses
it at the next login.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from edge_agent.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    add_config_option,
    default_config_path,
    error,
    load_checked_config,
)
from edge_agent.web.auth import write_password_file
from edge_agent.web.server import default_password_file


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = subparsers.add_parser(
        "web-password",
        help="set the technician page's password (stored as a slow hash)",
        description="Set the password of the technician's page (docs/web.md) on this "
        "device: asked twice, at least 8 characters, stored as a scrypt hash in "
        "web.password_file (default: web-password beside the config), mode 0600; as root, "
        "owned by the config file's owner (the service's user). A running agent uses it at "
        "the next login: no restart.",
    )
    add_config_option(command)
    command.add_argument(
        "--stdin", action="store_true", help="read the password from one line of stdin"
    )
    command.set_defaults(handler=cmd_web_password)


def cmd_web_password(args: argparse.Namespace) -> int:
    config_path: Path = args.config or default_config_path()
    config = load_checked_config(config_path, offline=True)
    if config is None:
        return EXIT_BAD_INPUT
    path = default_password_file(config.web, config_path)
    assert path is not None  # a config path was given
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password for the technician page: ")
        if getpass.getpass("Again: ") != password:
            return error("the two passwords differ; nothing was changed")
    # As root (sudo), the file is the config file's owner's: the service's user reads both.
    owner = None
    if os.geteuid() == 0:
        status = config_path.stat()
        owner = (status.st_uid, status.st_gid)
    try:
        write_password_file(path, password, owner=owner)
    except ValueError as problem:
        return error(str(problem))
    except OSError as problem:
        return error(f"cannot write {path}: {problem}")
    print(f"password for the technician page stored in {path.absolute()} (scrypt hash, mode 0600)")
    if not config.web.enabled:
        print("the page is off: set web.enabled: true in the config and restart the agent")
        return EXIT_OK
    listen = config.web.listen
    print(
        f"the page: http://{listen}/ — a running agent takes the new password at the next "
        "login; one started before any password existed runs without the page: restart it "
        "(sudo systemctl restart edge-agent)"
    )
    if listen.startswith(("127.", "localhost", "[::1]")):
        port = listen.rpartition(":")[2]
        print(
            f"  it listens on this device only: from a laptop, `ssh -L {port}:{listen} "
            f"USER@DEVICE`, then open http://127.0.0.1:{port}/ there"
        )
    return EXIT_OK
