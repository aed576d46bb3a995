"""The checklist's lines: one result per check, how they print, and the exit code."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]

EXIT_OK = 0
EXIT_FAILED = 1  # a check failed: the device, its camera, disk, clock or uplink
EXIT_BAD_INPUT = 2  # the config, or the model it names, must be fixed first
INPUT_CHECKS = frozenset({"config", "model"})


@dataclass(frozen=True)
class CheckResult:
    """One line of the checklist: what was checked, the verdict, what was seen, and what
    to do about it (empty when there is nothing to do). ``data``: the measurements, for
    ``--json``."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    data: Mapping[str, object] = field(default_factory=dict)

    @property
    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<14} {self.detail}"
        return f"{text} -> {self.fix}" if self.fix else text

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix or None,
            **({"data": dict(self.data)} if self.data else {}),
        }


def exit_code(results: Sequence[CheckResult]) -> int:
    """2 when the config or the model failed (README: bad input), 1 when any other check
    failed, 0 otherwise (warnings and skipped checks do not fail the test)."""
    if any(r.status == "FAIL" and r.name in INPUT_CHECKS for r in results):
        return EXIT_BAD_INPUT
    if any(r.status == "FAIL" for r in results):
        return EXIT_FAILED
    return EXIT_OK


def summary(results: Sequence[CheckResult]) -> str:
    failed = sum(r.status == "FAIL" for r in results)
    warned = sum(r.status == "WARN" for r in results)
    if failed:
        return f"selftest: FAILED: {failed} of {len(results)} checks failed"
    extra = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
    return f"selftest: OK: {len(results)} checks{extra}"


def as_json(results: Sequence[CheckResult]) -> str:
    code = exit_code(results)
    return json.dumps(
        {"ok": code == EXIT_OK, "exit_code": code, "checks": [r.as_dict() for r in results]}
    )
