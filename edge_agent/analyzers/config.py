"""Config of scene-state analyzers: one model per ``kind``, chosen by a discriminated union.

Every knob has a default meant for a real street camera, where things take minutes
(a puddle forms, a pile grows) and false alarms cost an operator's attention; the
simulator's time-compressed scenarios set shorter times in their own camera config.
docs/analyzers.md explains each knob and why its default is what it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.config_base import DAY_S, HOUR_S, WEEK_S, Identifier, StrictModel, UnitFloat

Point = tuple[UnitFloat, UnitFloat]


class RegionConfig(StrictModel):
    """Where an analyzer looks, normalised to the frame: a box or a polygon (not both).

    Neither: the whole frame.
    """

    box: tuple[UnitFloat, UnitFloat, UnitFloat, UnitFloat] | None = None  # x0, y0, x1, y1
    polygon: list[Point] | None = Field(None, min_length=3)

    @model_validator(mode="after")
    def _one_shape(self) -> RegionConfig:
        if self.box is not None and self.polygon is not None:
            raise ValueError("give either box or polygon, not both")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 - x0 < 0.01 or y1 - y0 < 0.01:
                raise ValueError("box must be x_min, y_min, x_max, y_max with max > min")
        if self.polygon is not None:
            xs = [p[0] for p in self.polygon]
            ys = [p[1] for p in self.polygon]
            if max(xs) - min(xs) < 0.01 or max(ys) - min(ys) < 0.01:
                raise ValueError("polygon encloses no area")
        return self

    def points(self) -> list[tuple[float, float]]:
        """The region as a polygon (a box or the whole frame become four corners)."""
        if self.polygon is not None:
            return [(float(x), float(y)) for x, y in self.polygon]
        x0, y0, x1, y1 = self.box if self.box is not None else (0.0, 0.0, 1.0, 1.0)
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


class ReferenceStoreConfig(StrictModel):
    """Where the analyzers' references of the clear scene are kept, and what to do without one.

    One per agent (each camera gets a sub-directory) or per camera; docs/analyzers.md,
    *Stored references*.
    """

    directory: Path | None = Path("/var/lib/edge-agent/references")  # None: memory only
    learn_at_start: bool = True  # no stored reference: learn one at start (as before)


class ClassifierConfig(StrictModel):
    """A TFLite image classifier run on the region instead of the built-in pixel measures.

    The model takes one HxWx3 picture (uint8, int8 or float32) and returns [1, N] scores;
    ``labels`` names the N outputs in order and those names become the published states.
    """

    model: str = Field(min_length=1)  # a manifest name, or a path to a .tflite file
    labels: list[Identifier] = Field(min_length=2)
    input_order: Literal["rgb", "bgr"] = "rgb"  # most trained classifiers expect RGB
    input_mean: float = 127.5  # float inputs: (pixel - mean) / std; 127.5 gives -1..1
    input_std: float = Field(127.5, gt=0)
    output: Literal["probabilities", "logits"] = "probabilities"  # logits get a softmax
    enter_score: UnitFloat = 0.6  # a label becomes the candidate state at this score
    exit_score: UnitFloat = 0.4  # the current state holds while its score stays above this
    threads: int = Field(1, ge=1, le=4)

    @model_validator(mode="after")
    def _scores_and_labels(self) -> ClassifierConfig:
        if self.exit_score > self.enter_score:
            raise ValueError("exit_score must not be above enter_score (hysteresis)")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        return self


class _AnalyzerBase(StrictModel):
    region: RegionConfig = Field(default_factory=RegionConfig)
    every_s: float = Field(1.0, ge=0.0, le=3600.0)  # analyse at most this often (0: each frame)
    work_width_px: int = Field(160, ge=32, le=640)  # the region is analysed at this width
    method: Literal["pixels", "classifier"] = "pixels"
    classifier: ClassifierConfig | None = None

    @model_validator(mode="after")
    def _method_needs_classifier(self) -> _AnalyzerBase:
        if self.method == "classifier" and self.classifier is None:
            raise ValueError("method 'classifier' needs a classifier section (model, labels)")
        if self.method == "pixels" and self.classifier is not None:
            raise ValueError("a classifier section is only used with method: classifier")
        return self


class FloodAnalyzerConfig(_AnalyzerBase):
    """Standing water on a road: share of the region that looks like water → none/puddle/flooded."""

    kind: Literal["flood"] = "flood"
    name: Identifier = "flood"
    learn_s: float = Field(60.0, gt=0.0, le=DAY_S)  # the dry reference is a median over this time
    min_duration_s: float = Field(60.0, ge=0.0, le=DAY_S)  # a new level must hold this long
    puddle_enter: UnitFloat = 0.05  # share of the region
    puddle_exit: UnitFloat = 0.03
    flooded_enter: UnitFloat = 0.35
    flooded_exit: UnitFloat = 0.25
    brightness_shift: float = Field(30.0, gt=0.0)  # grey levels brighter than dry (reflection)
    blue_shift: float = Field(20.0, gt=0.0)  # or this much bluer (sky) and not darker
    texture_ratio_max: float = Field(0.7, gt=0.0)  # water is smoother than the dry road
    # a pixel is water when it was for ~this long
    water_memory_s: float = Field(20.0, gt=0.0, le=DAY_S)
    pause_when_tampered: bool = True  # no judgement while the camera's tamper state is not ok
    # the dry reference follows slow change
    reference_tau_s: float = Field(1800.0, gt=0.0, le=WEEK_S)

    @model_validator(mode="after")
    def _hysteresis(self) -> FloodAnalyzerConfig:
        _check_levels(
            [("puddle", self.puddle_enter, self.puddle_exit),
             ("flooded", self.flooded_enter, self.flooded_exit)]
        )  # fmt: skip
        return self


class GarbageAnalyzerConfig(_AnalyzerBase):
    """Something that appeared and stays in a no-dumping region → none/present, with its area."""

    kind: Literal["garbage"] = "garbage"
    name: Identifier = "garbage"
    learn_s: float = Field(60.0, gt=0.0, le=DAY_S)  # the empty reference is a median over this time
    min_duration_s: float = Field(30.0, ge=0.0, le=DAY_S)  # present/none must hold this long
    # a pixel must be changed and still this long
    persistence_s: float = Field(300.0, gt=0.0, le=DAY_S)
    present_enter: UnitFloat = 0.02  # share of the region covered by static change
    present_exit: UnitFloat = 0.01
    report_step: UnitFloat = 0.02  # republish "present" when the share moved this much
    diff_threshold: float = Field(35.0, gt=0.0)  # grey levels from the empty reference
    stable_threshold: float = Field(20.0, gt=0.0)  # current vs short-term: not moving
    # short-term background: the last few seconds
    short_tau_s: float = Field(2.0, gt=0.0, le=HOUR_S)
    # long-term background, unchanged pixels
    reference_tau_s: float = Field(3600.0, gt=0.0, le=WEEK_S)
    # None: a pile stays until removed
    absorb_after_s: float | None = Field(None, gt=0.0, le=WEEK_S)
    pause_when_tampered: bool = True  # no judgement while the camera's tamper state is not ok

    @model_validator(mode="after")
    def _hysteresis(self) -> GarbageAnalyzerConfig:
        _check_levels([("present", self.present_enter, self.present_exit)])
        if self.stable_threshold > self.diff_threshold:
            raise ValueError("stable_threshold must not exceed diff_threshold")
        return self


class TamperAnalyzerConfig(_AnalyzerBase):
    """Is the camera still useful → ok/covered/blurred/moved/frozen/no_signal."""

    kind: Literal["tamper"] = "tamper"
    name: Identifier = "tamper"
    work_width_px: int = Field(320, ge=64, le=640)  # sharpness needs more pixels than the rest
    learn_s: float = Field(30.0, gt=0.0, le=DAY_S)  # the reference view is a median over this time
    # covered/blurred/moved/ok must hold this long
    min_duration_s: float = Field(15.0, ge=0.0, le=DAY_S)
    covered_std: float = Field(8.0, ge=0.0)  # grey-level spread below this: nothing to see
    dark_mean: float = Field(12.0, ge=0.0)  # mean grey level below this: dark
    blur_ratio: UnitFloat = 0.4  # sharpness below this share of the reference: blurred
    moved_shift: UnitFloat = 0.03  # view shifted by this share of the width: moved
    moved_similarity: float = Field(0.5, ge=-1.0, le=1.0)  # structure correlation below: moved
    # bit-identical frames for this long: frozen
    frozen_after_s: float = Field(10.0, gt=0.0, le=DAY_S)
    no_signal_after_s: float = Field(10.0, gt=0.0, le=DAY_S)  # no frames at all for this long
    # the reference follows slow change while ok
    reference_tau_s: float = Field(600.0, gt=0.0, le=WEEK_S)
    # None: moved until re-aimed
    accept_moved_after_s: float | None = Field(None, gt=0.0, le=WEEK_S)


AnalyzerConfig = Annotated[
    FloodAnalyzerConfig | GarbageAnalyzerConfig | TamperAnalyzerConfig,
    Field(discriminator="kind"),
]

RESTING_STATES: dict[str, str] = {"flood": "none", "garbage": "none", "tamper": "ok"}
"""The state each kind reports when nothing is wrong."""


def _check_levels(levels: list[tuple[str, float, float]]) -> None:
    previous_enter = 0.0
    for name, enter, exit_ in levels:
        if exit_ > enter:
            raise ValueError(f"{name}_exit must not be above {name}_enter (hysteresis)")
        if enter <= previous_enter:
            raise ValueError(f"{name}_enter must be above the level below it")
        previous_enter = enter
