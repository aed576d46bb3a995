"""Privacy masks, the privacy config, and the face model's decoding (without the model)."""

from __future__ import annotations

import itertools
from typing import Any

import cv2
import numpy as np
import pytest
from privacy_checks import BAND, covered
from realdata import require_model

from edge_agent.config import ConfigError, parse_config
from edge_agent.config_check import semantic_problems
from edge_agent.datafiles import DataFileError
from edge_agent.privacy import (
    NO_PRIVACY,
    BlazeFace,
    CameraPrivacy,
    Face,
    FaceModelError,
    Masks,
    PrivacyConfig,
    blur_faces,
    privacy_filter,
    protect,
)
from edge_agent.privacy import faces as faces_module
from edge_agent.privacy.faces import full_range_anchors, loaded_face_models, weighted_nms
from edge_agent.privacy.filter import cached_filters, merge_faces, tiles, window_px
from edge_agent.types import Box

TRIANGLE = [(0.1, 0.1), (0.9, 0.2), (0.4, 0.9)]


def scene(width: int = 320, height: int = 180) -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(60, 255, (height, width, 3), dtype=np.uint8)


# -- masks


@pytest.mark.parametrize("polygon", [TRIANGLE, BAND])
def test_a_mask_is_black_inside_and_leaves_the_rest(polygon: list[tuple[float, float]]) -> None:
    image = scene()
    masked = protect(PrivacyConfig(masks=[polygon]), image)
    truth = covered([polygon], (320, 180), (0, 0, 320, 180), (180, 320))
    # One pixel either side of the outline may go either way (the fill covers every pixel
    # the outline touches: it errs on the side of hiding).
    kernel = np.ones((3, 3), np.uint8)
    as_u8 = truth.astype(np.uint8)
    ring = cv2.dilate(as_u8, kernel).astype(bool) & ~cv2.erode(as_u8, kernel).astype(bool)
    assert (masked[truth & ~ring] == 0).all()
    outside = ~truth & ~ring
    assert (masked[outside] == image[outside]).all()


def test_a_mask_to_the_edge_covers_the_last_row_and_column() -> None:
    masked = protect(PrivacyConfig(masks=[[(0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)]]), scene())
    assert (masked[-1, 160:] == 0).all() and (masked[90:, -1] == 0).all()


def test_protect_never_changes_the_shared_frame_and_passes_an_unmasked_one_as_is() -> None:
    image = scene()
    before = image.copy()
    masked = protect(PrivacyConfig(masks=[TRIANGLE]), image)
    assert masked is not image and (image == before).all()
    assert protect(PrivacyConfig(), image) is image
    assert privacy_filter(PrivacyConfig()) is NO_PRIVACY and not NO_PRIVACY.active


def test_masks_apply_before_a_crop_whatever_the_focus() -> None:
    image = scene()
    masks = [[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]]
    masked = CameraPrivacy(Masks.of(masks)).protect(image, focus=Box(0.6, 0.0, 1.0, 1.0))
    assert (masked[:, :150] == 0).all()


def test_protect_takes_a_camera_config_its_privacy_or_a_filter() -> None:
    config = parse_config(camera_config({"masks": [TRIANGLE]}))
    camera = config.cameras[0]
    image = scene()
    by_camera = protect(camera, image)
    assert (by_camera == protect(camera.privacy, image)).all()
    assert (by_camera == protect(privacy_filter(camera.privacy), image)).all()
    assert privacy_filter(camera.privacy) is privacy_filter(camera.privacy)  # built once


# -- config


def camera_config(privacy: dict[str, Any]) -> dict[str, Any]:
    return {
        "site_id": "s",
        "device_id": "d",
        "mqtt": {"host": "127.0.0.1"},
        "cameras": [{"id": "cam1", "source": {"kind": "sim"}, "privacy": privacy}],
    }


def test_privacy_is_off_by_default() -> None:
    camera = parse_config(camera_config({})).cameras[0]
    assert camera.privacy.masks == [] and camera.privacy.blur_faces is False
    assert not camera.privacy.active


@pytest.mark.parametrize(
    ("privacy", "message"),
    [
        ({"masks": [[(0, 0), (1, 1)]]}, "at least 3"),
        ({"masks": [[(0, 0), (0.5, 0.5), (1, 1)]]}, "no area"),
        ({"masks": [[(0, 0), (1.5, 0), (1, 1)]]}, "less than or equal to 1"),
        ({"masks": [[(0, 0), (-0.1, 0), (1, 1)]]}, "greater than or equal to 0"),
        ({"mask": []}, "mask"),  # extra="forbid": a typo is an error
        ({"blur_faces": "maybe"}, "blur_faces"),
        ({"face_score_threshold": 1.0}, "face_score_threshold"),
    ],
)
def test_bad_privacy_config_is_refused_with_its_path(privacy: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(camera_config(privacy))
    text = str(caught.value)
    assert "cameras[0].privacy" in text and message in text


# -- faces: anchors, decoding, merging, blurring


def test_full_range_anchors_are_a_48_grid_of_cell_centres_row_by_row() -> None:
    anchors = full_range_anchors()
    assert anchors.shape == (2304, 2)
    assert anchors[0] == pytest.approx((0.5 / 48, 0.5 / 48))
    assert anchors[1] == pytest.approx((1.5 / 48, 0.5 / 48))
    assert anchors[48] == pytest.approx((0.5 / 48, 1.5 / 48))


class FakeFaceInterpreter:
    """BlazeFace's tensors, with one face planted at anchor ``cell``."""

    def __init__(self, cell: int, regress: tuple[float, float, float, float], logit: float) -> None:
        self.regressors = np.zeros((1, 2304, 16), np.float32)
        self.regressors[0, cell, :4] = regress
        self.logits = np.full((1, 2304, 1), -20.0, np.float32)
        self.logits[0, cell, 0] = logit
        self.fed: np.ndarray | None = None

    def allocate_tensors(self) -> None: ...

    def get_input_details(self) -> list[dict[str, Any]]:
        return [{"index": 0, "shape": np.array([1, 192, 192, 3])}]

    def get_output_details(self) -> list[dict[str, Any]]:
        return [
            {"index": 1, "shape": np.array([1, 2304, 16])},
            {"index": 2, "shape": np.array([1, 2304, 1])},
        ]

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self.fed = value

    def invoke(self) -> None: ...

    def get_tensor(self, index: int) -> np.ndarray:
        return self.regressors if index == 1 else self.logits


def test_a_face_is_decoded_from_its_anchor_and_mapped_out_of_the_letterbox() -> None:
    # Anchor (row 24, col 12): centre (12.5*4, 24.5*4) = (50, 98) input px; +10 px in x.
    fake = FakeFaceInterpreter(24 * 48 + 12, (10.0, 0.0, 20.0, 30.0), logit=3.0)
    model = BlazeFace(fake, score_threshold=0.5)
    # 384x192 picture: scale 0.5, padded 48 px above and below.
    (face,) = model.detect(np.full((192, 384, 3), 128, np.uint8))
    assert (face.x_min, face.x_max) == pytest.approx((100.0, 140.0))  # (60 -+ 10) / 0.5
    assert (face.y_min, face.y_max) == pytest.approx((70.0, 130.0))  # (98 -+ 15 - 48) / 0.5
    assert face.score == pytest.approx(1 / (1 + np.exp(-3.0)))
    assert fake.fed is not None and fake.fed.min() >= -1.0 and fake.fed.max() <= 1.0


def test_a_face_below_the_threshold_is_not_reported() -> None:
    model = BlazeFace(FakeFaceInterpreter(100, (0, 0, 20, 20), logit=-0.5), score_threshold=0.5)
    assert model.detect(np.zeros((100, 100, 3), np.uint8)) == []


def test_a_model_of_another_layout_is_refused() -> None:
    fake = FakeFaceInterpreter(0, (0, 0, 1, 1), 0.0)
    fake.get_input_details = lambda: [{"index": 0, "shape": np.array([1, 128, 128, 3])}]  # type: ignore[method-assign]
    with pytest.raises(FaceModelError, match="BlazeFace"):
        BlazeFace(fake)


def test_weighted_nms_merges_overlapping_boxes_and_keeps_apart_ones() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    kept = weighted_nms(boxes, scores)
    assert [score for _, score in kept] == pytest.approx([0.9, 0.7])
    assert kept[0][0] == pytest.approx([0.4, 0.4, 10.4, 10.4])  # (0*0.9 + 1*0.6) / 1.5


def test_blur_leaves_no_detail_of_the_face_and_nothing_outside_it() -> None:
    image = scene(200, 200)
    before = image.copy()
    blur_faces(image, [Face(80, 80, 120, 120, 0.9)])  # blurred with a 10 px margin: 70..130
    face = image[72:128, 72:128].astype(np.float32)
    assert (
        np.abs(np.diff(face, axis=1)).max()
        < 0.2 * np.abs(np.diff(before[72:128, 72:128].astype(np.float32), axis=1)).max()
    )
    assert (image[:69] == before[:69]).all() and (image[131:] == before[131:]).all()


@pytest.mark.parametrize(
    ("size", "window", "expected"),
    [
        ((480, 270), 274, [(0, 0, 274, 270), (206, 0, 480, 270)]),
        ((200, 200), 274, [(0, 0, 200, 200)]),
        ((150, 350), 274, [(0, 0, 150, 274), (0, 76, 150, 350)]),
        (
            (960, 540),
            384,
            [(x, y, x + 384, y + 384) for y in (0, 156) for x in (0, 288, 576)],
        ),
    ],
)
def test_whole_frame_face_search_uses_overlapping_windows_covering_it(
    size: tuple[int, int], window: int, expected: list[tuple[int, int, int, int]]
) -> None:
    found = tiles(*size, window)
    assert found == expected
    for (ax0, _, ax1, _), (bx0, _, _, _) in itertools.pairwise(found):
        if bx0 > ax0:
            assert ax1 - bx0 >= window // 4  # neighbours overlap by a quarter window


def test_the_window_keeps_the_smallest_face_big_enough_for_the_model() -> None:
    assert window_px(20) == 274  # 20 px * 192 / 14
    assert window_px(8) == 192  # never smaller than the model's input


def test_a_piece_of_a_face_cut_by_a_window_is_merged_into_the_whole_face() -> None:
    whole = Face(100, 100, 200, 200, 0.9)
    piece = Face(150, 120, 200, 190, 0.8)  # the right half, as a window saw it
    apart = Face(300, 100, 330, 130, 0.7)
    assert merge_faces([piece, whole, apart]) == [whole, apart]


def test_a_camera_that_blurs_faces_does_not_start_without_its_face_model() -> None:
    with pytest.raises(DataFileError, match="no_such_face_model"):
        privacy_filter(PrivacyConfig(blur_faces=True, face_model="no_such_face_model"))


def test_check_config_says_when_the_face_model_is_unusable() -> None:
    require_model("blazeface_full_range")
    good = parse_config(camera_config({"blur_faces": True}))
    assert not any("privacy" in p for p in semantic_problems(good, offline=True))
    for model, says in (
        ("no_such_face_model", "not in the data manifest"),
        ("ssd_mobilenet_v1", "not a face model"),
    ):
        bad = parse_config(camera_config({"blur_faces": True, "face_model": model}))
        problems = [p for p in semantic_problems(bad, offline=True) if "privacy" in p]
        assert len(problems) == 1 and "cameras[0].privacy.face_model" in problems[0]
        assert says in problems[0]


def test_new_masks_and_thresholds_keep_one_face_model_and_only_the_live_filters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_model("blazeface_full_range")
    loads: list[object] = []
    real = faces_module.load_interpreter

    def counted(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(faces_module, "load_interpreter", counted)
    filters_before = cached_filters()
    live = None
    for i in range(8):  # each a saved config; the reloaded camera holds the new filter
        config = PrivacyConfig(
            masks=[[(0.1, 0.1), (0.2 + i / 20, 0.1), (0.1, 0.4)]],
            blur_faces=True,
            face_score_threshold=0.5 if i % 2 else 0.3 + i / 50,
        )
        live = privacy_filter(config)
        assert live.faces is not None
        assert live.faces.score_threshold == config.face_score_threshold
        assert loaded_face_models() == 1
        assert cached_filters() == filters_before + 1  # the old config's filter is gone
    assert len(loads) <= 1  # none when another test's model was still in use
    del live
    assert cached_filters() == filters_before


def test_a_threshold_view_shares_the_model_and_keeps_its_own_threshold() -> None:
    model = BlazeFace(FakeFaceInterpreter(100, (0, 0, 20, 20), logit=1.0), score_threshold=0.5)
    strict = model.with_score_threshold(0.9)  # logit 1.0 is a score of 0.73
    assert model.with_score_threshold(0.5) is model
    assert strict._interpreter is model._interpreter and strict._lock is model._lock
    picture = np.zeros((100, 100, 3), np.uint8)
    assert len(model.detect(picture)) == 1 and strict.detect(picture) == []
    assert model.score_threshold == 0.5  # the model itself is unchanged
