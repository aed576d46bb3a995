"""The busy market draws a different crowd per seed, always a normal one (no real
loiterer or crowd), so a soak over seeds meets many situations, not one crowd on many
backgrounds."""

from __future__ import annotations

import pytest
from hw_sim import scenarios_objects as market
from hw_sim import street
from hw_sim.scenes import script

SEEDS = range(2024, 2044)


def paths(seed: int) -> list[tuple[str, tuple[tuple[float, float, float], ...]]]:
    return [
        (a.object_id, tuple((w.t_s, w.x, w.y) for w in a.path)) for a in market._market_crowd(seed)
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_every_seed_draws_a_normal_market(seed: int) -> None:
    crowd = market._market_crowd(seed)
    assert len(crowd) == 29
    assert market._is_normal_market(crowd)


def test_seeds_draw_different_crowds_and_the_same_seed_the_same_one() -> None:
    assert paths(2025) == paths(2025)
    assert len({tuple(paths(seed)) for seed in SEEDS}) == len(SEEDS)


def test_a_reseeded_market_has_that_seeds_crowd_and_others_keep_their_actors() -> None:
    base = script("busy_market")
    assert base.actors == market._market_crowd(base.seed)
    again = base.reseeded(2030, "busy_market@seed2030")
    assert (again.seed, again.name) == (2030, "busy_market@seed2030")
    assert again.actors == market._market_crowd(2030)
    bridge = script("bridge_congestion")
    assert bridge.reseeded(2030, "x").actors == bridge.actors


def test_the_normality_check_rejects_a_loiterer_and_a_crowd() -> None:
    crowd = market._market_crowd(2024)
    loiterer = street.person("loiterer", "person_black", (10.0, 0.5, 0.82), (40.0, 0.52, 0.82))
    assert not market._is_normal_market((*crowd, loiterer))
    group = tuple(
        street.person(f"group-{i}", "person_black", (30.0, 0.2 + 0.1 * i, 0.9),
                       (42.0, 0.2 + 0.1 * i, 0.9))
        for i in range(6)
    )  # fmt: skip
    assert not market._is_normal_market(group)
