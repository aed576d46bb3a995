"""Running under systemd: sd_notify (READY, STATUS, WATCHDOG), journald log lines, reload.

Everything here also works without systemd: with no ``NOTIFY_SOCKET`` the notifier is a
no-op and logs look as they always did.
"""

from edge_agent.service.health import ServiceHealth, ServiceMonitor
from edge_agent.service.logs import JournalFormatter, setup_logging, stderr_is_journal
from edge_agent.service.notify import (
    Notifier,
    NotifySocket,
    NullNotifier,
    SocketNotifier,
    notifier_from_env,
    watchdog_interval_s,
)

__all__ = [
    "JournalFormatter",
    "Notifier",
    "NotifySocket",
    "NullNotifier",
    "ServiceHealth",
    "ServiceMonitor",
    "SocketNotifier",
    "notifier_from_env",
    "setup_logging",
    "stderr_is_journal",
    "watchdog_interval_s",
]
