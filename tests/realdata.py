"""Find real models and media for integration tests: skip locally, fail under CI.

Tests find data through EDGE_AGENT_MODEL_PATH / EDGE_AGENT_MEDIA_PATH (and the user cache),
exactly as the agent does. Where the CI environment variable is set a missing or wrong file is
a failure, so a CI run can never pass by skipping the tests that matter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

from edge_agent import datafiles


def skip_or_fail(reason: str, *, ci_reason: str | None = None) -> NoReturn:
    """Skip a test that lacks something it needs, or fail it where CI is set (with
    ``ci_reason``, by default "CI is set but <reason>"): CI never passes by skipping."""
    if os.environ.get("CI"):
        pytest.fail(ci_reason or f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def _unavailable(kind: str, name: str, exc: datafiles.DataFileError) -> NoReturn:
    skip_or_fail(f"{kind} {name} unavailable: {exc}")


def require_model(name: str) -> Path:
    """Path of a verified manifest model, or skip (fail under CI)."""
    try:
        return datafiles.resolve_model_file(name)
    except datafiles.DataFileError as exc:
        _unavailable("model", name, exc)
        raise  # unreachable: skip/fail raise


def require_media(name: str) -> Path:
    """Path of a verified manifest media file, or skip (fail under CI)."""
    try:
        return datafiles.resolve_media(name)
    except datafiles.DataFileError as exc:
        _unavailable("media", name, exc)
        raise
