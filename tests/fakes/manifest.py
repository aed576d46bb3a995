"""Data-file manifest entries for files a test makes itself (edge_agent.datafiles)."""

from __future__ import annotations

import hashlib
from typing import Any


def model_entry(name: str, data: bytes, source_url: str, **extra: Any) -> dict[str, Any]:
    """A manifest entry for an SSD model file ``<name>.tflite`` holding ``data``; ``extra``
    adds or overrides keys."""
    entry: dict[str, Any] = {
        "name": name,
        "kind": "model",
        "file": f"{name}.tflite",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "source_url": source_url,
        "licence": "Apache-2.0",
        "format": "ssd_postprocess",
        "input_width": 300,
        "input_height": 300,
        "input_dtype": "uint8",
        "labels": "coco90",
    }
    entry.update(extra)
    return entry
