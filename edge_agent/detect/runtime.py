"""The only place that imports a TFLite runtime (ai-edge-litert, else tflite-runtime).

Imported lazily so that the rest of the agent (and its tests) loads without a runtime, and
a missing one is reported as one clear error rather than an ImportError deep in a stack.
"""

from __future__ import annotations

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
    return interpreter
