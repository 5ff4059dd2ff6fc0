"""Figures derived from a record's samples: statistics, the headline, rates and their spread."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from pytest_cryobench.record import derive
from pytest_cryobench.record.model import CaseRecord


def test_sample_stats_of_three_rounds():
    stats = derive.sample_stats([3.0, 1.0, 2.0])
    assert (stats["median"], stats["min"], stats["max"], stats["rounds"]) == (2.0, 1.0, 3.0, 3)
    assert stats["iqr"] == pytest.approx(1.0)  # inclusive quartiles 1.5 and 2.5
    # three rounds: the median lies between the smallest and largest with probability 3/4
    assert (stats["ci_low"], stats["ci_high"], stats["ci_level"]) == (1.0, 3.0, 0.75)


@pytest.mark.parametrize("n", [5, 6, 9, 10, 20, 50])
def test_median_ci_coverage_is_the_binomial_one_and_at_least_the_level(n):
    """The interval's coverage, by simulation of a seeded continuous distribution, matches the
    order-statistic formula and reaches the level once there are enough samples."""
    low, high, level = derive.median_ci(list(range(n)))
    rng = np.random.default_rng(20240611 + n)
    draws = rng.exponential(size=(4000, n))  # true median ln 2
    xs = np.sort(draws, axis=1)
    k = int(low) + 1
    covered = np.mean((xs[:, k - 1] <= math.log(2)) & (math.log(2) <= xs[:, n - k]))
    assert covered == pytest.approx(level, abs=0.03)
    if n >= 6:
        assert level >= derive.CI_LEVEL


def test_sample_stats_refuses_no_rounds():
    with pytest.raises(ValueError, match="no rounds"):
        derive.sample_stats([])


@pytest.mark.parametrize("name, expected", [
    ("mb_per_s", ("bytes", 1e-6, "MB/s")), ("gb_per_s", ("bytes", 1e-9, "GB/s")),
    ("particles_per_s", ("particles", 1.0, "particles/s")),
    ("template_angles_per_s", ("template_angles", 1.0, "template-angles/s")),
    ("voxel_candidates_per_s", ("voxel_candidates", 1.0, "voxel-candidates/s"))])
def test_rate_units_follow_their_names(name, expected):
    assert derive.rate_unit(name) == expected


@pytest.mark.parametrize("name", ["read_rate", "mb", "_per_s", "particles_per_second"])
def test_rate_names_outside_the_scheme_are_refused(name):
    with pytest.raises(ValueError, match="_per_s"):
        derive.rate_unit(name)


def movie_case(totals=(0.9, 1.2, 1.5)):
    return CaseRecord("fs", "mrc", samples={"read": [t / 2 for t in totals], "total": list(totals)},
                      headline={"name": "mrc", "per": "movies"}, amounts={"movies": 3, "bytes": 30e6},
                      rates=["mb_per_s"])


def test_headline_per_amount_and_its_spread_on_its_own_scale():
    headline = derive.headline(movie_case())
    assert (headline.name, headline.unit, headline.better) == ("mrc", "s", "lower")
    assert headline.value == pytest.approx(0.4)
    assert headline.samples == pytest.approx((0.3, 0.4, 0.5))
    assert headline.spread == pytest.approx(0.1 / 2)  # IQR of the per-movie times, halved


def test_rates_are_made_round_by_round():
    rate = derive.figures(movie_case())["mb_per_s"]
    per_round = [30 / t for t in (0.9, 1.2, 1.5)]
    assert rate.samples == pytest.approx(tuple(per_round))
    assert rate.value == pytest.approx(statistics.median(per_round))
    q1, _, q3 = statistics.quantiles(sorted(per_round), n=4, method="inclusive")
    assert rate.spread == pytest.approx((q3 - q1) / 2)  # on the rate's scale, MB/s
    assert (rate.unit, rate.better) == ("MB/s", "higher")


def test_a_rate_over_an_even_number_of_rounds_is_the_mean_of_the_middle_rates():
    # four rounds: the median time averages 1.0 and 2.0 s, but the rate averages 30 and 15 MB/s
    rate = derive.figures(movie_case((0.5, 1.0, 2.0, 4.0)))["mb_per_s"]
    assert rate.value == pytest.approx((30 / 1.0 + 30 / 2.0) / 2)
    assert rate.value != pytest.approx(30 / 1.5)


def test_timings_are_medians_of_each_sub_timing_then_total():
    assert derive.timings(movie_case()) == {"read": pytest.approx(0.6), "total": pytest.approx(1.2)}
    assert list(derive.timings(movie_case())) == ["read", "total"]


def test_a_rate_without_its_amount_is_an_error():
    case = CaseRecord("fs", "x", samples={"total": [1.0]}, rates=["particles_per_s"])
    with pytest.raises(ValueError, match="no amount 'particles'"):
        derive.figures(case)


def test_measured_values_come_after_timed_figures_and_have_no_samples():
    case = CaseRecord("requirements", "memory_bandwidth", values={"memory_bandwidth": {"value": 12.5, "unit": "GB/s",
                                                                                        "better": "higher"}})
    figure = derive.headline(case)
    assert (figure.name, figure.value, figure.unit, figure.samples, figure.spread) == (
        "memory_bandwidth", 12.5, "GB/s", None, None)
    assert derive.timings(case) == {} and derive.total_stats(case) is None


def test_one_round_has_no_spread():
    case = CaseRecord("gpu", "fsc", samples={"total": [0.2]}, headline={"name": "fsc"})
    assert derive.headline(case).spread is None
