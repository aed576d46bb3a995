"""The analytics evaluation table: every hw-sim scenario through the real pipeline.

Precision, recall, detection delay and false alarms per simulated hour, per rule and
analyzer (hw_sim/eval/score.py defines the scoring; docs/analytics.md and docs/analyzers.md
explain it). The tests assert the acceptance thresholds; this prints the whole table.

    python bench/bench_eval.py            # every scenario (~1 min on 2 idle cores)
    python bench/bench_eval.py --json     # machine-readable
    python bench/bench_eval.py --soak-hours 1   # false-alarm scenarios for 1 simulated h (~80 s)
    python bench/bench_eval.py --soak-hours 1 --scenario busy_market   # 30 crowds (~3 min)
"""

from __future__ import annotations

import sys

from hw_sim.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
