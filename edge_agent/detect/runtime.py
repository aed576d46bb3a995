"""The only place that imports a TFLite runtime (ai-edge-litert, else tflite-runtime).

Imported lazily so that the rest of the agent (and its tests) loads without a runtime, and
a missing one is reported as one clear error rather than an ImportError deep in a stack.

The runtime maps the model file rather than reading it; XNNPACK then packs the weights into
memory of its own when the tensors are allocated, and does not read the file's weights
again. ``load_interpreter`` therefore gives the file's pages back once the model is ready
(``release_mapped_pages``): ~4 MB less resident in the agent with either model, and out of
the page cache too unless another process maps the file (bench/README.md, memory). What an
operator XNNPACK does not run still reads (SSD's anchors: 64 kB, YOLOX 0.4 MB) is read
again from the file on first use.
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
    """Unmap this process's resident pages of every read-only shared mapping of ``path``,
    then ask the kernel to drop the file's pages from its cache (those nobody maps); a
    later read maps them again from the file. The bytes of the mappings released; 0 where
    nothing maps the file that way, or off Linux/glibc. A private or writable mapping is
    left alone: its written pages would be lost."""
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
        if len(fields) < 6 or fields[5] != target or fields[1] != "r--s":
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
    if released:
        _drop_cached(target)
    return released


def _drop_cached(path: str) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    except (OSError, AttributeError):  # not Linux: the pages stay cached, no harm
        pass
    finally:
        os.close(descriptor)
