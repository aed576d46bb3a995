"""hw-sim's scene-analyzer scenarios: registered, deterministic, truth that matches the
pixels, a camera config the agent accepts, and states that reach the sink encoded.

The scenes need the footage their people and cars are cut from (EDGE_AGENT_MEDIA_PATH);
without it these tests skip, or fail where CI is set.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from fakes.detect import StaticDetector
from fakes.sinks import ListSink
from hw_sim.effects import Daylight, FrozenFeed, GarbageBags, Knock, Puddle, interpolate
from hw_sim.scenarios_scene import NO_DUMPING, ROAD, SCENE_SCENARIO_NAMES
from hw_sim.scenes import Scenario, load_scenario, required_media, scenario_names, script
from realdata import require_media

from edge_agent.analyzers import build_analyzers
from edge_agent.analyzers.tamper import phase_shift
from edge_agent.assemble import build_pipeline
from edge_agent.capture.sim_source import SimSource
from edge_agent.config import parse_config
from edge_agent.pipeline import run_offline
from edge_agent.types import ImageBGR, MessageClass

W, H = 320, 180


def _scene(name: str, width: int = W, height: int = H) -> Scenario:
    for media in required_media(name):
        require_media(media)
    return load_scenario(name, width=width, height=height, fps=script(name).fps or 1.0)


def _grey(image: ImageBGR) -> npt.NDArray[np.float32]:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)


def _box(image: ImageBGR, box: tuple[float, float, float, float]) -> ImageBGR:
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    return image[round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)]


def test_the_scene_scenarios_are_registered_with_truth_and_a_camera_config() -> None:
    names = scenario_names()
    for name in SCENE_SCENARIO_NAMES:
        assert name in names
        s = script(name)
        assert s.fps == 1.0 and not s.loops
        assert s.expectations.states, name
        camera = {"id": "cam", "source": {"kind": "sim", "scenario": name}}
        config = parse_config(
            {"site_id": "s", "device_id": "d", "cameras": [{**camera, **s.expectations.camera}]}
        )
        analyzers = build_analyzers(config.cameras[0].analyzers, camera_id="cam")
        # Every analyzer with truth is configured, and the truth covers the whole scene.
        topics = {a.name for a in analyzers}
        for state in s.expectations.states:
            assert state.analyzer in topics, (name, state)
            assert 0.0 <= state.start_s < state.end_s <= s.duration_s
    assert script("dusk_headlights").expectations.false_alarm_check


@pytest.mark.parametrize("name", SCENE_SCENARIO_NAMES)
def test_rendering_is_deterministic_in_any_order(name: str) -> None:
    scene = _scene(name)
    late = scene.render(100)
    early = scene.render(50)
    assert np.array_equal(scene.render(100), late)
    assert np.array_equal(_scene(name).render(50), early)


def test_the_puddle_truth_is_where_the_picture_shows_water() -> None:
    scene = _scene("rain_puddle")
    truth = script("rain_puddle").expectations.states
    flooded = next(s for s in truth if s.state == "flooded")
    dry = scene.render(30)
    wet = scene.render(round((flooded.start_s + flooded.end_s) / 2))
    road_dry, road_wet = _grey(_box(dry, ROAD)), _grey(_box(wet, ROAD))
    brighter = (road_wet / 0.8 - road_dry) > 30  # under the overcast sky (gain 0.8)
    assert brighter.mean() > 0.35
    puddle = next(e for e in script("rain_puddle").effects if isinstance(e, Puddle))
    assert (
        puddle.coverage(
            [(ROAD[0], ROAD[1]), (ROAD[2], ROAD[1]), (ROAD[2], ROAD[3]), (ROAD[0], ROAD[3])],
            flooded.start_s + 1,
        )
        >= 0.35
    )


def test_bags_appear_one_by_one_where_the_truth_says() -> None:
    scene = _scene("garbage_bags")
    bags = next(e for e in script("garbage_bags").effects if isinstance(e, GarbageBags))
    region = [(NO_DUMPING[0], NO_DUMPING[1]), (NO_DUMPING[2], NO_DUMPING[1]),
              (NO_DUMPING[2], NO_DUMPING[3]), (NO_DUMPING[0], NO_DUMPING[3])]  # fmt: skip
    coverage = [bags.coverage(region, t) for t in (40.0, 60.0, 100.0, 250.0)]
    assert coverage[0] == 0.0 and 0.02 < coverage[1] < coverage[2] < coverage[3]
    first = bags.bags[0]
    (_, x0, y0, x1, y1) = bags.rects(W, H, first.at_s)[0]
    before = scene.render(round(first.at_s) - 5)[y0:y1, x0:x1]
    after = scene.render(round(first.at_s) + 5)[y0:y1, x0:x1]
    assert _grey(after).mean() < _grey(before).mean() - 40


def test_the_frozen_feed_repeats_one_picture_bit_for_bit() -> None:
    scene = _scene("frozen_feed")
    freeze = next(e for e in script("frozen_feed").effects if isinstance(e, FrozenFeed))
    start, end = round(freeze.start_s), round(freeze.end_s)
    held = scene.render(start)
    assert all(np.array_equal(scene.render(i), held) for i in (start + 1, start + 30, end - 1))
    assert not np.array_equal(scene.render(start - 1), scene.render(start - 2))
    assert not np.array_equal(scene.render(end), held)


def test_the_knocked_camera_looks_elsewhere_and_the_covered_one_sees_nothing() -> None:
    knocked = _scene("camera_knocked")
    knock = next(e for e in script("camera_knocked").effects if isinstance(e, Knock))
    before = _grey(knocked.render(round(knock.at_s) - 2))
    after = _grey(knocked.render(round(knock.at_s) + 20))
    window = np.outer(np.hanning(H), np.hanning(W)).astype(np.float32)
    dx, dy = phase_shift(before, after, window)
    assert np.hypot(dx, dy) > 0.03 * W
    covered = _scene("lens_covered")
    assert _grey(covered.render(90)).std() < 6.0 < _grey(covered.render(30)).std()


def test_dusk_darkens_and_tints_the_scene() -> None:
    scene = _scene("dusk_headlights")
    daylight = next(e for e in script("dusk_headlights").effects if isinstance(e, Daylight))
    blue, green, red = daylight.factors(280.0)
    assert green == pytest.approx(0.3) and blue > green > red
    assert _grey(scene.render(280)).mean() < 0.45 * _grey(scene.render(30)).mean()
    assert interpolate(((0.0, 1.0), (10.0, 3.0)), 5.0) == pytest.approx(2.0)


def test_states_reach_the_sink_retained_on_their_topic() -> None:
    """The covered lens through the agent's own pipeline wiring (assemble.build_pipeline)."""
    name = "lens_covered"
    _scene(name)
    s = script(name)
    camera = {
        **s.expectations.camera,
        "id": "cam",
        "source": {"kind": "sim", "scenario": name, "width": W, "height": H},
    }
    config = parse_config({"site_id": "s", "device_id": "d", "cameras": [camera]})
    sink = ListSink(config.topic_root, "b1")
    pipeline = build_pipeline(
        config, config.cameras[0], detector=StaticDetector(labels=("person", "car")), sink=sink
    )
    source = SimSource(
        "cam", scenario=name, width=W, height=H, fps=1.0, loop=False, realtime=False,
        clock_start_s=1_750_000_000.0,
    )  # fmt: skip
    run_offline(source, pipeline, read_timeout_s=1.0)
    states = [m for m in sink.messages if m.message_class is MessageClass.STATE]
    by_topic: dict[str, list[str]] = {}
    for message in states:
        body = message.json_body
        assert body is not None and body["camera"] == "cam"
        assert message.retain and message.qos == 1
        assert message.topic == f"city/s/d/state/cam/{body['analyzer']}"
        by_topic.setdefault(str(body["analyzer"]), []).append(str(body["state"]))
    assert by_topic == {
        "tamper": ["ok", "covered", "ok"],
        # Paused while the lens is covered: a covered lens is not a pile of rubbish.
        "garbage": ["none"],
        "flood": ["none"],
    }
    covered = next(m.json_body for m in states if m.json_body and m.json_body["state"] == "covered")
    assert covered is not None and isinstance(covered["since"], float)
    assert 1_750_000_000.0 + 60 <= covered["since"] <= 1_750_000_000.0 + 65
