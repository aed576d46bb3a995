"""The broker a fleet run starts itself: a throwaway mosquitto on a free loopback port
(never 1883), with TLS and client certificates from a throwaway CA when asked (as the
deploy/mosquitto reference: ``require_certificate``, the CN as the username)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.broker import LocalBroker

__all__ = ["TlsFiles", "make_tls_files", "save_sessions", "tls_listener_config"]

SAVED_LINE = "Saving in-memory database"


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_dir: Path  # <name>.crt and <name>.key per client

    def client(self, name: str) -> tuple[Path, Path]:
        return self.client_dir / f"{name}.crt", self.client_dir / f"{name}.key"


def make_tls_files(directory: Path, clients: Iterable[str]) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and one client certificate per name."""
    from provisioning import pki  # needs `cryptography` (a dev dependency)

    ca = pki.make_ca("hw-sim fleet test CA")
    files = TlsFiles(
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
        directory / "clients",
    )
    ca.write(files.ca_file, directory / "ca.key")
    pki.issue_server_cert(ca, ["127.0.0.1", "localhost"]).write(files.server_cert, files.server_key)
    for name in clients:
        pki.issue_client_cert(ca, name).write(*files.client(name))
    return files


def tls_listener_config(files: TlsFiles) -> str:
    """Lines after LocalBroker's listener line: mutual TLS, the certificate CN as username."""
    return "\n".join(
        [
            f"cafile {files.ca_file}",
            f"certfile {files.server_cert}",
            f"keyfile {files.server_key}",
            "require_certificate true",
            "use_identity_as_username true",
        ]
    )


def save_sessions(broker: LocalBroker, timeout_s: float = 10.0) -> bool:
    """Make mosquitto write its persistence file now (SIGUSR1) and wait until it did.

    After a SIGKILL mosquitto restarts from its last save: with this one taken once every
    client has subscribed, the collector's subscription survives the kill, so messages
    the devices send before the collector is back are queued for it, not dropped.
    """
    pid = broker.pid
    if pid is None:
        return False
    before = broker.log_text().count(SAVED_LINE)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if broker.log_text().count(SAVED_LINE) > before:
            return True
        time.sleep(0.05)
    return False
