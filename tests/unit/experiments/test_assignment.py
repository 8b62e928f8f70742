"""Traffic assignment: stickiness, weights within binomial bounds, salts, weight 0, overrides."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from modelport.core.deployment import parse_deployment
from modelport.core.errors import InvalidInput
from modelport.experiments import Slot, TrafficPlan, unit_position

KEYS = [f"user-{i}" for i in range(100_000)]
A, B, C = Slot("a", "m@1"), Slot("b", "m@2"), Slot("c", "m@3")


def no_random() -> float:
    raise AssertionError("a keyed request must not draw at random")


def counts(plan: TrafficPlan, keys: list[str]) -> Counter[str]:
    return Counter(plan.assign(key, no_random).slot.variant for key in keys)


def test_a_unit_keeps_its_variant_across_plans_built_alike() -> None:
    first = TrafficPlan("salt", [(A, 50), (B, 50)])
    second = TrafficPlan("salt", [(A, 50), (B, 50)])  # another replica, or after a restart
    for key in KEYS[:2000]:
        assert first.assign(key, no_random).slot == second.assign(key, no_random).slot
        assert first.assign(key, no_random).keyed


def test_the_position_is_a_fixed_function_of_salt_and_key() -> None:
    # Pinned so that a change of hash (which would move every unit) cannot pass unnoticed.
    assert unit_position("fraud", "user-1") == 0.754253002412209
    assert unit_position("fraud", "user-1") != unit_position("fraud2", "user-1")
    assert 0.0 <= unit_position("", "") < 1.0


@pytest.mark.parametrize("weights", [(70, 20, 10), (1, 1, 98), (33.3, 33.3, 33.4), (0.5, 49.5, 50)])
def test_weights_hold_within_binomial_bounds_over_100000_keys(
    weights: tuple[float, float, float],
) -> None:
    plan = TrafficPlan("exp-1", list(zip((A, B, C), weights, strict=True)))
    got = counts(plan, KEYS)
    for slot, weight in zip((A, B, C), weights, strict=True):
        test = stats.binomtest(got[slot.variant], len(KEYS), weight / 100)
        assert test.pvalue > 1e-4, (slot.variant, got[slot.variant], weight)


def test_positions_are_uniform() -> None:
    positions = np.array([unit_position("exp-1", key) for key in KEYS])
    assert stats.kstest(positions, "uniform").pvalue > 1e-4


def test_assignments_under_two_salts_are_independent() -> None:
    first = TrafficPlan("salt-1", [(A, 50), (B, 50)])
    second = TrafficPlan("salt-2", [(A, 50), (B, 50)])
    table = Counter(
        (first.assign(k, no_random).slot.variant, second.assign(k, no_random).slot.variant)
        for k in KEYS
    )
    observed = np.array([[table["a", "a"], table["a", "b"]], [table["b", "a"], table["b", "b"]]])
    assert stats.chi2_contingency(observed).pvalue > 1e-4


def test_a_variant_at_weight_zero_gets_no_traffic() -> None:
    plan = TrafficPlan("s", [(A, 0), (B, 100), (C, 0)])
    assert counts(plan, KEYS[:20_000]) == {"b": 20_000}
    draws = iter(np.linspace(0.0, 1.0, 5001, endpoint=False))
    assert {plan.assign(None, lambda: float(next(draws))).slot for _ in range(5000)} == {B}


def test_unkeyed_requests_are_drawn_at_random_and_marked() -> None:
    plan = TrafficPlan("s", [(A, 25), (B, 75)])
    assert plan.assign(None, lambda: 0.0).slot == A
    assert plan.assign(None, lambda: 0.2499).slot == A
    assert plan.assign(None, lambda: 0.25).slot == B
    assert plan.assign(None, lambda: 0.999999).slot == B
    assert not plan.assign(None, lambda: 0.5).keyed
    rng = random.Random(7)
    got = Counter(plan.assign(None, rng.random).slot.variant for _ in range(40_000))
    assert stats.binomtest(got["a"], 40_000, 0.25).pvalue > 1e-4


def test_an_override_names_any_answering_variant_weight_zero_included() -> None:
    plan = TrafficPlan("s", [(A, 100), (B, 0)], shadows=[(C, 100)])
    chosen = plan.assign("user-1", no_random, override="b")
    assert chosen.slot == B and chosen.overridden and not chosen.keyed
    with pytest.raises(InvalidInput, match="no variant 'c' answers here; variants: a, b"):
        plan.assign("user-1", no_random, override="c")  # a shadow answers no caller
    with pytest.raises(InvalidInput, match="no variant 'zz'"):
        plan.assign(None, no_random, override="zz")


def test_shadows_get_their_share_and_a_keyed_unit_is_mirrored_every_time() -> None:
    plan = TrafficPlan("s", [(A, 50), (B, 50)], shadows=[(C, 20)])
    mirrored = [k for k in KEYS if plan.assign(k, no_random).shadows == (C,)]
    assert stats.binomtest(len(mirrored), len(KEYS), 0.2).pvalue > 1e-4
    assert all(plan.assign(k, no_random).shadows == (C,) for k in mirrored[:500])
    # Which requests are copied does not depend on which variant answered them.
    answered_by_a = {k for k in KEYS if plan.assign(k, no_random).slot == A}
    share_a = len(answered_by_a.intersection(mirrored)) / len(answered_by_a)
    assert share_a == pytest.approx(0.2, abs=0.01)


def test_bad_plans_are_refused() -> None:
    with pytest.raises(InvalidInput, match="add up to 100, got 90"):
        TrafficPlan("s", [(A, 60), (B, 30)])
    with pytest.raises(InvalidInput, match="from 0 to 100"):
        TrafficPlan("s", [(A, 110), (B, -10)])
    with pytest.raises(InvalidInput, match="at least one"):
        TrafficPlan("s", [])


def test_a_deployment_builds_its_plan_with_its_name_as_salt() -> None:
    deployment = parse_deployment(
        {
            "apiVersion": "modelport.io/v1",
            "kind": "Deployment",
            "metadata": {"name": "fraud"},
            "spec": {
                "variants": [
                    {"name": "current", "model": "fraud@3", "weight": 90},
                    {"name": "candidate", "model": "fraud@4", "weight": 10, "role": "treatment"},
                    {"name": "next", "model": "fraud@5", "role": "shadow", "mirror": 100},
                ]
            },
        }
    )
    plan = TrafficPlan.of(deployment)
    assert plan.salt == "fraud" and plan.answering() == ["current", "candidate"]
    chosen = plan.assign("user-1", no_random)
    expected = "current" if unit_position("fraud", "user-1") < 0.9 else "candidate"
    assert chosen.slot.variant == expected
    assert chosen.shadows == (Slot("next", "fraud@5"),)
