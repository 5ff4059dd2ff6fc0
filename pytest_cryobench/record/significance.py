"""Verdicts from per-round samples: slower only when the evidence says so.

Pure functions on 1-D sequences of per-round samples of one metric in a run and in its
reference; NumPy and ``scipy.stats`` only, no I/O. The rule, its levels and its false-alarm rates
are in ``docs/design.md``; in short, with ``r`` the ratio of medians oriented so that ``r > 1`` is
worse (``run/ref`` for times, ``ref/run`` for rates), ``[lo, hi]`` its interval at ``confidence``
(0.99) and ``[lo_p, hi_p]`` its interval at ``pass_confidence`` (0.90):

``slower``
    ``lo > 1`` and ``lo_p > tolerance``: significantly worse than the reference (were the two
    alike, ``lo > 1`` would have probability at most ``(1 - confidence) / 2`` = 0.5%) *and* worse
    beyond the tolerance (were the true ratio at the tolerance, ``lo_p > tolerance`` would have
    probability at most ``(1 - pass_confidence) / 2`` = 5%);
``faster``
    ``hi < 1`` and ``hi_p < 1 / tolerance``, the mirror image;
``pass``
    ``hi_p <= tolerance``: the data bound the slowdown within the tolerance;
``inconclusive``
    anything else: the interval straddles the tolerance because the samples of either side spread
    too widely (or are too few). Never a failure by itself; ``Decision.advice`` says what to do.

The interval of the ratio
-------------------------
Shifts of log samples are ratios. With samples on both sides (``"rank"``), the interval is the
distribution-free one that inverts the one-sided Mann-Whitney U test (the Hodges-Lehmann / Moses
interval): the pairwise ratios ``run_i / ref_j`` sorted, from the ``k``-th to the ``k``-th last,
with ``k`` from the exact null distribution of U for these sample sizes. It needs
``1 / C(m+n, m) <= (1-confidence)/2``: at 99%, 5 rounds a side, or 4 and 6, or 3 and 9. With
fewer (``"log-t"``) a Welch t interval of the difference of mean log samples stands in (log-normal
noise assumed). A reference with no samples (``"summary-reference"``, records of schema 1 keep
only median, IQR and a round count) is taken as its median known to within its whole IQR either
way, and the run's own median interval is widened by that.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from pytest_cryobench.measure.spread import check_confidence, check_samples, log_median_interval, precision

SLOWER, FASTER, PASS, INCONCLUSIVE = "slower", "faster", "pass", "inconclusive"
VERDICTS = (PASS, SLOWER, FASTER, INCONCLUSIVE)
RANK, LOG_T, SUMMARY_REFERENCE, UNBOUNDED = "rank", "log-t", "summary-reference", "unbounded"
DEFAULT_CONFIDENCE = 0.99
DEFAULT_PASS_CONFIDENCE = 0.90
SPREAD_CONFIDENCE = 0.95
_FEWEST_DECISIVE = 5  # rounds a side from which the 99% interval is distribution-free
__all__ = ["RecordedSummary", "RatioInterval", "Decision", "ratio_interval", "decide", "precision",
           "rank_interval_rank", "VERDICTS", "SLOWER", "FASTER", "PASS", "INCONCLUSIVE"]


@dataclasses.dataclass(frozen=True)
class RecordedSummary:
    """A reference figure without its per-round samples (records migrated from schema 1).

    Attributes
    ----------
    median : float
        Median over rounds, in the metric's unit (> 0).
    iqr : float
        Inter-quartile range over rounds, same unit (0 when unknown or one round).
    rounds : int
        How many rounds the median is of.
    """

    median: float
    iqr: float = 0.0
    rounds: int = 1

    def __post_init__(self) -> None:
        check_samples([self.median], "reference median")
        if not (math.isfinite(self.iqr) and self.iqr >= 0):
            raise ValueError(f"reference IQR: must be finite and >= 0, got {self.iqr!r}")


@dataclasses.dataclass(frozen=True)
class RatioInterval:
    """A ratio of medians with its confidence interval.

    Attributes
    ----------
    ratio : float
        Median of the run over median of the reference, oriented so that > 1 is worse.
    low, high : float
        Bounds of the interval of the ratio (``0, inf`` when nothing can be said).
    confidence : float
        Its two-sided level.
    method : str
        ``"rank"``, ``"log-t"``, ``"summary-reference"`` or ``"unbounded"`` (see the module).
    """

    ratio: float
    low: float
    high: float
    confidence: float
    method: str

    def __str__(self) -> str:
        return f"{self.ratio:.2f}x [{self.low:.2f}, {self.high:.2f}]"


@dataclasses.dataclass(frozen=True)
class Decision:
    """The verdict of one metric of one case against its reference.

    Attributes
    ----------
    verdict : str
        ``pass``, ``slower``, ``faster`` or ``inconclusive``.
    ratio : float
        Ratio of medians, > 1 worse than the reference.
    interval : tuple of float
        ``(low, high)`` of the ratio at ``confidence``.
    confidence : float
        Level of ``interval`` (0.99 by default).
    pass_high : float
        High end of the ratio's interval at ``pass_confidence``, compared with the tolerance.
    pass_confidence : float
        Its level (0.90 by default).
    tolerance : float
        Allowed slowdown ratio (>= 1).
    p_value : float or None
        One-sided Mann-Whitney U p-value that the run is worse (``None`` without reference samples).
    run_spread, ref_spread : float
        Relative half-width of the 95% interval of each side's median (``inf``: one round); for a
        :class:`RecordedSummary` reference, its IQR over its median.
    rounds : tuple of int
        Rounds of the run and of the reference.
    method : str
        How the interval was made (``RatioInterval.method``).
    advice : str
        For ``inconclusive``: which spread stood in the way and what to do; else empty.
    """

    verdict: str
    ratio: float
    interval: tuple[float, float]
    confidence: float
    pass_high: float
    pass_confidence: float
    tolerance: float
    p_value: float | None
    run_spread: float
    ref_spread: float
    rounds: tuple[int, int]
    method: str
    advice: str = ""

    def describe(self) -> str:
        """``1.53x [1.02, 2.31] slower`` (the interval at ``confidence``)."""
        low, high = self.interval
        return f"{self.ratio:.2f}x [{low:.2f}, {high:.2f}] {self.verdict}"


@functools.lru_cache(maxsize=512)
def rank_interval_rank(m: int, n: int, confidence: float) -> int:
    """Rank ``k`` of the Mann-Whitney interval of a shift between samples of sizes ``m`` and ``n``.

    Returns
    -------
    int
        The largest ``k`` with ``P(U <= k-1) <= (1-confidence)/2`` under the null distribution of
        U (exact, from ``scipy.stats.mannwhitneyu``); 0 when the sizes are too small for any.
    """
    check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0 * (1 + 1e-12)
    y = np.arange(n, dtype=np.float64)

    def p_at_most(u: int) -> float:
        # x_i = c_i - 1/2 exceeds exactly c_i of the y's, so U = sum(c) = u with no ties
        counts = [n] * (u // n) + [u % n] + [0] * (m - u // n - 1)
        x = np.asarray(counts[:m], dtype=np.float64) - 0.5
        return float(stats.mannwhitneyu(x, y, alternative="less", method="exact").pvalue)

    low, high = 0, m * n // 2 + 1  # invariant: P(U <= low-1) <= tail, P(U <= high-1) > tail
    if p_at_most(0) > tail:
        return 0
    low = 1
    while high - low > 1:
        mid = (low + high) // 2
        if p_at_most(mid - 1) <= tail:
            low = mid
        else:
            high = mid
    return low


def _badness_logs(values: np.ndarray, better: str) -> np.ndarray:
    if better == "lower":
        return np.log(values)
    if better == "higher":
        return -np.log(values)
    raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")


def _log_median_ratio(run: np.ndarray, ref_median: float, better: str) -> float:
    """Log of the ratio of the medians as records keep them (the mean of the two middle rounds)."""
    return float(_badness_logs(np.array([float(np.median(run)) / ref_median]), better)[0])


def _log_shift_interval(run: np.ndarray, ref: np.ndarray, confidence: float) -> tuple[float, float, str]:
    """Interval of the shift of ``run`` over ``ref`` (log samples, 1-D)."""
    k = rank_interval_rank(run.size, ref.size, confidence)
    if k:
        shifts = np.sort(np.subtract.outer(run, ref).ravel())
        return float(shifts[k - 1]), float(shifts[shifts.size - k]), RANK
    if run.size + ref.size < 3:
        return -np.inf, np.inf, UNBOUNDED
    difference = float(np.mean(run) - np.mean(ref))
    if np.ptp(run) == 0 and np.ptp(ref) == 0:
        return difference, difference, LOG_T
    welch = run.size >= 2 and ref.size >= 2
    result = stats.ttest_ind(run, ref, equal_var=not welch)
    bounds = result.confidence_interval(confidence_level=confidence)
    return float(bounds.low), float(bounds.high), LOG_T


def _log_interval(run: np.ndarray, reference: np.ndarray | RecordedSummary, better: str,
                  confidence: float) -> tuple[float, float, float, str]:
    """(log ratio of medians, low, high, method), oriented so that > 0 is worse."""
    run_logs = _badness_logs(run, better)
    if isinstance(reference, RecordedSummary):
        ref_log = float(_badness_logs(np.array([reference.median]), better)[0])
        widen = math.log1p(reference.iqr / reference.median)
        low, high, _ = log_median_interval(run_logs, confidence)
        centre = _log_median_ratio(run, reference.median, better)
        return centre, low - ref_log - widen, high - ref_log + widen, SUMMARY_REFERENCE
    ref_logs = _badness_logs(reference, better)
    centre = _log_median_ratio(run, float(np.median(reference)), better)
    low, high, method = _log_shift_interval(run_logs, ref_logs, confidence)
    return centre, low, high, method


def _reference_values(reference: Sequence[float] | RecordedSummary) -> np.ndarray | RecordedSummary:
    if isinstance(reference, RecordedSummary):
        return reference
    return check_samples(reference, "reference samples")


def ratio_interval(run_samples: Sequence[float], ref_samples: Sequence[float] | RecordedSummary,
                   confidence: float = DEFAULT_CONFIDENCE, better: str = "lower") -> RatioInterval:
    """Ratio of medians of a run over its reference, with its confidence interval.

    Deterministic (no resampling, so no seed).

    Parameters
    ----------
    run_samples : sequence of float, shape (m,)
        Per-round values of this run (seconds, or a rate with ``better="higher"``).
    ref_samples : sequence of float, shape (n,), or RecordedSummary
        The reference's per-round values, or its summary when it kept none.
    confidence : float
        Two-sided level of the interval.
    better : {"lower", "higher"}
        ``"lower"`` for times (ratio ``run/ref``), ``"higher"`` for rates (ratio ``ref/run``).

    Returns
    -------
    RatioInterval
        > 1 means worse than the reference.
    """
    check_confidence(confidence)
    run = check_samples(run_samples, "run samples")
    centre, low, high, method = _log_interval(run, _reference_values(ref_samples), better, confidence)
    return RatioInterval(math.exp(centre), math.exp(low), math.exp(high), confidence, method)


def _p_worse(run: np.ndarray, reference: np.ndarray | RecordedSummary, better: str) -> float | None:
    if isinstance(reference, RecordedSummary):
        return None
    p = float(stats.mannwhitneyu(_badness_logs(run, better), _badness_logs(reference, better),
                                 alternative="greater").pvalue)
    return p if math.isfinite(p) else None


def _rounds_to_settle(n: int, half_width: float, target: float) -> int | None:
    """Rounds a side for an interval's half-width (log) to shrink to ``target`` (as ~ 1/sqrt(n))."""
    if target <= 0 or not math.isfinite(half_width):
        return None
    return max(n + 1, math.ceil(n * (half_width / target) ** 2))


def _spread_text(spread: float, where: str, summary: bool = False) -> str:
    if summary:
        return f"an IQR of {spread:.0%} of the median {where} (no per-round samples)"
    if math.isinf(spread):
        return f"unknown {where} (one round)"
    return f"+-{spread:.0%} {where}"


def _advice(run: np.ndarray, reference: np.ndarray | RecordedSummary, log_ratio: float,
            log_bounds: tuple[float, float, float], tolerance: float, spreads: tuple[float, float]) -> str:
    """Why an ``inconclusive`` and what to do; ``log_bounds`` = (low, pass low, pass high)."""
    summary = isinstance(reference, RecordedSummary)
    text = (f"spread of the median (95% interval): {_spread_text(spreads[0], 'here')}, "
            f"{_spread_text(spreads[1], 'in the reference', summary)}; too wide to tell the "
            f"{math.exp(log_ratio):.2f}x ratio from the {tolerance:.2f}x tolerance")
    if math.isinf(spreads[0]) or math.isinf(spreads[1]):
        return text + (f"; a single round shows no spread: run at least {_FEWEST_DECISIVE} a side "
                       f"(--cryobench-rounds {_FEWEST_DECISIVE})")
    if summary:
        return text + "; record the reference again with this version to decide from samples"
    low, pass_low, pass_high = log_bounds
    log_tol = math.log(tolerance)
    if log_ratio > log_tol:   # looks slower: settle whether lo > 1 and lo_p > tolerance
        needs = [_rounds_to_settle(run.size, log_ratio - low, log_ratio),
                 _rounds_to_settle(run.size, log_ratio - pass_low, log_ratio - log_tol)]
    else:                     # looks within: settle whether hi_p <= tolerance
        needs = [_rounds_to_settle(run.size, pass_high - log_ratio, log_tol - log_ratio)]
    need = None if None in needs else max(needs)
    reference_noisier = spreads[1] > spreads[0]
    if need is None or need > 100:
        return text + "; the ratio sits at the tolerance: measure on a quieter machine"
    if reference_noisier:
        return text + (f"; about {need} rounds a side would settle it: record the reference again "
                       f"with --cryobench-rounds {need}, or on a quieter machine")
    return text + (f"; about {need} rounds a side would settle it (--cryobench-rounds {need}), "
                   "or a quieter machine")


def decide(run_samples: Sequence[float], ref_samples: Sequence[float] | RecordedSummary,
           tolerance: float, better: str = "lower", confidence: float = DEFAULT_CONFIDENCE,
           pass_confidence: float = DEFAULT_PASS_CONFIDENCE) -> Decision:
    """Verdict of one metric of a run against its reference (rule in the module docstring).

    Parameters
    ----------
    run_samples : sequence of float, shape (m,)
        Per-round values of this run, finite and > 0.
    ref_samples : sequence of float, shape (n,), or RecordedSummary
        The reference's per-round values, or its summary (schema 1 records).
    tolerance : float
        Allowed slowdown ratio, >= 1 (1.25: a time up to 25% over the reference passes).
    better : {"lower", "higher"}
        ``"lower"`` for times, ``"higher"`` for rates.
    confidence : float
        Level of the interval that must exclude 1 for ``slower``/``faster``.
    pass_confidence : float
        Level of the interval whose high end must be within the tolerance for ``pass``.

    Returns
    -------
    Decision
    """
    if not (math.isfinite(tolerance) and tolerance >= 1.0):
        raise ValueError(f"tolerance must be a finite ratio >= 1, got {tolerance!r}")
    check_confidence(confidence)
    check_confidence(pass_confidence)
    run = check_samples(run_samples, "run samples")
    reference = _reference_values(ref_samples)
    centre, low, high, method = _log_interval(run, reference, better, confidence)
    _, pass_low, pass_high, _ = _log_interval(run, reference, better, pass_confidence)
    log_tol = math.log(tolerance)
    if low > 0 and pass_low > log_tol:
        verdict = SLOWER
    elif high < 0 and pass_high < -log_tol:
        verdict = FASTER
    elif pass_high <= log_tol:
        verdict = PASS
    else:
        verdict = INCONCLUSIVE
    if isinstance(reference, RecordedSummary):
        ref_spread, ref_rounds = reference.iqr / reference.median, reference.rounds
    else:
        ref_spread, ref_rounds = precision(reference, SPREAD_CONFIDENCE), reference.size
    spreads = (precision(run, SPREAD_CONFIDENCE), ref_spread)
    advice = (_advice(run, reference, centre, (low, pass_low, pass_high), tolerance, spreads)
              if verdict == INCONCLUSIVE else "")
    return Decision(verdict, math.exp(centre), (math.exp(low), math.exp(high)), confidence,
                    math.exp(pass_high), pass_confidence, tolerance, _p_worse(run, reference, better),
                    spreads[0], spreads[1], (run.size, ref_rounds), method, advice)
