"""Adaptive rounds (measure.rounds): when a case stops repeating, and why."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_cryobench.measure.rounds import (
    BELOW_MIN,
    BUDGET,
    FIXED,
    IMPRECISE,
    MAX_ROUNDS,
    PRECISE,
    PROFILE_ROUNDS,
    RoundsPolicy,
)
from pytest_cryobench.measure.spread import order_statistic_rank
from pytest_cryobench.record.significance import rank_interval_rank


def run_case(policy: RoundsPolicy, cv: float, seconds: float, seed: int) -> tuple[int, str]:
    """Drive ``policy`` with log-normal rounds of ``seconds`` each; (rounds, stop reason)."""
    rng = np.random.default_rng(seed)
    samples: list[float] = []
    while True:
        action = policy.next_action(samples, elapsed_s=seconds * len(samples))
        if not action.more:
            return action.rounds, action.reason
        samples.append(seconds * rng.lognormal(0.0, math.sqrt(math.log1p(cv * cv))))


def test_quiet_case_stops_when_precise():
    policy = PROFILE_ROUNDS["standard"]
    rounds, reason = run_case(policy, cv=0.01, seconds=1.0, seed=1)
    assert reason == PRECISE and policy.min_rounds <= rounds < policy.max_rounds


def test_noisy_case_stops_at_max_rounds():
    policy = PROFILE_ROUNDS["standard"]
    # rounds short enough that the budget allows every round up to the maximum
    assert run_case(policy, cv=0.3, seconds=policy.budget_s / (2 * policy.max_rounds), seed=2) == (policy.max_rounds, MAX_ROUNDS)


def test_long_noisy_case_stops_on_budget_after_min_rounds():
    policy = RoundsPolicy(min_rounds=5, max_rounds=15, budget_s=60.0)
    rounds, reason = run_case(policy, cv=0.3, seconds=11.0, seed=3)
    assert (rounds, reason) == (5, BUDGET)          # a 6th 11-s round would end at 66 s
    # the minimum is run even past the budget
    assert run_case(policy, cv=0.3, seconds=100.0, seed=3) == (5, BUDGET)


def test_fixed_count_overrides_everything():
    policy = PROFILE_ROUNDS["standard"].forced(3)
    assert run_case(policy, cv=0.01, seconds=1000.0, seed=4) == (3, FIXED)
    assert run_case(PROFILE_ROUNDS["smoke"].forced(12), cv=0.3, seconds=1.0, seed=4) == (12, FIXED)
    assert policy.next_action([1.0], 1.0).reason == FIXED and policy.next_action([1.0], 1.0).more


def test_reasons_while_going_on():
    policy = RoundsPolicy(min_rounds=3, max_rounds=10, target_precision=0.03)
    first = policy.next_action([], 0.0)
    assert first.more and first.reason == BELOW_MIN and first.precision == math.inf
    noisy = policy.next_action([1.0, 1.5, 0.7], 3.0)
    assert noisy.more and noisy.reason == IMPRECISE and noisy.precision > 0.03
    still = policy.next_action([1.0, 1.0, 1.0], 3.0)
    assert not still.more and still.reason == PRECISE and still.precision == 0.0


def test_bad_policies_refused():
    with pytest.raises(ValueError, match="min_rounds"):
        RoundsPolicy(min_rounds=6, max_rounds=5)
    with pytest.raises(ValueError, match="budget"):
        RoundsPolicy(3, 5, budget_s=0.0)
    with pytest.raises(ValueError, match="fixed"):
        PROFILE_ROUNDS["smoke"].forced(0)
    with pytest.raises(ValueError, match="NaN"):
        PROFILE_ROUNDS["smoke"].next_action([1.0, float("nan")], 2.0)


def test_profile_bounds_reach_the_intervals_they_rely_on():
    standard, full = PROFILE_ROUNDS["standard"], PROFILE_ROUNDS["full"]
    # from 5 rounds a side the 99% ratio interval is distribution-free; at 3 it is not
    assert rank_interval_rank(standard.min_rounds, standard.min_rounds, 0.99) >= 1
    assert rank_interval_rank(3, 3, 0.99) == 0
    # at their maximum, one outlier no longer sets the 95% interval of a median
    assert order_statistic_rank(standard.max_rounds, 0.95) >= 2 and order_statistic_rank(full.max_rounds, 0.95) >= 2
    assert all(p.min_rounds <= p.max_rounds and p.fixed is None for p in PROFILE_ROUNDS.values())
