"""A real RabbitMQ with its MQTT plugin (MQTT 3.1.1) on free loopback ports, for the tests
that prove the agent is not mosquitto-specific (tests/integration/test_mqtt_brokers.py).

Everything is the test's own: its Erlang port mapper (epmd) on a free port, the node's
AMQP, distribution and MQTT listeners on free loopback ports, its Mnesia database, logs,
config and Erlang cookie in a temp dir. The packaged service (5672, 1883, epmd's 4369) is
never touched. Both processes run in a session of their own and are ended by their ids.
Erlang boots slowly (~12 s on the development machine, most of it the MQTT plugin
waiting for cluster peers before its Raft election), so the suite starts one per session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edge_agent.broker import BrokerNotAvailable, BrokerStartError, free_loopback_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # Debian's; /usr/sbin's wraps it in su
_POLL_S = 0.05


def find_rabbitmq() -> tuple[Path, Path]:
    """The server script and epmd, or ``BrokerNotAvailable`` saying how to get them."""
    epmd = shutil.which("epmd")
    if not SERVER.is_file() or epmd is None:
        raise BrokerNotAvailable(
            f"RabbitMQ not found ({SERVER}, epmd); install it: "
            "`sudo apt-get install rabbitmq-server` (scripts/setup.sh --tests does)"
        )
    return SERVER, Path(epmd)


class RabbitMQBroker:
    """RabbitMQ with ``rabbitmq_mqtt`` listening for MQTT on ``127.0.0.1:port``."""

    host = "127.0.0.1"
    protocol = "3.1.1"  # RabbitMQ 3.10's MQTT plugin speaks 3.1.1 only

    def __init__(self) -> None:
        self.server, self.epmd = find_rabbitmq()
        self.port = free_loopback_port()
        self.dir = Path(tempfile.mkdtemp(prefix="edge-agent-rabbitmq-"))
        self.startup_s: float | None = None  # how long the last start took
        self._processes: list[subprocess.Popen[bytes]] = []
        self._epmd_port = free_loopback_port()
        amqp_port, dist_port = free_loopback_port(), free_loopback_port()
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n",
            encoding="utf-8",
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_mqtt].\n", encoding="utf-8")
        (self.dir / "rabbitmq-env.conf").write_text("", encoding="utf-8")
        self._env = {
            **os.environ,
            "HOME": str(self.dir),  # the Erlang cookie goes here
            "ERL_EPMD_PORT": str(self._epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": f"edge-agent-test-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "RABBITMQ_LOGS": "-",  # to stdout, which goes to server.log
        }

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.dir / log_name, "ab") as log:
            process = subprocess.Popen(
                argv,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: ended as one, by its id
            )
        self._processes.append(process)
        return process

    def start(self, timeout_s: float = 120.0) -> None:
        """Start epmd and the node; return once the MQTT listener accepts connections."""
        began = time.monotonic()
        deadline = began + timeout_s
        self._spawn(
            [str(self.epmd), "-port", str(self._epmd_port), "-address", "127.0.0.1"], "epmd.log"
        )
        self._wait_for(self._epmd_port, deadline, "epmd")
        self._node = self._spawn([str(self.server)], "server.log")
        self._wait_for(self.port, deadline, "the MQTT listener")
        self.startup_s = time.monotonic() - began

    def _wait_for(self, port: int, deadline: float, what: str) -> None:
        while True:
            for process in self._processes:
                if process.poll() is not None:
                    raise BrokerStartError(
                        f"RabbitMQ: {process.args[0]} exited with {process.returncode} "
                        f"waiting for {what}: {self.log_text()[-3000:]}"
                    )
            try:
                with socket.create_connection((self.host, port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BrokerStartError(
                    f"RabbitMQ: {what} did not listen on port {port} in time: "
                    f"{self.log_text()[-3000:]}"
                )
            time.sleep(_POLL_S)

    def log_text(self) -> str:
        parts = []
        for name in ("server.log", "epmd.log"):
            with contextlib.suppress(FileNotFoundError):
                parts.append((self.dir / name).read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    def close(self, timeout_s: float = 30.0) -> None:
        """End the node, then epmd (each by its process group id), and delete the dir."""
        for process in reversed(self._processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            else:  # the group may outlive its leader (erl_child_setup, inet_gethost)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        self._processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RabbitMQBroker:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
