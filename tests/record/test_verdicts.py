"""Verdicts of one case against one reference."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.verdicts import (
    DEFAULT_TOLERANCE,
    Judgement,
    Verdict,
    context_mismatch,
    judge,
    ratio_text,
    slowdown_of,
)

PASS, SLOWER, FASTER, NOT_COMPARABLE, COULD_NOT_RUN = (
    Verdict.PASS, Verdict.SLOWER, Verdict.FASTER, Verdict.NOT_COMPARABLE, Verdict.COULD_NOT_RUN)

CTX = {"profile": "smoke", "backend": "numpy", "data": "synthetic"}


def m(value, unit="s", better=None):
    metric = {"value": value, "unit": unit}
    if better is not None:
        metric["better"] = better
    return metric


def run_judge(metrics, ref_metrics=None, *, group="fs", outcome="passed", reason=None, warm=False,
              run_context=CTX, ref_context=CTX, ref_entry="default", tolerance=1.25):
    """Judge a case whose figures are ``metrics`` (measured values, in order) against a reference
    case with ``ref_metrics`` (or ``ref_entry``: a CaseRecord, a dict of its fields, or None)."""
    if ref_entry == "default":
        ref_entry = CaseRecord(group, "t", values=ref_metrics or {})
    elif isinstance(ref_entry, dict):
        ref_entry = CaseRecord(group, "t", **ref_entry)
    run = CaseRecord(group, "t", values=metrics, outcome=outcome, reason=reason, warm=warm)
    return judge(run=run, run_context=run_context, ref_context=ref_context, ref=ref_entry, tolerance=tolerance)


# --------------------------------------------------------------------------- slowdown_of

@pytest.mark.parametrize("value, ref, better, expected", [
    (2.0, 1.0, "lower", 2.0),
    (0.5, 1.0, "lower", 0.5),
    (1.0, 1.0, "lower", 1.0),
    (50.0, 100.0, "higher", 2.0),     # half the rate: twice as slow
    (200.0, 100.0, "higher", 0.5),    # twice the rate: twice as fast
    (100.0, 100.0, "higher", 1.0),
])
def test_slowdown_of_orients_times_and_rates(value, ref, better, expected):
    assert slowdown_of(value, ref, better) == pytest.approx(expected)


@pytest.mark.parametrize("value, ref, better", [
    (None, 1.0, "lower"), (1.0, None, "lower"), (None, None, "higher"),
    (1.0, 0.0, "lower"), (1.0, -2.0, "lower"),
    (0.0, 0.0, "higher"), (-1.0, 0.0, "higher"),
])
def test_slowdown_of_undefined(value, ref, better):
    assert slowdown_of(value, ref, better) is None


def test_slowdown_of_a_rate_that_dropped_to_zero_is_infinitely_slower():
    assert slowdown_of(0.0, 10.0, "higher") == math.inf
    assert slowdown_of(-1.0, 10.0, "higher") == math.inf


def test_slowdown_of_rate_against_a_zero_reference_is_undefined():
    assert slowdown_of(5.0, 0.0, "higher") is None


# --------------------------------------------------------------------------- context_mismatch

def test_context_mismatch():
    assert context_mismatch(CTX, dict(CTX), "fs") is None
    assert "profile smoke here, full in the reference" == context_mismatch(CTX, {**CTX, "profile": "full"}, "fs")
    assert context_mismatch(CTX, {**CTX, "data": "cryosparc"}, "cpu").startswith("data synthetic here")
    assert context_mismatch(CTX, {**CTX, "backend": "cupy"}, "fs") is None
    assert context_mismatch(CTX, {**CTX, "backend": "cupy"}, "gpu") == \
        "backend numpy here, cupy in the reference"


# --------------------------------------------------------------------------- judge

def test_pass_within_tolerance():
    v = run_judge({"t": m(1.1)}, {"t": m(1.0)})
    assert v.verdict == PASS
    assert v.slowdown == pytest.approx(1.1)
    assert v.metric == "t"
    assert v.tolerance == 1.25
    assert "1.10x" in v.detail


@pytest.mark.parametrize("value, ref, tolerance", [(1.25, 1.0, 1.25), (2.5, 2.0, 1.25), (3.0, 2.0, 1.5),
                                                   (1.0, 1.0, 1.0)])
def test_exactly_at_tolerance_is_pass(value, ref, tolerance):
    assert value / ref == tolerance  # exact in binary floating point
    v = run_judge({"t": m(value)}, {"t": m(ref)}, tolerance=tolerance)
    assert v.verdict == PASS
    assert v.slowdown == tolerance


def test_just_beyond_tolerance_is_slower():
    v = run_judge({"t": m(1.2500001)}, {"t": m(1.0)})
    assert v.verdict == SLOWER


def test_slower_reports_ratio_metric_and_tolerance():
    v = run_judge({"t": m(1.3)}, {"t": m(1.0)})
    assert v.verdict == SLOWER
    assert v.slowdown == pytest.approx(1.3)
    assert v.metric == "t"
    assert "t 1.30x slower than the reference (tolerance 1.25x)" == v.detail


def test_the_first_shared_figure_decides():
    """The headline comes first; the others (rates of the same rounds) are not looked at."""
    v = run_judge({"a": m(1.1), "b": m(1.4), "c": m(0.5)}, {"a": m(1.0), "b": m(1.0), "c": m(1.0)})
    assert (v.verdict, v.metric) == (PASS, "a")
    assert v.slowdown == pytest.approx(1.1)
    v = run_judge({"a": m(1.1), "b": m(1.4)}, {"b": m(1.0)})  # the reference lacks the first
    assert (v.verdict, v.metric) == (SLOWER, "b")


def test_faster():
    v = run_judge({"b": m(0.6)}, {"b": m(1.0)})
    assert v.verdict == FASTER
    assert v.slowdown == pytest.approx(0.6)
    assert "b 1.67x faster than the reference" == v.detail


def test_faster_boundary_is_pass():
    # 0.8 == 1/1.25: not *more* than the tolerance faster
    assert run_judge({"t": m(0.8)}, {"t": m(1.0)}).verdict == PASS
    assert run_judge({"t": m(0.79)}, {"t": m(1.0)}).verdict == FASTER


def test_rate_metrics_are_oriented_higher_is_better():
    ref = {"r": m(100.0, "MB/s")}
    slower = run_judge({"r": m(70.0, "MB/s", "higher")}, ref)
    assert slower.verdict == SLOWER
    assert slower.slowdown == pytest.approx(100 / 70)
    at_tolerance = run_judge({"r": m(80.0, "MB/s", "higher")}, ref)
    assert at_tolerance.verdict == PASS and at_tolerance.slowdown == pytest.approx(1.25)
    faster = run_judge({"r": m(200.0, "MB/s", "higher")}, ref)
    assert faster.verdict == FASTER and faster.slowdown == pytest.approx(0.5)
    # the same numbers read as times would be the other way round
    assert run_judge({"r": m(200.0, "MB/s", "lower")}, ref).verdict == SLOWER


def test_rate_that_dropped_to_zero_is_slower():
    v = run_judge({"r": m(0.0, "MB/s", "higher")}, {"r": m(100.0, "MB/s")})
    assert v.verdict == SLOWER
    assert v.slowdown == math.inf


def test_better_defaults_to_lower():
    assert run_judge({"t": m(2.0)}, {"t": m(1.0, better="higher")}).verdict == SLOWER


@pytest.mark.parametrize("key, other", [("profile", "full"), ("data", "cryosparc")])
@pytest.mark.parametrize("group", ["fs", "gpu"])
def test_profile_or_data_mismatch_is_not_comparable(key, other, group):
    v = run_judge({"t": m(9.0)}, {"t": m(1.0)}, group=group, ref_context={**CTX, key: other})
    assert v.verdict == NOT_COMPARABLE
    assert key in v.detail and other in v.detail
    assert v.slowdown is None


def test_backend_mismatch_only_matters_for_gpu_group():
    ref_context = {**CTX, "backend": "cupy"}
    gpu = run_judge({"t": m(9.0)}, {"t": m(1.0)}, group="gpu", ref_context=ref_context)
    assert gpu.verdict == NOT_COMPARABLE
    assert "backend numpy here, cupy in the reference" == gpu.detail
    fs = run_judge({"t": m(9.0)}, {"t": m(1.0)}, group="fs", ref_context=ref_context)
    assert fs.verdict == SLOWER
    cpu = run_judge({"t": m(1.0)}, {"t": m(1.0)}, group="cpu", ref_context=ref_context)
    assert cpu.verdict == PASS


def test_not_in_reference():
    v = run_judge({"t": m(1.0)}, ref_entry=None)
    assert (v.verdict, v.detail) == (NOT_COMPARABLE, "not in the reference")


@pytest.mark.parametrize("metrics, ref_metrics", [
    ({"t": m(1.0)}, {}),
    ({"t": m(1.0)}, {"other": m(1.0)}),
    ({"t": m(1.0, "s")}, {"t": m(1000.0, "ms")}),   # same name, different unit
    ({}, {"t": m(1.0)}),
    ({"t": m(1.0)}, {"t": m(0.0)}),                  # undefined ratio
])
def test_no_common_metric_is_not_comparable(metrics, ref_metrics):
    v = run_judge(metrics, ref_metrics)
    assert v.verdict == NOT_COMPARABLE
    assert v.detail == "no metric in common with the reference"


def test_reference_entry_without_outcome_counts_as_passed():
    v = run_judge({"t": m(1.0)}, ref_entry={"values": {"t": m(1.0)}})
    assert v.verdict == PASS


def test_not_comparable_reference_entry():
    v = run_judge({"t": m(1.0)}, ref_entry={"values": {"t": m(1.0)}, "not_comparable": "CryoSPARC's own"})
    assert (v.verdict, v.detail) == (NOT_COMPARABLE, "CryoSPARC's own")


@pytest.mark.parametrize("value", [1.0, 0.5, 1.2])
def test_warm_read_that_is_not_slower_is_not_comparable(value):
    v = run_judge({"t": m(value)}, {"t": m(1.0)}, warm=True)
    assert v.verdict == NOT_COMPARABLE
    assert "page cache" in v.detail
    assert v.slowdown == pytest.approx(value)


def test_warm_read_that_is_slower_stays_slower():
    v = run_judge({"t": m(2.0)}, {"t": m(1.0)}, warm=True)
    assert v.verdict == SLOWER
    assert v.slowdown == pytest.approx(2.0)


def test_skipped_here_could_not_run_with_its_reason():
    v = run_judge({}, {"t": m(1.0)}, outcome="skipped", reason="no usable GPU")
    assert (v.verdict, v.detail) == (COULD_NOT_RUN, "no usable GPU")
    assert v.tolerance == 1.25
    default = run_judge({}, {"t": m(1.0)}, outcome="skipped")
    assert (default.verdict, default.detail) == (COULD_NOT_RUN, "the case did not run")


def test_skipped_here_wins_over_context_mismatch_and_absence():
    v = run_judge({}, outcome="skipped", reason="r", ref_context={**CTX, "profile": "full"}, ref_entry=None)
    assert v.verdict == COULD_NOT_RUN


def test_skipped_in_the_reference_could_not_run():
    v = run_judge({"t": m(1.0)}, ref_entry={"outcome": "skipped"})
    assert v.verdict == COULD_NOT_RUN
    assert "in the reference" in v.detail


def test_tolerance_is_recorded_and_used():
    assert run_judge({"t": m(1.4)}, {"t": m(1.0)}, tolerance=1.5).verdict == PASS
    assert run_judge({"t": m(1.4)}, {"t": m(1.0)}, tolerance=1.5).tolerance == 1.5
    assert run_judge({"t": m(1.4)}, {"t": m(1.0)}, tolerance=1.3).verdict == SLOWER


def test_judgement_to_json():
    v = Judgement(SLOWER, 1.5, "t", 1.25, "why")
    assert v.to_json() == {"verdict": "slower", "slowdown": 1.5, "metric": "t", "tolerance": 1.25,
                           "detail": "why", "interval": None, "confidence": None, "method": None,
                           "p_value": None, "spreads": None, "advice": ""}
    bounded = Judgement(SLOWER, 1.5, "t", interval=(1.2, float("inf")), spreads=(0.1, float("inf")))
    assert bounded.to_json()["interval"] == [1.2, None]  # JSON has no infinity
    assert bounded.to_json()["spreads"] == [0.1, None]
    assert type(v.to_json()["verdict"]) is str
    assert Judgement(PASS).tolerance == DEFAULT_TOLERANCE == 1.25


@pytest.mark.parametrize("member, text", [
    (Verdict.PASS, "pass"), (Verdict.SLOWER, "slower"), (Verdict.FASTER, "faster"),
    (Verdict.NOT_COMPARABLE, "not comparable"), (Verdict.COULD_NOT_RUN, "could not run"),
    (Verdict.BELOW_RECOMMENDED, "below recommended"), (Verdict.BELOW_MINIMUM, "below minimum")])
def test_verdict_enum_is_the_strings_in_result_files(member, text):
    assert member == text and Verdict(text) is member
    assert f"{member}" == str(member) == text
    assert json.dumps({"v": member}) == json.dumps({"v": text})


def test_zero_time_does_not_crash_judge():
    v = run_judge({"t": m(0.0)}, {"t": m(1.0)})
    assert v.verdict in (FASTER, NOT_COMPARABLE)


def test_rate_against_zero_reference_does_not_crash_judge():
    v = run_judge({"r": m(5.0, "MB/s", "higher")}, {"r": m(0.0, "MB/s")})
    assert v.verdict == NOT_COMPARABLE


def _timed(total, *, per=None, **amounts):
    return CaseRecord("gpu", "engine", samples={"total": list(total)}, headline={"name": "engine", "per": per},
                      amounts=amounts, rates=["particles_per_s"] if "particles" in amounts else [])


def test_the_headline_of_the_samples_decides_and_rates_do_not_tie_break():
    """Rates are made of the same rounds: the verdict is the headline's, named after it."""
    run, ref = _timed([1.9, 2.0, 2.2], particles=4000), _timed([0.9, 1.0, 1.1], particles=4000)
    verdict = judge(run=run, run_context=CTX, ref_context=CTX, ref=ref, tolerance=1.25)
    assert (verdict.verdict, verdict.metric) == (SLOWER, "engine")
    assert verdict.slowdown == pytest.approx(2.0)  # medians 2.0 / 1.0


def test_a_per_movie_headline_compares_per_movie():
    run = _timed([0.6, 0.6, 0.6], per="movies", movies=3)
    ref = CaseRecord("gpu", "engine", values={"engine": m(0.2)})  # 0.2 s per movie
    verdict = judge(run=run, run_context=CTX, ref_context=CTX, ref=ref, tolerance=1.25)
    assert verdict.verdict == PASS and verdict.slowdown == pytest.approx(1.0)


# Verdicts from round samples (design: verdicts).

def _rounds(samples, name="t"):
    return CaseRecord("fs", name, samples={"total": list(samples)}, headline={"name": name, "per": None})


CONTEXT = {"profile": "standard", "backend": "numpy", "data": "synthetic"}


def _judge(run, ref, tolerance=1.25):
    return judge(run=run, run_context=CONTEXT, ref_context=CONTEXT, ref=ref, tolerance=tolerance)


@pytest.mark.parametrize("seed", range(40))
def test_unchanged_noisy_samples_are_never_slower(seed):
    rng = np.random.default_rng(seed)
    run, ref = (rng.lognormal(0.0, 0.2, size=8) for _ in range(2))
    v = _judge(_rounds(run), _rounds(ref))
    assert v.verdict in (PASS, Verdict.INCONCLUSIVE, Verdict.FASTER) and v.verdict != SLOWER


def test_a_doubled_time_is_slower_with_its_interval():
    rng = np.random.default_rng(3)
    ref = rng.lognormal(0.0, 0.05, size=8)
    v = _judge(_rounds(2.0 * rng.lognormal(0.0, 0.05, size=8)), _rounds(ref))
    assert v.verdict == SLOWER and v.method == "rank"
    low, high = v.interval
    assert 1.25 < low < v.slowdown < high
    assert f"{v.slowdown:.2f}x [{low:.2f}, {high:.2f}] slower" in v.detail
    assert ratio_text(v.to_json()) == f"{v.slowdown:.2f}x [{low:.2f}, {high:.2f}]"


def test_wide_spread_is_inconclusive_with_advice_never_slower():
    v = _judge(_rounds([1.3, 2.6, 3.9]), _rounds([0.5, 1.0, 2.0]))
    assert v.verdict == Verdict.INCONCLUSIVE
    assert "rounds" in v.advice and v.advice in v.detail


def test_rates_are_judged_the_higher_is_better_way():
    rng = np.random.default_rng(9)
    ref = _rounds(rng.lognormal(0.0, 0.03, size=8))
    run = _rounds(2.0 * rng.lognormal(0.0, 0.03, size=8))
    for record in (ref, run):
        record.amounts = {"bytes": 1e9}
        record.rates = ["mb_per_s"]
        record.headline = None  # the rate is the first shared figure
    v = _judge(run, ref)
    assert (v.verdict, v.metric) == (SLOWER, "mb_per_s") and v.slowdown == pytest.approx(2.0, rel=0.1)


def test_a_v1_reference_is_judged_by_its_recorded_median_and_spread():
    ref = CaseRecord("fs", "t", summary={"from": 1, "metrics": {"t": {"value": 1.0, "unit": "s", "better": "lower",
                                                                       "iqr": 0.02}},
                                         "timings": {"total": 1.0}, "stats": {"median": 1.0, "iqr": 0.02, "rounds": 3}})
    slower = _judge(_rounds([2.0, 2.02, 1.98, 2.01, 1.99]), ref)
    assert slower.verdict == SLOWER and slower.method == "summary-reference"
    same = _judge(_rounds([1.0, 1.01, 0.99, 1.02, 0.98]), ref)
    assert same.verdict == PASS


def test_a_warm_read_is_not_comparable_unless_slower():
    run = _rounds([1.0, 1.01, 0.99, 1.0, 1.0])
    run.warm = True
    assert _judge(run, _rounds([1.0, 1.0, 1.01, 0.99, 1.0])).verdict == NOT_COMPARABLE


def test_eer_settings_are_part_of_what_makes_cpu_figures_comparable():
    from pytest_cryobench.record.verdicts import context_mismatch

    base = {"profile": "smoke", "backend": "numpy", "data": "synthetic"}
    ten = {**base, "eer": {"fractions": 10, "superres": 0, "rate_of": "compressed input"}}
    forty = {**base, "eer": {"fractions": 40, "superres": 0, "rate_of": "compressed input"}}
    assert "10 fractions" in context_mismatch(ten, forty, "cpu") and "40 fractions" in context_mismatch(ten, forty, "cpu")
    assert context_mismatch(ten, {**base, "eer": {}}, "cpu").endswith("not recorded (a result from before the decode "
                                                                      "clock excluded the check) in the reference")
    assert context_mismatch(ten, {**base, "eer": None}, "cpu") is None  # an imported CryoSPARC result
    assert context_mismatch(ten, forty, "gpu") is None and context_mismatch(ten, dict(ten), "cpu") is None
