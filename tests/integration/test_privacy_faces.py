"""Face blur with the real BlazeFace full-range model on real footage: faces found per frame
against a count by eye, and a blurred face keeps none of its detail."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from realdata import require_media, require_model

from edge_agent.assemble import build_detector, build_pipeline
from edge_agent.capture import open_source
from edge_agent.config import parse_config
from edge_agent.pipeline import run_offline
from edge_agent.privacy import PrivacyConfig, find_faces_whole, load_face_model, privacy_filter
from edge_agent.sinks import CollectingSink
from edge_agent.types import ImageBGR

CLIP = "intel_face-demographics-walking-and-pause.gif"
TRUTH = (
    Path(__file__).parents[1] / "data" / "faces" / "intel_face-demographics-walking-and-pause.yaml"
)
MODEL = "blazeface_full_range"


def frames(name: str) -> list[ImageBGR]:
    capture = cv2.VideoCapture(str(require_media(name)))
    decoded = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        decoded.append(np.asarray(image, np.uint8))
    capture.release()
    return decoded


def truth() -> dict[str, object]:
    loaded = yaml.safe_load(TRUTH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def faces_expected(frame: int, spans: list[dict[str, int]]) -> int:
    return sum(s["faces"] for s in spans if s["first_frame"] <= frame <= s["last_frame"])


def high_frequency_energy(image: ImageBGR) -> float:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


@pytest.fixture(scope="module")
def clip() -> list[ImageBGR]:
    require_model(MODEL)
    return frames(CLIP)


def test_every_face_counted_by_eye_is_found_in_every_frame_and_nothing_else(
    clip: list[ImageBGR],
) -> None:
    facts = truth()
    spans = facts["faces_per_frame"]
    assert isinstance(spans, list) and len(clip) == facts["frames"]
    model = load_face_model(MODEL)
    found = [len(find_faces_whole(model, image)) for image in clip]
    expected = [faces_expected(i, spans) for i in range(len(clip))]
    assert found == expected


def test_faces_are_found_where_they_were_seen(clip: list[ImageBGR]) -> None:
    facts = truth()
    radius = float(facts["match_radius_px"])  # type: ignore[arg-type]
    centres = facts["centres_px"]
    assert isinstance(centres, dict)
    model = load_face_model(MODEL)
    for frame, seen in centres.items():
        faces = find_faces_whole(model, clip[int(frame)])
        for x, y in seen:
            distances = [
                np.hypot((f.x_min + f.x_max) / 2 - x, (f.y_min + f.y_max) / 2 - y) for f in faces
            ]
            assert min(distances) <= radius, f"frame {frame}: no face near ({x}, {y})"


def test_a_portrait_has_one_face() -> None:
    require_model(MODEL)
    image = cv2.imread(str(require_media("coral_grace_hopper.bmp")))
    (face,) = find_faces_whole(load_face_model(MODEL), np.asarray(image, np.uint8))
    height, width = image.shape[:2]
    centre_x, centre_y = (face.x_min + face.x_max) / 2, (face.y_min + face.y_max) / 2
    assert 0.3 * width < centre_x < 0.7 * width and 0.2 * height < centre_y < 0.6 * height


def test_a_blurred_face_keeps_far_less_detail_and_is_not_found_again(
    clip: list[ImageBGR],
) -> None:
    model = load_face_model(MODEL)
    blur = privacy_filter(PrivacyConfig(blur_faces=True))
    for index in (0, 20, 40):
        image = clip[index]
        faces = find_faces_whole(model, image)
        blurred = blur.protect(image)
        assert not (blurred == image).all()
        for again in find_faces_whole(model, blurred):  # none of the faces is found again
            centre = ((again.x_min + again.x_max) / 2, (again.y_min + again.y_max) / 2)
            assert not any(
                f.x_min <= centre[0] <= f.x_max and f.y_min <= centre[1] <= f.y_max for f in faces
            ), f"frame {index}: a blurred face is found again at {again}"
        for face in faces:
            x0, y0, x1, y1 = (round(v) for v in (face.x_min, face.y_min, face.x_max, face.y_max))
            before = high_frequency_energy(image[y0:y1, x0:x1])
            after = high_frequency_energy(blurred[y0:y1, x0:x1])
            assert after < 0.05 * before, f"frame {index}: {after:.1f} vs {before:.1f}"


def thumbnails_of_clip(blur: bool) -> list[ImageBGR]:
    """The agent's thumbnails (real SSD, the agent's own assembly) of the walking clip."""
    require_model("ssd_mobilenet_v1")
    config = parse_config(
        {
            "site_id": "s",
            "device_id": "d",
            "mqtt": {"host": "127.0.0.1"},
            "detector": {"model": "ssd_mobilenet_v1", "threads": 1},
            "cameras": [
                {
                    "id": "cam1",
                    "source": {
                        "kind": "opencv",
                        "uri": str(require_media(CLIP)),
                        "realtime": False,
                    },
                    "privacy": {"blur_faces": blur},
                }
            ],
        }
    )
    camera = config.cameras[0]
    sink = CollectingSink()
    pipeline = build_pipeline(config, camera, detector=build_detector(config), sink=sink)
    source = open_source(camera)
    try:
        run_offline(source, pipeline, always_detect=True)
    finally:
        source.close()
    return [
        np.asarray(cv2.imdecode(np.frombuffer(t.jpeg, np.uint8), cv2.IMREAD_COLOR), np.uint8)
        for t in sink.thumbnails
    ]


def test_no_face_is_found_in_a_thumbnail_of_a_camera_that_blurs_faces() -> None:
    require_model(MODEL)
    model = load_face_model(MODEL)
    plain = thumbnails_of_clip(blur=False)
    assert sum(len(find_faces_whole(model, t)) for t in plain) >= 3  # the control: faces show
    blurred = thumbnails_of_clip(blur=True)
    assert len(blurred) >= 3
    assert [len(find_faces_whole(model, t)) for t in blurred] == [0] * len(blurred)
