"""Scenario runs spread over worker processes: the runs are independent (each a fresh
pipeline on its own scene), so on a machine with cores to spare ``evaluate`` and ``soak``
can use them. Each worker loads the models it needs once and runs what it is given; the
results come back in the order asked, the same runs a single process makes (same seeds,
same detector, one detector thread each by default).

Workers are started with ``spawn``: a forked copy of a process with threads (a test run's
broker clients, a finisher) could inherit a lock held at the fork. Only scenarios of the
libraries hw-sim loads by itself can run in a worker; one registered at run time cannot.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from edge_agent.detect.base import Detector
from hw_sim.eval.score import ScenarioRun


@dataclass(frozen=True)
class Job:
    """One run: scenario ``name`` drawn with ``seed`` (None: the script's own)."""

    name: str
    seed: int | None
    width: int
    height: int
    model: str | None


_detectors: dict[str, Detector] = {}  # per worker process: each model loaded once


def _run(job: Job) -> ScenarioRun:
    from hw_sim.eval.run import _default_detector, _model_of, run_scenario

    wanted = _model_of(job.name, width=job.width, height=job.height, model=job.model)
    if wanted not in _detectors:
        _detectors[wanted] = _default_detector(
            job.name, width=job.width, height=job.height, model=job.model
        )
    return run_scenario(
        job.name, _detectors[wanted], width=job.width, height=job.height, seed=job.seed
    )


def run_in_processes(jobs: Sequence[Job], processes: int) -> list[ScenarioRun]:
    """``jobs`` run by ``processes`` workers (at most one per job), results in job order."""
    workers = max(1, min(processes, len(jobs)))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_run, jobs))
