"""The only place that imports a TFLite runtime (ai-edge-litert, else tflite-runtime).

Imported lazily so that the rest of the agent (and its tests) loads without a runtime, and
a missing one is reported as one clear error rather than an ImportError deep in a stack.

The runtime maps the model file rather than reading it; XNNPACK then packs the weights into
memory of its own when the tensors are allocated, and does not read the file's weights
again. ``load_interpreter`` therefore lets go of the file's pages (``madvise``) once the
model is ready: ~4 MB of the agent's resident memory with either model (bench/README.md,
memory). They stay in the page cache; a part an operator not run by XNNPACK still reads
(SSD's anchors: 64 kB) is mapped again on first use, from the same file.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from edge_agent.detect.quiet import quiet_runtime_banner


class RuntimeUnavailable(ImportError):
    """Neither ai-edge-litert nor tflite-runtime can be imported."""


class Interpreter(Protocol):
    """The part of tf.lite.Interpreter's API the detectors use."""

    def allocate_tensors(self) -> None: ...

    def get_input_details(self) -> Sequence[dict[str, Any]]: ...

    def get_output_details(self) -> Sequence[dict[str, Any]]: ...

    def set_tensor(self, tensor_index: int, value: npt.NDArray[Any]) -> None: ...

    def invoke(self) -> None: ...

    def get_tensor(self, tensor_index: int) -> npt.NDArray[np.generic]: ...


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT

        return LiteRT
    except ImportError as litert_error:
        try:
            from tflite_runtime.interpreter import Interpreter as TFLiteRuntime

            return TFLiteRuntime
        except ImportError:
            raise RuntimeUnavailable(
                "no TFLite runtime: install ai-edge-litert (`pip install ai-edge-litert`); "
                f"tflite-runtime is accepted as a fallback ({litert_error})"
            ) from litert_error


def load_interpreter(path: Path, num_threads: int) -> Interpreter:
    """An interpreter for the model at ``path`` with tensors allocated.

    Raises RuntimeUnavailable without a runtime, and ValueError/RuntimeError (from the
    runtime) when the file is not a loadable model.
    """
    interpreter_class = _interpreter_class()
    with quiet_runtime_banner():  # its INFO banner, not in every start's log (journald)
        interpreter: Interpreter = interpreter_class(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    release_mapped_pages(path)
    return interpreter


MADV_DONTNEED = 4  # Linux, every architecture


def release_mapped_pages(path: Path) -> int:
    """Unmap this process's resident pages of every mapping of ``path`` (the file and the
    page cache keep them; a later read maps them again). The bytes of the mappings advised;
    0 where nothing maps it, or off Linux/glibc. Only for a file nobody writes through the
    mapping: a private mapping's written pages would be lost."""
    try:
        maps = Path("/proc/self/maps").read_text()
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    target = os.path.realpath(path)
    released = 0
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)  # range perms offset dev inode path
        if len(fields) < 6 or fields[5] != target or "w" in fields[1]:
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
    return released
