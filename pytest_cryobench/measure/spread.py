"""How well the per-round samples of one case pin down its median.

Pure functions on 1-D sequences of per-round samples (seconds, or a rate), NumPy and
``scipy.stats`` only. The rounds policy (``measure.rounds``) stops repeating a case when
:func:`precision` is small enough; the verdicts (``record.significance``) use
:func:`median_interval` for references that kept no samples. The reasoning behind the levels is
in ``docs/design.md``.

Distribution-free interval of a median
---------------------------------------
For ``n`` independent rounds sorted as ``x(1) <= ... <= x(n)``, the true median lies outside
``[x(k), x(n+1-k)]`` with probability ``2 * P(K <= k-1)``, ``K ~ Binomial(n, 1/2)``, whatever the
distribution. The largest ``k >= 1`` with ``P(K <= k-1) <= (1-confidence)/2`` gives the interval;
when even ``k = 1`` (``[min, max]``, coverage ``1 - 2**(1-n)``) falls short of the confidence there
is none: below 6 rounds at 95%, below 8 rounds at 99%. Then a Student-t interval of the mean of the
log samples (the median of a log-normal distribution) stands in, which assumes log-normal noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

DISTRIBUTION_FREE, LOG_T, UNBOUNDED = "order statistics", "log-normal t", "unbounded"


def check_samples(samples: Sequence[float], what: str) -> np.ndarray:
    """The samples as a float64 array, or ValueError naming what is wrong with them.

    Parameters
    ----------
    samples : sequence of float, shape (n,)
        Per-round values; every one finite and above zero (times in seconds, rates).
    what : str
        Whose samples these are, for the message (``"run samples"``).

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D sequence of per-round values, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{what}: no samples")
    for problem, bad in (("NaN", np.isnan(values)), ("an infinite value", np.isinf(values)),
                         ("zero", values == 0), ("a negative value", values < 0)):
        if bad.any():
            where = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
            raise ValueError(f"{what}: {problem} at round {where} (times and rates must be finite and > 0)")
    return values


def order_statistic_rank(n: int, confidence: float) -> int:
    """The rank ``k`` of the distribution-free interval ``[x(k), x(n+1-k)]`` of a median.

    Returns
    -------
    int
        The largest ``k >= 1`` with ``P(K <= k-1) <= (1-confidence)/2`` for ``K ~ Binomial(n, 1/2)``;
        0 when ``n`` is too small for any such interval at ``confidence``.
    """
    check_confidence(confidence)
    tail = (1.0 - confidence) / 2.0
    ranks = np.arange(1, n // 2 + 1)
    ok = ranks[stats.binom.cdf(ranks - 1, n, 0.5) <= tail * (1 + 1e-12)]
    return int(ok[-1]) if ok.size else 0


def log_median_interval(log_samples: np.ndarray, confidence: float) -> tuple[float, float, str]:
    """Interval of the median of samples given by their logarithms.

    Parameters
    ----------
    log_samples : numpy.ndarray, shape (n,)
        Natural logarithms of the per-round values.
    confidence : float
        Two-sided coverage, in (0, 1).

    Returns
    -------
    low, high : float
        Bounds on the log median (``-inf, inf`` with a single sample).
    method : str
        :data:`DISTRIBUTION_FREE`, :data:`LOG_T` or :data:`UNBOUNDED`.
    """
    n = log_samples.size
    k = order_statistic_rank(n, confidence)
    ordered = np.sort(log_samples)
    if k:
        return float(ordered[k - 1]), float(ordered[n - k]), DISTRIBUTION_FREE
    if n < 2:
        return -np.inf, np.inf, UNBOUNDED
    centre = float(np.mean(log_samples))
    scale = float(np.std(log_samples, ddof=1)) / np.sqrt(n)
    if scale == 0.0:
        return centre, centre, LOG_T
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * scale
    return centre - half, centre + half, LOG_T


def median_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of the median of per-round samples, in their unit.

    Distribution-free (binomial order statistics) where ``len(samples)`` allows it at
    ``confidence``, else the log-normal t interval; ``(0, inf)`` with one sample.
    """
    values = check_samples(samples, "samples")
    low, high, _ = log_median_interval(np.log(values), confidence)
    return float(np.exp(low)), float(np.exp(high))


def precision(samples: Sequence[float], confidence: float = 0.95) -> float:
    """Relative half-width of the confidence interval of the median.

    Parameters
    ----------
    samples : sequence of float, shape (n,)
        Per-round values, finite and > 0.
    confidence : float
        Two-sided coverage of the interval.

    Returns
    -------
    float
        ``(high - low) / (2 * median)``: 0.03 means the median is known to about +-3%; ``inf`` with
        a single sample, 0 when every sample is the same.
    """
    values = check_samples(samples, "samples")
    low, high = median_interval(values, confidence)
    if np.isinf(high):
        return float("inf")
    return float((high - low) / (2.0 * np.median(values)))


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
