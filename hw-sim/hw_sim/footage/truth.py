"""Truth files for real clips: which objects are in view in which frames, counted by eye.

One YAML file per clip in ``truth/`` beside this module. The clips themselves are never
committed: a truth file names its clip and pins its sha256, frame count and decoded fps, and
the clip is found through the data manifest (``EDGE_AGENT_MEDIA_PATH``), so the truth cannot
silently drift from the media it describes. Frames are 0-based, in OpenCV decode order, and
inclusive at both ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.detect.labels import VEHICLE_LABELS

TRUTH_DIR = Path(__file__).resolve().parent / "truth"


def label_family(label: str) -> str:
    """Vehicles are one family, as the tracker treats them; other labels are their own."""
    return "vehicle" if label in VEHICLE_LABELS else label


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrameSpan(_Strict):
    first_frame: int = Field(ge=0)
    last_frame: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> FrameSpan:
        if self.last_frame < self.first_frame:
            raise ValueError(f"last_frame {self.last_frame} before first_frame {self.first_frame}")
        return self

    def contains(self, frame: int) -> bool:
        return self.first_frame <= frame <= self.last_frame


class VisibilitySpan(FrameSpan):
    """Part of an object's time in view where it is only partly visible."""

    kind: Literal["cut_by_edge", "occluded"]
    note: str = ""


class TruthObject(FrameSpan):
    """One visit: an object from the first to the last frame any part of it shows."""

    id: str = Field(min_length=1)
    label: str = Field(min_length=1)
    description: str = ""
    spans: tuple[VisibilitySpan, ...] = ()

    @model_validator(mode="after")
    def _spans_inside(self) -> TruthObject:
        for span in self.spans:
            if span.first_frame < self.first_frame or span.last_frame > self.last_frame:
                raise ValueError(f"object {self.id}: a {span.kind} span lies outside its frames")
        return self

    @property
    def family(self) -> str:
        return label_family(self.label)


class FrameCounts(FrameSpan):
    """How many objects of each label are in view in every frame of the span."""

    counts: dict[str, int]


class Provenance(_Strict):
    counted_by: str = Field(min_length=1)
    date: str = Field(min_length=1)
    method: str = Field(min_length=1)


class ClipTruth(_Strict):
    clip: str = Field(min_length=1, pattern=r"^[^/\\]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    fps: float = Field(gt=0)
    frames: int = Field(gt=0)
    width_px: int = Field(gt=0)
    height_px: int = Field(gt=0)
    provenance: Provenance
    objects: tuple[TruthObject, ...]
    frame_counts: tuple[FrameCounts, ...] = ()
    """Per-frame counts by label; where given they must cover every frame."""

    @model_validator(mode="after")
    def _consistent(self) -> ClipTruth:
        ids = [o.id for o in self.objects]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate object ids in {ids}")
        for obj in self.objects:
            if obj.last_frame >= self.frames:
                raise ValueError(f"object {obj.id} ends after the clip's last frame")
        if self.frame_counts:
            self._check_counts()
        return self

    def _check_counts(self) -> None:
        """Counts cover each frame once and agree with the objects: the truth cannot
        contradict itself."""
        covered = [0] * self.frames
        for span in self.frame_counts:
            if span.last_frame >= self.frames:
                raise ValueError("frame_counts run past the clip's last frame")
            for frame in range(span.first_frame, span.last_frame + 1):
                covered[frame] += 1
                in_view = self.objects_in_view(frame)
                for label in set(span.counts) | set(in_view):
                    if span.counts.get(label, 0) != in_view.get(label, 0):
                        raise ValueError(
                            f"frame {frame}: frame_counts says {span.counts.get(label, 0)} "
                            f"{label}, the objects {in_view.get(label, 0)}"
                        )
        if any(n != 1 for n in covered):
            raise ValueError("frame_counts must cover every frame exactly once")

    def objects_in_view(self, frame: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for obj in self.objects:
            if obj.contains(frame):
                counts[obj.label] = counts.get(obj.label, 0) + 1
        return counts

    def cut_by_edge_at(self, frame: int, family: str) -> int:
        """Objects of ``family`` in view at ``frame`` that the picture's edge cuts: the
        per-frame count's tolerance (a car showing only its bumper may go uncounted)."""
        return sum(
            1
            for obj in self.objects
            if obj.family == family
            and any(s.kind == "cut_by_edge" and s.contains(frame) for s in obj.spans)
        )

    def counts_at(self, frame: int) -> dict[str, int] | None:
        """The per-frame truth at ``frame``; None when the file gives no per-frame counts."""
        for span in self.frame_counts:
            if span.contains(frame):
                return dict(span.counts)
        return None


def load_truth(path: Path) -> ClipTruth:
    """Parse and validate one truth file (pydantic errors name the bad field)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return ClipTruth.model_validate(raw)


def truth_files(directory: Path = TRUTH_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def all_truths(directory: Path = TRUTH_DIR) -> Iterator[ClipTruth]:
    for path in truth_files(directory):
        yield load_truth(path)
