"""``load_interpreter`` lets go of the model file's pages once XNNPACK has packed the weights
(bench/README.md, memory): the process keeps the model's own copy, not the file's, and the
detector's outputs are the same."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
from realdata import require_model

from edge_agent.detect.runtime import load_interpreter, release_mapped_pages


def resident_kb(path: Path) -> int:
    """This process's resident kB in mappings of ``path`` (``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = len(head) == 6 and head[5] == str(path.resolve())
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def outputs(interpreter: object, image: np.ndarray) -> list[np.ndarray]:
    given = interpreter.get_input_details()[0]  # type: ignore[attr-defined]
    interpreter.set_tensor(given["index"], image)  # type: ignore[attr-defined]
    interpreter.invoke()  # type: ignore[attr-defined]
    details = interpreter.get_output_details()  # type: ignore[attr-defined]
    return [interpreter.get_tensor(d["index"]).copy() for d in details]  # type: ignore[attr-defined]


def test_the_model_file_is_not_kept_resident_and_detections_do_not_change() -> None:
    path = require_model("ssd_mobilenet_v1")
    interpreter = load_interpreter(path, 1)
    size_kb = path.stat().st_size // 1024
    assert resident_kb(path) < size_kb // 4  # the 4 MB of weights are XNNPACK's copy now
    given = interpreter.get_input_details()[0]
    image = np.random.default_rng(7).integers(0, 256, given["shape"], dtype=np.uint8)
    first = outputs(interpreter, image)
    assert release_mapped_pages(path) > 0  # again, between two invocations
    second = outputs(interpreter, image)
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_file_nobody_maps_and_a_written_private_mapping_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(bytes(range(256)) * 64)
    assert release_mapped_pages(path) == 0
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_COPY) as copy:
        copy[0] = 255  # a private page of this process: dropping it would lose the write
        assert release_mapped_pages(path) == 0
        assert copy[0] == 255
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
        assert view[1] == 1
        assert release_mapped_pages(path) == len(view)
        assert view[1] == 1  # read again from the file
