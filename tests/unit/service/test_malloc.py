"""``limit_malloc_arenas``: glibc's arenas limited for ``edge-agent run``, unless the admin
set ``MALLOC_ARENA_MAX``. In a fresh interpreter each, not to change this process's."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CALL = "from edge_agent.service.malloc import limit_malloc_arenas; print(limit_malloc_arenas())"


def limited(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if env_value is not None:
        env["MALLOC_ARENA_MAX"] = env_value
    completed = subprocess.run(
        [sys.executable, "-c", CALL], env=env, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_arenas_are_limited_on_glibc() -> None:
    assert limited(None) == "True"


def test_an_admins_malloc_arena_max_wins() -> None:
    assert limited("4") == "False"
