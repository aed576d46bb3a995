"""Keep the TFLite runtime's start-up banner out of the log.

LiteRT's C++ code prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` to
file descriptor 2 when tensors are allocated; ``TF_CPP_MIN_LOG_LEVEL`` does not silence
it. Under journald that line arrives at the default priority on every start and every
reload. While the interpreter is built, fd 2 goes to a temporary file; afterwards every
line written meanwhile goes back to stderr except the runtime's INFO lines — a warning
or error from the runtime, or another thread's log line, is delayed, never lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

__all__ = ["quiet_runtime_banner"]

_BANNER = re.compile(rb"^INFO: .*(TensorFlow Lite|XNNPACK|LiteRT)")
_STDERR_FD = 2
_lock = threading.Lock()  # one redirection at a time (two detectors built at once)


@contextlib.contextmanager
def quiet_runtime_banner() -> Iterator[None]:
    """Drop the runtime's INFO lines written to fd 2 inside the block; keep the rest."""
    with _lock, tempfile.TemporaryFile() as capture:
        with contextlib.suppress(ValueError, OSError):  # a closed or odd sys.stderr
            sys.stderr.flush()
        try:
            saved = os.dup(_STDERR_FD)
        except OSError:  # no fd 2 at all: nothing to quiet
            yield
            return
        os.dup2(capture.fileno(), _STDERR_FD)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError, OSError):
                sys.stderr.flush()
            os.dup2(saved, _STDERR_FD)
            os.close(saved)
            capture.seek(0)
            kept = [
                line for line in capture.read().splitlines(keepends=True) if not _BANNER.match(line)
            ]
            if kept:
                os.write(_STDERR_FD, b"".join(kept))
