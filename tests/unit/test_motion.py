import cv2
import numpy as np

from edge_agent.motion import MotionGate, MotionSettings

RNG = np.random.default_rng(7)


def street(brightness: float = 1.0, noise: float = 2.0) -> np.ndarray:
    """A textured static scene, with sensor noise and an exposure factor."""
    base = np.tile(np.linspace(60, 180, 320, dtype=np.float32), (180, 1))
    base[100:110, :] = 230  # a lane marking
    image = base * brightness + RNG.normal(0, noise, base.shape)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def with_person(image: np.ndarray, x: int) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (x, 60), (x + 20, 150), (20, 20, 20), -1)
    return out


def test_a_static_noisy_scene_never_opens_the_gate() -> None:
    gate = MotionGate()
    results = [gate.update(street()) for _ in range(50)]
    assert not any(r.has_motion for r in results)


def test_slow_exposure_drift_does_not_open_the_gate() -> None:
    gate = MotionGate()
    results = [gate.update(street(brightness=1.0 + 0.006 * i)) for i in range(60)]
    assert not any(r.has_motion for r in results)


def test_exposure_drift_would_open_a_gate_without_compensation() -> None:
    gate = MotionGate(MotionSettings(exposure_compensation=False))
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


def test_a_person_standing_still_fades_into_the_background() -> None:
    gate = MotionGate()
    for _ in range(5):
        gate.update(street())
    still = [gate.update(with_person(street(), 100)) for _ in range(120)]
    assert still[2].has_motion
    assert not still[-1].has_motion
