"""Detector cost per model: bare invoke rate on 1 and 2 threads, and pre/post-processing.

Every model of the manifest found on the search path is measured, whatever its layout
(SSD, YOLOX, Ultralytics); its layout and licence are printed beside the figures.

Run with the models on the search path, e.g.
    EDGE_AGENT_MODEL_PATH=... EDGE_AGENT_MEDIA_PATH=... python bench/bench_detect.py
Figures are for the machine it runs on; compare ratios (2 vs 1 thread, pre/post vs invoke)
across machines, not absolute times. Not part of the test run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import cv2
import numpy as np

from edge_agent import datafiles
from edge_agent.detect.tflite import TFLiteDetector
from edge_agent.types import ImageBGR


def _test_image() -> tuple[str, ImageBGR]:
    try:
        path = datafiles.resolve_media("automl_traffic_frames.mp4")
    except datafiles.DataFileError:
        rng = np.random.default_rng(0)
        return "synthetic 960x540", rng.integers(0, 255, (540, 960, 3), dtype=np.uint8)
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        sys.exit(f"cannot decode {path}")
    return f"{path.name} frame 0", np.asarray(frame, dtype=np.uint8)


def _bench(name: str, threads: int, image: ImageBGR, iterations: int) -> None:
    detector = TFLiteDetector(name, num_threads=threads, score_threshold=0.3)
    for _ in range(5):
        detector.detect(image)
    start = time.perf_counter()
    for _ in range(iterations):
        detector.invoke()  # bare invoke: the runtime alone, input already set
    invoke_s = (time.perf_counter() - start) / iterations
    pre_ms, post_ms = [], []
    for _ in range(iterations):
        result = detector.detect(image)
        pre_ms.append(result.preprocess_s * 1e3)
        post_ms.append(result.postprocess_s * 1e3)
    print(
        f"{name:<18} threads={threads}  invoke {invoke_s * 1e3:6.2f} ms "
        f"({1.0 / invoke_s:6.1f}/s)  preprocess {statistics.median(pre_ms):5.2f} ms  "
        f"postprocess {statistics.median(post_ms):5.2f} ms (medians)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--models", nargs="*", default=None, help="default: every manifest model")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    label, image = _test_image()
    print(f"input: {label} {image.shape[1]}x{image.shape[0]}, {args.iterations} iterations")
    print(f"load average before: {_loadavg()} (other work on the machine skews wall times)")
    manifest = datafiles.load_manifest()
    names = args.models or [e.name for e in manifest.entries if e.kind == "model" and e.is_detector]
    for name in names:
        try:
            datafiles.resolve_model_file(name)
        except datafiles.DataFileError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        entry = manifest.model(name)
        print(
            f"{name}: layout {entry.format}, {entry.input_width}x{entry.input_height} "
            f"{entry.input_dtype}, licence {entry.licence}"
        )
        for threads in (1, 2):
            _bench(name, threads, image, args.iterations)
    print(f"load average after: {_loadavg()}")
    return 0


def _loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as stream:
            return " ".join(stream.read().split()[:3])
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
