"""Pipeline benches: throughput against bare invoke, the motion gate's detector share, memory.

    python bench/bench_pipeline.py throughput [--models M ...] [--threads T ...] [--frames N]
    python bench/bench_pipeline.py gate [--model M] [--fps F ...] [--sweep]
    python bench/bench_pipeline.py memory [--models M ...]
    python bench/bench_pipeline.py cpu [--scenes static room traffic cars crowd] [--video-s S]
                                       [--threads T]
    python bench/bench_pipeline.py all

with the models and media on the search path (EDGE_AGENT_MODEL_PATH, EDGE_AGENT_MEDIA_PATH).
Every figure that is a time is printed next to its denominator measured in the same process
(the model's bare invoke rate), because only ratios carry over to a Raspberry Pi
(DESIGN.md §9). Each model runs in its own subprocess so that one model's allocations and
warm caches do not colour the other's. The pipeline is the running agent's, built by
``assemble.build_pipeline`` from a default config (detector threads: ``--threads``, the agent's
default is the machine's cores - 1) and one OpenCV thread.
Not part of the test run; see bench/README.md for the figures and docs/pipeline.md for
what they mean.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import agent_process
from pipeline_common import (
    MODELS,
    THROUGHPUT_CLIP,
    loadavg,
    machine,
)
from pipeline_gate import gate, gate_child
from pipeline_memory import memory
from pipeline_throughput import throughput, throughput_child

from edge_agent import datafiles

# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_tp = sub.add_parser("throughput", help="frames/s with detection on every frame")
    p_tp.add_argument("--models", nargs="*", default=list(MODELS))
    p_tp.add_argument("--frames", type=int, default=400)
    p_tp.add_argument("--block", type=int, default=20, help="frames per timed block")
    p_tp.add_argument(
        "--threads",
        nargs="*",
        type=int,
        default=[2, 1],
        help="detector threads (the agent's default: cores - 1)",
    )
    p_tp1 = sub.add_parser("throughput-one")
    p_tp1.add_argument("--model", required=True)
    p_tp1.add_argument("--frames", type=int, default=400)
    p_tp1.add_argument("--block", type=int, default=20)
    p_tp1.add_argument("--threads", type=int, default=2)
    p_gate = sub.add_parser("gate", help="share of frames the motion gate sends to the detector")
    p_gate.add_argument("--model", default=MODELS[0])
    p_gate.add_argument("--fps", nargs="*", type=float, default=[10.0, 5.0])
    p_gate.add_argument(
        "--sweep", action="store_true", help="the room clip only, one default changed at a time"
    )
    p_gate1 = sub.add_parser("gate-one")
    p_gate1.add_argument("--model", default=MODELS[0])
    p_gate1.add_argument("--fps", nargs="*", type=float, default=[10.0, 5.0])
    p_gate1.add_argument("--sweep", action="store_true")
    p_mem = sub.add_parser("memory", help="VmRSS/VmHWM: the stack, and with each model")
    p_mem.add_argument("--models", nargs="*", default=list(MODELS))
    p_cpu = sub.add_parser("cpu", help="the agent's process against a naive loop, CPU per scene")
    p_cpu.add_argument("--scenes", nargs="*", default=None, help="static room traffic cars crowd")
    p_cpu.add_argument("--video-s", type=float, default=30.0, help="video measured, per run")
    p_cpu.add_argument("--repeats", type=int, default=3)
    p_cpu.add_argument("--model", default=MODELS[0])
    p_cpu.add_argument(
        "--threads", type=int, default=None, help="detector threads (default: the agent's)"
    )
    sub.add_parser("all", help="memory, throughput and gate with their defaults")
    args = parser.parse_args()

    commands: dict[str, Callable[[], object]] = {
        "throughput": lambda: throughput(args.models, args.frames, args.block, args.threads),
        "throughput-one": lambda: throughput_child(
            args.model, args.frames, args.block, args.threads
        ),
        "gate": lambda: gate(args.model, args.fps, args.sweep),
        "gate-one": lambda: gate_child(args.model, args.fps, args.sweep),
        "memory": lambda: memory(args.models),
        "cpu": lambda: agent_process.cpu_bench(
            datafiles.resolve_media(THROUGHPUT_CLIP).parent,
            args.scenes,
            args.video_s,
            args.repeats,
            args.model,
            args.threads,
        ),
        "all": lambda: (
            memory(MODELS),
            throughput(MODELS, 400, 20, [2, 1]),
            gate(MODELS[0], [10.0, 5.0]),
        ),
    }
    if not args.command.endswith("-one"):
        print(f"machine: {machine()}; loadavg {loadavg()}; {time.strftime('%Y-%m-%d %H:%M')}")
        if float(loadavg().split()[0]) > 0.5:
            print(
                "note: other work is running (loadavg above); wall-time figures and their ratios "
                "are unreliable, CPU ms and the gate's counts are not affected much"
            )
    commands[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
