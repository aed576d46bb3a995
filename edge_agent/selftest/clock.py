"""Is the system clock synchronised? Asked of the kernel, which needs no root.

``adjtimex(2)`` with no mode bits only reads: its return value is the clock state
(``TIME_ERROR`` when unsynchronised) and ``STA_UNSYNC`` in ``status`` is cleared by
whichever NTP daemon disciplines the clock (systemd-timesyncd, chrony, ntpd). Where that
call is not available, systemd-timesyncd's ``/run/systemd/timesync/synchronized`` flag
file is the next best witness; with neither, the answer is "unknown", said as such.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from dataclasses import dataclass
from pathlib import Path

TIME_ERROR = 5
STA_UNSYNC = 0x0040
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


@dataclass(frozen=True)
class ClockState:
    """``synchronised`` None: cannot tell. ``max_error_s``: the kernel's bound, when known."""

    synchronised: bool | None
    source: str
    max_error_s: float | None = None


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """``struct timex`` of <sys/timex.h> (Linux, LP64 and ILP32 alike)."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    )


def kernel_clock_state() -> ClockState | None:
    """The kernel's view, or None where adjtimex cannot be called (not Linux, no libc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()  # modes 0: read only, allowed without CAP_SYS_TIME
    state = int(adjtimex(ctypes.byref(timex)))
    if state < 0:
        return None
    synchronised = state != TIME_ERROR and not timex.status & STA_UNSYNC
    return ClockState(synchronised, "kernel (adjtimex)", max_error_s=timex.maxerror / 1e6)


def read_clock_state() -> ClockState:
    kernel = kernel_clock_state()
    if kernel is not None:
        return kernel
    if TIMESYNCD_FLAG.exists():
        return ClockState(True, f"systemd-timesyncd ({TIMESYNCD_FLAG})")
    return ClockState(None, "no adjtimex and no systemd-timesyncd flag")
