"""The fleet's outlier rule on hand-made times, with answers worked out by hand."""

from __future__ import annotations

import math

import pytest

from pytest_cryobench.fleet.outliers import (
    NodeTime,
    case_outliers,
    find_outliers,
    grown_component,
    robust_scale,
    sentence,
)


def node(name, seconds, low=None, io=None, cpu=None):
    """A node's time; ``io``/``cpu``: seconds of a ``read`` (IO) and a ``decode`` (CPU) sub-timing."""
    timings = {"total": seconds}
    if io is not None:
        timings["read"] = io
    if cpu is not None:
        timings["decode"] = cpu
    return NodeTime(name, seconds, seconds if low is None else low, timings, {"read": ["IO"], "decode": ["CPU"]})


def test_robust_scale_is_median_and_scaled_mad():
    center, scale = robust_scale([10.0, 11.0, 9.0, 10.0, 40.0])
    # deviations from 10: 0, 1, 1, 0, 30 -> MAD 1
    assert center == 10.0
    assert scale == pytest.approx(1.4826)


def test_a_slow_node_is_named_with_factor_and_the_component_that_grew():
    fleet = [node(f"n{i}", 1.0 + 0.01 * i, io=0.5, cpu=0.5 + 0.01 * i) for i in range(1, 8)]
    fleet.append(node("n08", 2.4, io=1.9, cpu=0.5))
    found = case_outliers(fleet, tolerance=1.25)
    assert [o.node for o in found] == ["n08"]
    (slow,) = found
    # the fleet median of 8 times: (1.04 + 1.05) / 2
    assert slow.median == pytest.approx(1.045)
    assert slow.factor == pytest.approx(2.4 / 1.045)
    assert slow.timing == "read" and slow.tags == ("IO",)
    assert slow.grew_s == pytest.approx(1.4)
    assert sentence("particle_random_read", slow) == "n08: particle_random_read 2.3x the fleet median; IO"


def test_an_unchanged_fleet_names_no_one():
    fleet = [node(f"n{i}", t) for i, t in enumerate([1.00, 1.02, 0.99, 1.05, 1.01, 0.98])]
    assert case_outliers(fleet, tolerance=1.25) == []


def test_one_noisy_round_does_not_accuse_a_node():
    # n4's median is pulled up, but its rounds reach the fleet's times: its low end is typical
    fleet = [node("n1", 1.00, 0.98), node("n2", 1.01, 0.99), node("n3", 0.99, 0.97), node("n4", 1.6, 1.0)]
    assert case_outliers(fleet, tolerance=1.25) == []
    # the same median with every round slow is named
    fleet[-1] = node("n4", 1.6, 1.55)
    assert [o.node for o in case_outliers(fleet, tolerance=1.25)] == ["n4"]


def test_within_the_tolerance_is_not_an_outlier_however_tight_the_fleet():
    fleet = [node("n1", 1.000), node("n2", 1.001), node("n3", 1.000), node("n4", 1.2)]
    # robustly far (MAD 0.0005) but only 1.2x: within the 1.25 tolerance
    assert case_outliers(fleet, tolerance=1.25) == []
    assert [o.node for o in case_outliers(fleet, tolerance=1.1)] == ["n4"]


def test_rounds_noisier_than_the_fleet_set_the_scale():
    # the nodes agree closely (MAD 0.005) but each node's rounds scatter by 0.3 s
    fleet = [node("n1", 1.00, 0.70), node("n2", 1.01, 0.71), node("n3", 0.99, 0.69), node("n4", 1.6, 1.30)]
    # sigma = 0.3: n4's low end 1.30 is (1.30 - 1.005) / 0.3 = 0.98 sigmas above the median
    assert case_outliers(fleet, tolerance=1.25) == []


def test_a_faster_node_is_never_an_outlier():
    fleet = [node("n1", 1.0), node("n2", 1.0), node("n3", 1.01), node("n4", 0.3)]
    assert case_outliers(fleet, tolerance=1.25) == []


def test_fewer_than_three_nodes_are_not_judged():
    assert case_outliers([node("n1", 1.0), node("n2", 5.0)], tolerance=1.25) == []


def test_missing_or_impossible_times_are_left_out():
    fleet = [node("n1", 1.0), node("n2", 1.0), node("n3", math.nan), node("n4", 0.0)]
    assert case_outliers(fleet, tolerance=1.25) == []  # two usable nodes


def test_identical_fleet_with_zero_spread_names_only_a_slower_node():
    fleet = [node("n1", 1.0), node("n2", 1.0), node("n3", 1.0), node("n4", 3.0)]
    (slow,) = case_outliers(fleet, tolerance=1.25)
    assert slow.node == "n4" and slow.score == math.inf
    assert case_outliers(fleet[:3], tolerance=1.25) == []


def test_a_case_without_sub_timings_names_none():
    fleet = [NodeTime(f"n{i}", 1.0, 1.0) for i in range(3)] + [NodeTime("n9", 4.0, 4.0)]
    (slow,) = case_outliers(fleet, tolerance=1.25)
    assert slow.timing is None and slow.component == "no sub-timings"


def test_the_component_is_the_sub_timing_that_grew_most_in_seconds():
    fleet = [node("n1", 1.0, io=0.2, cpu=0.8), node("n2", 1.0, io=0.2, cpu=0.8), node("n3", 1.0, io=0.2, cpu=0.8)]
    slow = node("n4", 2.0, io=0.5, cpu=1.5)  # IO grew 2.5x but 0.3 s; CPU 1.9x but 0.7 s
    assert grown_component(slow, [*fleet, slow]) == ("decode", ("CPU",), pytest.approx(0.7))


def test_find_outliers_keeps_only_cases_with_one_and_uses_each_cases_tolerance():
    tight = [node("n1", 1.0), node("n2", 1.0), node("n3", 1.02), node("n4", 1.4)]
    cases = {("fs", "a"): tight, ("cpu", "b"): tight}
    found = find_outliers(cases, {("fs", "a"): 1.5, ("cpu", "b"): 1.25})
    assert list(found) == [("cpu", "b")]
