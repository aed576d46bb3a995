import dataclasses

import cv2
import numpy as np

from edge_agent.config import MotionConfig
from edge_agent.motion import MotionGate, MotionSettings

RNG = np.random.default_rng(7)
BACKGROUND_ONLY = MotionSettings(min_moving_px=0)  # the gate without ghost rejection


def street(brightness: float = 1.0, noise: float = 2.0) -> np.ndarray:
    """A textured static scene, with sensor noise and an exposure factor."""
    base = np.tile(np.linspace(60, 180, 320, dtype=np.float32), (180, 1))
    base[100:110, :] = 230  # a lane marking
    image = base * brightness + RNG.normal(0, noise, base.shape)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def with_person(image: np.ndarray, x: float) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (round(x), 60), (round(x) + 20, 150), (20, 20, 20), -1)
    return out


def with_patch(image: np.ndarray, x: float, contrast: int) -> np.ndarray:
    """A person-sized patch ``contrast`` grey levels brighter than what is behind it."""
    out = image.astype(np.int16)
    out[60:150, round(x) : round(x) + 20] += contrast
    return np.clip(out, 0, 255).astype(np.uint8)


def walk_in_and_stand(gate: MotionGate, stand_frames: int) -> list[bool]:
    """A person walks from x=40 to x=120 in 10 frames, then stands there."""
    for _ in range(5):
        gate.update(street())
    walking = [gate.update(with_person(street(), 40 + 8 * i)).has_motion for i in range(11)]
    standing = [gate.update(with_person(street(), 120)).has_motion for _ in range(stand_frames)]
    return walking + standing


def test_the_config_defaults_are_the_gate_defaults() -> None:
    assert MotionConfig().model_dump() == dataclasses.asdict(MotionSettings())


def test_a_static_noisy_scene_never_opens_the_gate() -> None:
    gate = MotionGate()
    results = [gate.update(street()) for _ in range(50)]
    assert not any(r.has_motion for r in results)


def test_slow_exposure_drift_does_not_open_the_gate() -> None:
    gate = MotionGate()
    results = [gate.update(street(brightness=1.0 + 0.006 * i)) for i in range(60)]
    assert not any(r.has_motion for r in results)


def test_exposure_drift_would_open_a_background_only_gate_without_compensation() -> None:
    gate = MotionGate(dataclasses.replace(BACKGROUND_ONLY, exposure_compensation=False))
    results = [gate.update(street(brightness=1.0 + 0.02 * i)) for i in range(30)]
    assert any(r.has_motion for r in results)


def test_a_walking_person_opens_the_gate_with_a_region_around_them() -> None:
    gate = MotionGate()
    for _ in range(5):
        gate.update(street())
    results = [gate.update(with_person(street(), 40 + 8 * i)) for i in range(10)]
    assert all(r.has_motion for r in results[1:])
    region = results[-1].regions[0]
    assert 0.25 < region.x_min < 0.5 and region.y_min < 0.4 and region.y_max > 0.75


def test_a_single_frame_glitch_is_ignored() -> None:
    gate = MotionGate(MotionSettings(min_frames=2))
    for _ in range(5):
        gate.update(street())
    assert not gate.update(with_person(street(), 100)).has_motion
    assert not gate.update(street()).has_motion


def test_the_first_frame_of_motion_says_where_it_moved_before_the_gate_opens() -> None:
    # The pipeline runs the detector on it when the motion is at a live track's place.
    gate = MotionGate(MotionSettings(min_frames=2))
    for _ in range(5):
        gate.update(street())
    first = gate.update(with_person(street(), 100))
    assert first.moved and not first.has_motion
    (region,) = first.regions
    assert region.x_min < 100 / 320 < region.x_max
    still = gate.update(street())  # the glitch is gone, and so is the motion
    assert not still.moved and still.regions == ()


def test_a_slow_low_contrast_walker_opens_the_gate() -> None:
    # 1 px per frame at 320 px wide: 32 s to cross the picture at 10 fps.
    for settings in (MotionSettings(), BACKGROUND_ONLY):
        gate = MotionGate(settings)
        for _ in range(5):
            gate.update(street())
        motion = [gate.update(with_patch(street(), 40 + i, 60)).has_motion for i in range(40)]
        assert all(motion[10:]), settings


def test_a_person_who_stops_walking_stops_opening_the_gate() -> None:
    motion = walk_in_and_stand(MotionGate(), stand_frames=120)
    assert all(motion[2:11])
    assert not any(motion[-100:])


def test_the_ghost_of_someone_who_stood_still_and_left_is_ignored() -> None:
    def after_leaving(settings: MotionSettings) -> list[bool]:
        gate = MotionGate(settings)
        walk_in_and_stand(gate, stand_frames=120)  # long enough to be part of the background
        return [gate.update(street()).has_motion for _ in range(30)]

    window = MotionSettings().moving_window_frames
    # Leaving is motion for at most the window; then the empty spot is quiet...
    assert not any(after_leaving(MotionSettings())[window + 1 :])
    # ...where a background-only gate keeps firing on it until it has faded.
    assert all(after_leaving(BACKGROUND_ONLY)[1:20])


def test_a_light_switched_on_in_part_of_the_picture_stops_opening_the_gate() -> None:
    def lamp_on(settings: MotionSettings) -> list[bool]:
        gate = MotionGate(settings)
        for _ in range(5):
            gate.update(street())
        lit = street()
        lit[20:80, 200:300] = np.clip(lit[20:80, 200:300].astype(int) + 60, 0, 255)
        return [gate.update(lit).has_motion for _ in range(30)]

    window = MotionSettings().moving_window_frames
    assert not any(lamp_on(MotionSettings())[window + 1 :])
    assert all(lamp_on(BACKGROUND_ONLY)[1:10])  # until the lamp has blended in


def sand(noise: float) -> np.ndarray:
    """A sandy street: a light, gently mottled surface, with fresh sensor noise each call."""
    mottle = cv2.resize(SAND_MOTTLE, (320, 180), interpolation=cv2.INTER_CUBIC)
    image = 170.0 + mottle + RNG.normal(0, noise, mottle.shape)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


SAND_MOTTLE = np.random.default_rng(3).normal(0, 6, (18, 32)).astype(np.float32)


# The best candidate bench/bench_gate_contrast.py found, not the default (docs/pipeline.md §3).
LOW_CONTRAST = MotionSettings(pixel_threshold=25, min_area_ratio=0.001)


def test_a_low_contrast_walker_on_a_noisy_sandy_street_needs_a_lower_threshold() -> None:
    # A light coat on sand: 28 grey levels lighter than the street, under the default 30.
    def walk(settings: MotionSettings) -> list[bool]:
        gate = MotionGate(settings)
        for _ in range(5):
            gate.update(sand(noise=4.0))
        return [
            gate.update(with_patch(sand(noise=4.0), 40 + 8 * i, 28)).has_motion for i in range(25)
        ]

    assert not any(walk(MotionSettings()))
    assert all(walk(LOW_CONTRAST)[2:])


def test_sensor_noise_on_a_sandy_street_never_opens_the_gate() -> None:
    for settings in (MotionSettings(), LOW_CONTRAST):
        for noise in (4.0, 8.0):
            gate = MotionGate(settings)
            assert not any(gate.update(sand(noise)).has_motion for _ in range(100)), noise


def seconds_a_stander_opens_the_gate(settings: MotionSettings, fps: float, *, times: bool) -> float:
    """Someone walks in for 2 s and stands still: for how long the gate stays open after
    they stop, fed at ``fps`` with frame times (or without, counting frames)."""
    gate = MotionGate(settings)
    frame = 0

    def opens(image: np.ndarray) -> bool:
        nonlocal frame
        frame += 1
        return gate.update(image, (frame - 1) / fps if times else None).has_motion

    for _ in range(round(fps)):
        opens(street())
    walk = round(2 * fps)
    for i in range(walk + 1):
        opens(with_person(street(), 40 + 80 * i / walk))
    standing = [opens(with_person(street(), 120)) for _ in range(round(20 * fps))]
    return max((i + 1 for i, is_open in enumerate(standing) if is_open), default=0) / fps


def test_the_gate_forgets_a_stander_after_as_many_seconds_at_any_rate() -> None:
    # The ghost window (default) and the background's blend (background only) are per
    # frame, tuned at 5 fps; given frame times they hold in seconds at higher rates.
    for settings in (MotionSettings(), BACKGROUND_ONLY):
        at_5_fps = seconds_a_stander_opens_the_gate(settings, 5, times=True)
        assert at_5_fps == seconds_a_stander_opens_the_gate(settings, 5, times=False)
        for fps in (10, 15, 30):
            seconds = seconds_a_stander_opens_the_gate(settings, fps, times=True)
            assert 0.6 * at_5_fps <= seconds <= 1.2 * at_5_fps, (settings, fps, seconds)
        # Counting frames, 30 fps forgets six times sooner.
        assert seconds_a_stander_opens_the_gate(settings, 30, times=False) < 0.3 * at_5_fps


def fence(shift_px: int) -> np.ndarray:
    """A high-contrast texture (railings and foliage-like blobs, 540 rows: the gate's frame
    is a fifth of it), moved down by ``shift_px`` full-size pixels: a pole swaying."""
    rng = np.random.default_rng(3)
    blobs = cv2.GaussianBlur(rng.uniform(0, 255, (540, 960)).astype(np.float32), (0, 0), 8)
    texture = np.where(blobs > blobs.mean(), 200.0, 60.0)  # leaves against the sky
    for y in range(20, 540, 60):
        texture[y : y + 10, :] = 20  # dark rails
    texture = np.roll(texture, shift_px, axis=0)
    grey = np.clip(texture, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def sway(gate: MotionGate, *, person: bool) -> list[bool]:
    """The textured view for 5 frames, then swaying by ±1 gate pixel (5 px), with or
    without a dark person walking across."""
    for _ in range(5):
        gate.update(fence(0))
    opened = []
    for i in range(12):
        image = fence(5 if i % 2 == 0 else -5)
        if person:
            cv2.rectangle(image, (200 + 30 * i, 200), (260 + 30 * i, 400), (10, 10, 10), -1)
        opened.append(gate.update(image).has_motion)
    return opened


def test_a_swaying_pole_does_not_open_the_gate_but_a_walker_still_does() -> None:
    assert not any(sway(MotionGate(), person=False))
    assert sum(sway(MotionGate(), person=True)) >= 10


def test_without_shake_tolerance_the_swaying_pole_opens_the_gate() -> None:
    # what the tolerance is for: pixel-to-pixel, every railing's edge has changed
    assert any(sway(MotionGate(MotionSettings(shake_tolerance_px=0)), person=False))
