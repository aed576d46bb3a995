"""The TFLite runtime's INFO banner is dropped from fd 2; anything else written there stays."""

from __future__ import annotations

import os

import pytest

from edge_agent.detect.quiet import quiet_runtime_banner


def test_the_banner_goes_and_other_lines_stay(capfd: pytest.CaptureFixture[str]) -> None:
    with quiet_runtime_banner():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"WARNING: something the runtime means\n")
        os.write(2, b"INFO: Initialized TensorFlow Lite runtime.\n")
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err == "WARNING: something the runtime means\nafter\n"


def test_fd_2_is_back_even_when_the_block_raises(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError), quiet_runtime_banner():
        os.write(2, b"kept\n")
        raise ValueError("not a model")
    os.write(2, b"then\n")
    assert capfd.readouterr().err == "kept\nthen\n"
