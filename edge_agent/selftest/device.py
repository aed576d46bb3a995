"""The self-test's checks of what the device shows the technician: the page, and the
status LED, which stays lit while the rest of the checklist runs so that it can be seen."""

from __future__ import annotations

import errno
import socket
import warnings
from pathlib import Path

from edge_agent.config import AgentConfig, StatusLedConfig
from edge_agent.indicator import Condition, StatusError, StatusLed
from edge_agent.selftest.report import CheckResult


def check_page(
    config: AgentConfig, config_path: Path, *, agent_running: bool = False
) -> CheckResult:
    """The technician's page, when the config turns it on: without a usable password file,
    or an address this device can open, the agent runs on without it, and only its log
    would say so. The address is tried only while the agent (which holds it) is stopped."""
    from edge_agent.web.auth import PasswordFileError, read_password_hash
    from edge_agent.web.server import default_password_file

    url = f"http://{config.web.listen}/"
    problem = None if agent_running else _page_address_problem(config.web.listen)
    if problem is not None:
        return CheckResult("page", "WARN", f"{url} cannot open: {problem[0]}", problem[1])
    password_file = default_password_file(config.web, config_path)
    assert password_file is not None  # a config path is given
    try:
        read_password_hash(password_file)
    except PasswordFileError as problem:
        return CheckResult(
            "page",
            "WARN",
            f"{url} will not start: {str(problem).split('; ')[0]}",
            f"set its password: edge-agent web-password --config {config_path}, "
            "then restart the agent",
            {"url": url},
        )
    return CheckResult("page", "PASS", f"{url}, password set", data={"url": url})


def _page_address_problem(listen: str) -> tuple[str, str] | None:
    """(what, what to do) when this device cannot open the page's address: a DHCP lease
    that moved it, another program on the port. None when it can."""
    from edge_agent.web.config import split_listen

    host, port = split_listen(listen)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            said = error.strerror or str(error)
            if error.errno == errno.EADDRNOTAVAIL:
                return said, (
                    f"this device has no address {host} (see `ip -br addr`): set web.listen "
                    "to its address on the site network, or give it that address"
                )
            if error.errno == errno.EADDRINUSE:
                return said, f"another program holds port {port}: pick another in web.listen"
            return said, "check web.listen (an address of this device and a free port)"
    return None


class LedCheck:
    """The status LED, when one is configured: opened and lit steadily from its check to
    the end of the self-test (``close``), so the technician sees it works. Left alone
    while the agent runs: it holds the pin and the LED shows its condition."""

    def __init__(self, config: StatusLedConfig, *, pin_factory: object = None) -> None:
        self._config = config
        self._pin_factory = pin_factory
        self._led: StatusLed | None = None

    def check(self, *, agent_running: bool) -> CheckResult:
        pin = self._config.pin
        if agent_running:
            return CheckResult(
                "led", "SKIP", f"pin {pin} is the running agent's: it shows its condition"
            )
        try:
            with warnings.catch_warnings():  # gpiozero's fallbacks: the line says the outcome
                warnings.simplefilter("ignore")
                self._led = StatusLed(
                    pin, active_high=self._config.active_high, pin_factory=self._pin_factory
                )
            self._led.show(Condition.OK)
        except StatusError as problem:
            return CheckResult(
                "led",
                "WARN",
                str(problem),
                "the agent runs without its LED: check status.led.pin and the wiring, that "
                "no other program uses the pin, and that gpiozero and lgpio are installed",
                {"pin": pin},
            )
        return CheckResult(
            "led",
            "PASS",
            f"pin {pin} lit steadily until the self-test ends: look at it (dark: wiring, "
            "or status.led.active_high)",
            data={"pin": pin},
        )

    def close(self) -> None:
        if self._led is not None:
            self._led.close()
            self._led = None
