"""The unit's ``ExecStartPre``: the update repair in a process of its own, from the factory
install, before the launcher picks what runs (docs/updates.md, The agent itself).

    ExecStartPre=/opt/edge-agent/venv/bin/python -m edge_agent.update.prestart

``ReleaseStore(dir).repair(agent_start=False)``: an update a power cut interrupted is
finished or taken back, and a new agent that did not even reach its own repair (it could
not import, say) is rolled back at the next start. It never takes a new agent's trial (the
agent's own start does). It always exits 0: a repair problem is logged, and the launcher
still starts an agent (the unit must not fail before the agent could say what is wrong).
It reads ``EDGE_AGENT_RELEASES_DIR`` (the unit sets it) and imports no ``cryptography``.
"""

from __future__ import annotations

import sys

from edge_agent.update.launcher import releases_dir

__all__ = ["main"]

STATE = "state.json"


def main() -> int:
    releases = releases_dir()
    if not (releases / STATE).is_file():
        return 0  # no update ever ran here: nothing to repair
    try:
        from edge_agent.update.store import ReleaseStore

        state = ReleaseStore(releases).repair(agent_start=False)
    except Exception as error:  # logged, never fatal: the launcher still starts one
        print(f"edge-agent prestart: the repair of {releases} failed: {error!r}", file=sys.stderr)
        return 0
    if state is not None:
        reason = f": {state.reason}" if state.reason else ""
        print(
            f"edge-agent prestart: last update {state.kind} {state.version} {state.phase}{reason}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
