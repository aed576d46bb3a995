"""``edge-agent selftest``: the technician's checklist at the pole (docs/selftest.md).

- :mod:`.report`: :class:`CheckResult` (one line), the exit code, ``--json``
- :mod:`.checks`: config, cameras, model, outbox, clock, broker: what each saw → a line
- :mod:`.clock`: is the clock synchronised (the kernel's word, no root needed)
- :mod:`.run`: :func:`run_selftest`, the checks in the order a technician fixes things
"""

from edge_agent.selftest.report import CheckResult, Status, exit_code
from edge_agent.selftest.run import SelftestOptions, run_selftest

__all__ = ["CheckResult", "SelftestOptions", "Status", "exit_code", "run_selftest"]
