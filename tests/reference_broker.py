"""The reference broker of deploy/mosquitto for the tests that need it whole (mTLS,
passwords, enrolment): its config with the operator's paths and ports rewritten."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge_agent.broker import LocalBroker, free_loopback_port, service_lines

REPO = Path(__file__).resolve().parents[1]
REFERENCE_CONF = REPO / "deploy" / "mosquitto" / "edge-agent.conf"
REFERENCE_ENROL_ACL = REPO / "deploy" / "mosquitto" / "acl-enrol"


class ReferenceBroker(LocalBroker):
    """mosquitto running deploy/mosquitto/edge-agent.conf, with the operator's paths and
    ports rewritten to a temp dir and two free loopback ports (``port``: mTLS listener,
    ``password_port``: username/password listener)."""

    def __init__(self, files: Path) -> None:
        self.files = files
        self.password_port = free_loopback_port()
        self.enrol_port = free_loopback_port()
        super().__init__()
        while self.port in (self.password_port, self.enrol_port):
            self.port = free_loopback_port()
            self._write_config()

    def _write_config(self) -> None:
        text = REFERENCE_CONF.read_text(encoding="utf-8")
        rewrites = {
            "/etc/mosquitto/edge-agent/": f"{self.files}/",
            "\nlistener 8883\n": f"\nlistener {self.port} {self.host}\n",
            "\nlistener 8884\n": f"\nlistener {self.password_port} {self.host}\n",
            "\nlistener 8885\n": f"\nlistener {self.enrol_port} {self.host}\n",
        }
        if not (self.files / "acl-enrol").exists():
            shutil.copy(REFERENCE_ENROL_ACL, self.files / "acl-enrol")
        passwd = self.files / "enrol-passwd"
        if not passwd.exists():
            passwd.touch(mode=0o600)
        for old, new in rewrites.items():
            assert old in text, f"reference config no longer has {old!r}"
            text = text.replace(old, new)
        preamble = [*service_lines(self.log_path), "persistence false"]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(preamble) + "\n" + text, encoding="utf-8")
