"""``bench_pipeline.py memory``: resident memory of the stack, with each model, and of the
running agent (bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import agent_process
from pipeline_common import (
    RESULT_PREFIX,
    THROUGHPUT_CLIP,
)

from edge_agent import datafiles

# ---------------------------------------------------------------------------------------------
# 3. Resident memory


# Run with ``python -c`` so that the baseline is a bare interpreter, not this module's imports.
MEMORY_CHILD = """
import json, sys
from pathlib import Path

def status():
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024.0
    return out

case = sys.argv[1]
figures = {"bench": "memory", "case": case, "python": status()}
import cv2, numpy as np
import paho.mqtt.client
from edge_agent.detect.runtime import _interpreter_class
_interpreter_class()  # the TFLite runtime's import, paid at start
figures["libraries"] = status()
from edge_agent import app  # pydantic, yaml, sqlite3 and the agent's own modules
from edge_agent.detect.tflite import create_detector
figures["stack"] = status()
if case != "stack":
    cv2.setNumThreads(1)
    detector = create_detector(case, num_threads=2)
    figures["loaded"] = status()
    image = np.zeros((540, 960, 3), np.uint8)
    for _ in range(3):
        detector.detect(image)
    figures["after_detect"] = status()
print(RESULT_PREFIX + json.dumps(figures))
"""


def memory(models: Sequence[str], running_s: float = 15.0) -> list[dict[str, Any]]:
    """The stack's parts one process per row, then the running agent's own high-water mark
    (``edge-agent run`` on the traffic clip), the figure ``ps`` and systemd show."""
    results: list[dict[str, Any]] = []
    for case in ("stack", *models):
        code = f"RESULT_PREFIX = {RESULT_PREFIX!r}\n" + MEMORY_CHILD
        completed = subprocess.run(
            [sys.executable, "-c", code, case], capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            sys.stderr.write(completed.stderr)
            raise SystemExit(f"memory child {case} failed")
        for line in completed.stdout.splitlines():
            if line.startswith(RESULT_PREFIX):
                results.append(json.loads(line[len(RESULT_PREFIX) :]))
    print("\n| process (one per row) | VmRSS MB | VmHWM MB |")
    print("|---|---|---|")
    first = results[0]
    print(f"| bare python | {first['python']['VmRSS']:.1f} | {first['python']['VmHWM']:.1f} |")
    for key, what in (
        ("libraries", "+ numpy, cv2, LiteRT, paho"),
        ("stack", "+ edge_agent.app (pydantic, yaml, sqlite3, ...)"),
    ):
        print(f"| {what} | {first[key]['VmRSS']:.1f} | {first[key]['VmHWM']:.1f} |")
    for r in results[1:]:
        for key, what in (("loaded", "loaded"), ("after_detect", "after 3 detections")):
            print(f"| + {r['case']} {what} | {r[key]['VmRSS']:.1f} | {r[key]['VmHWM']:.1f} |")
    media = datafiles.resolve_media(THROUGHPUT_CLIP).parent
    running = agent_process.running_memory(media, models, running_s)
    for row in running:
        print(
            f"| `edge-agent run`, {row['model']}, {THROUGHPUT_CLIP} at 5 fps, after "
            f"{running_s:.0f} s | {row['rss_mb']:.1f} | {row['hwm_mb']:.1f} |"
        )
        results.append({"bench": "memory", "case": f"running {row['model']}", **row})
    for row in running:
        print(
            f"\n`edge-agent run`, {row['model']}: VmRSS = RssAnon {row['anon_mb']:.1f} MB "
            f"(its own) + RssFile {row['file_mb']:.1f} MB (libraries' and files' pages)"
        )
    return results
