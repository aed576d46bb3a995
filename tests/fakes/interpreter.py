"""A TFLite interpreter double: fixed tensor details, outputs set by the test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def tensor(
    name: str,
    index: int,
    shape: Sequence[int],
    dtype: Any = np.float32,
    quantization: tuple[float, int] = (0.0, 0),
) -> dict[str, Any]:
    """Tensor details as the runtime's get_input_details()/get_output_details() give them."""
    return {
        "name": name,
        "index": index,
        "shape": np.array(shape),
        "dtype": dtype,
        "quantization": quantization,
    }


class FakeInterpreter:
    """Satisfies edge_agent.detect.runtime.Interpreter; ``outputs`` maps index -> array."""

    def __init__(
        self,
        inputs: Sequence[dict[str, Any]],
        output_details: Sequence[dict[str, Any]],
        outputs: dict[int, npt.NDArray[Any]] | None = None,
    ) -> None:
        self.inputs = list(inputs)
        self.output_details = list(output_details)
        self.outputs = dict(outputs or {})
        self.last_input: npt.NDArray[Any] | None = None  # as the last invoke saw it
        self.invocations = 0
        self._input_buffer: npt.NDArray[Any] | None = None  # what ``tensor()`` exposes

    def allocate_tensors(self) -> None:
        pass

    def get_input_details(self) -> list[dict[str, Any]]:
        return self.inputs

    def get_output_details(self) -> list[dict[str, Any]]:
        return self.output_details

    def set_tensor(self, tensor_index: int, value: npt.NDArray[Any]) -> None:
        self.last_input = np.array(value, copy=True)

    def tensor(self, tensor_index: int) -> Callable[[], npt.NDArray[Any]]:
        """The input tensor's buffer, written in place (kept from one call to the next)."""
        details = next(d for d in self.inputs if d["index"] == tensor_index)
        if self._input_buffer is None:
            self._input_buffer = np.zeros([int(v) for v in details["shape"]], details["dtype"])
        buffer = self._input_buffer
        return lambda: buffer

    def invoke(self) -> None:
        self.invocations += 1
        if self._input_buffer is not None:
            self.last_input = self._input_buffer.copy()

    def get_tensor(self, tensor_index: int) -> npt.NDArray[Any]:
        return np.array(self.outputs[tensor_index], copy=True)
