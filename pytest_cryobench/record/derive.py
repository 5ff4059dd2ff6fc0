"""Every figure of a case, derived from what its record stores (see ``docs/design.md``).

A :class:`~pytest_cryobench.record.model.CaseRecord` stores each number once: the per-round
samples (seconds) of the total and of each sub-timing, the amounts its rates are made of
(``bytes``, ``particles``, ...), the headline it declares, and any value measured otherwise
(requirements). This module computes from them, for runs, references, baselines, ``compare``, the
terminal summary, the HTML report and the verdicts alike:

- :func:`sample_stats`: median, IQR, min, max, mean, rounds and a distribution-free confidence
  interval of the median;
- :func:`timings`: the median seconds of each sub-timing and of ``total``;
- :func:`figures`: the headline and every rate, each with its own per-round values and statistics
  on its own scale (a rate's round value is ``amount / total`` of that round).

A record migrated from schema 1 has no samples, only the medians it was written with
(``summary``); its figures carry those values and no per-round values (``samples is None``).

Rate names follow one scheme, ``<quantity>_per_s``, and their unit follows from the name
(:func:`rate_unit`): ``mb_per_s`` is bytes / 1e6 per second, ``particles_per_s`` particles per
second, ``template_angles_per_s`` template-angles per second.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from scipy.stats import binom

from pytest_cryobench.measure.spread import order_statistic_rank
from pytest_cryobench.measure.timing import round_stats

if TYPE_CHECKING:
    from pytest_cryobench.record.model import CaseRecord

CI_LEVEL = 0.95
#: Quantities whose amount is stored in another unit: ``quantity -> (amount name, scale, unit)``.
SCALED_QUANTITIES = {"mb": ("bytes", 1e-6, "MB"), "gb": ("bytes", 1e-9, "GB")}
RATE_SUFFIX = "_per_s"


def median_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Distribution-free confidence interval of the median from order statistics.

    Parameters
    ----------
    values : sequence of float, length n >= 1
        The samples.
    level : float
        The wanted coverage.

    Returns
    -------
    (low, high, achieved)
        ``low = x_(k)``, ``high = x_(n+1-k)`` (sorted, 1-based) for the largest ``k`` whose
        coverage ``1 - 2 P(B <= k-1)``, ``B ~ Binomial(n, 1/2)``, is at least ``level``; with too
        few samples for that, the whole range and its coverage (0.75 for 3 rounds).
    """
    xs = sorted(float(v) for v in values)
    n = len(xs)
    k = max(1, order_statistic_rank(n, level))  # the same order-statistic rule as the verdicts'
    return xs[k - 1], xs[n - k], 1.0 - 2.0 * float(binom.cdf(k - 1, n, 0.5))


def sample_stats(values: Sequence[float]) -> dict[str, float | int]:
    """Summary of per-round values on their own scale.

    Returns
    -------
    dict
        ``median``, ``min``, ``max``, ``mean``, ``iqr`` (upper minus lower quartile, the inclusive
        method; 0 with fewer than two rounds), ``rounds``, and ``ci_low``/``ci_high``/``ci_level``
        of the median (:func:`median_ci`).

    Raises
    ------
    ValueError
        No values.
    """
    stats = dict(round_stats(values))
    low, high, level = median_ci(values)
    return {**stats, "ci_low": low, "ci_high": high, "ci_level": level}


def rate_unit(name: str) -> tuple[str, float, str]:
    """``(amount name, scale, unit)`` of a rate named ``<quantity>_per_s``.

    >>> rate_unit("mb_per_s")
    ('bytes', 1e-06, 'MB/s')
    >>> rate_unit("template_angles_per_s")
    ('template_angles', 1.0, 'template-angles/s')

    Raises
    ------
    ValueError
        The name does not end in ``_per_s``.
    """
    if not name.endswith(RATE_SUFFIX) or name == RATE_SUFFIX:
        raise ValueError(f"a rate is named <quantity>_per_s (mb_per_s, particles_per_s, ...), not {name!r}")
    quantity = name[: -len(RATE_SUFFIX)]
    if quantity in SCALED_QUANTITIES:
        amount, scale, unit = SCALED_QUANTITIES[quantity]
        return amount, scale, f"{unit}/s"
    return quantity, 1.0, f"{quantity.replace('_', '-')}/s"


@dataclasses.dataclass(frozen=True)
class Figure:
    """One figure of a case, derived from its record.

    Attributes
    ----------
    name : str
        The figure's name (``particle_random_read_time``, ``mb_per_s``, ``memory_bandwidth``).
    value : float
        Its median over rounds (the stored value for a measured value or a migrated record).
    unit : str
        ``"s"``, ``"MB/s"``, ...
    better : {"lower", "higher"}
        Which direction is an improvement.
    samples : tuple of float or None
        Its value in each round, on its own scale; ``None`` when not known (a measured value, or a
        record migrated from schema 1).
    stats : dict or None
        :func:`sample_stats` of ``samples``; for a migrated record, the summary it kept
        (``median`` and, for the headline, ``iqr`` rescaled to the figure).
    """

    name: str
    value: float
    unit: str
    better: str = "lower"
    samples: tuple[float, ...] | None = None
    stats: Mapping[str, Any] | None = None

    @property
    def spread(self) -> float | None:
        """Half the IQR, on the figure's own scale (``None`` when unknown)."""
        return spread_of(self.stats)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "better": self.better}


def spread_of(stats: Mapping[str, Any] | None) -> float | None:
    """Half the IQR of a summary, on its scale; ``None`` when unknown (no IQR, or one round)."""
    if not stats or stats.get("iqr") is None or stats.get("rounds", 2) < 2:
        return None
    return stats["iqr"] / 2


def _figure(name: str, samples: Sequence[float], unit: str, better: str) -> Figure:
    stats = sample_stats(samples)
    return Figure(name, float(stats["median"]), unit, better, tuple(samples), stats)


def timings(record: CaseRecord) -> dict[str, float]:
    """Median seconds of each sub-timing, then ``total`` (a migrated record: the medians it kept)."""
    if record.summary is not None:
        return dict(record.summary.get("timings", {}))
    medians = {name: float(statistics.median(values)) for name, values in record.samples.items()
               if name != "total" and values}
    if record.samples.get("total"):
        medians["total"] = float(statistics.median(record.samples["total"]))
    return medians


def total_stats(record: CaseRecord) -> dict[str, Any] | None:
    """Round statistics of the total (seconds), or ``None`` with no rounds."""
    if record.summary is not None:
        return dict(record.summary["stats"]) if record.summary.get("stats") else None
    total = record.samples.get("total")
    return sample_stats(total) if total else None


def headline(record: CaseRecord) -> Figure | None:
    """The figure the case declares as its headline, else its first measured value, else ``None``."""
    found = figures(record)
    return next(iter(found.values()), None)


def figures(record: CaseRecord) -> dict[str, Figure]:
    """Every figure of a case, headline first, then its rates, then values measured otherwise.

    Raises
    ------
    ValueError
        A rate or a per-amount headline whose amount the case did not record.
    """
    if record.summary is not None:
        return _summary_figures(record.summary)
    out: dict[str, Figure] = {}
    total = record.samples.get("total") or []
    if record.headline is not None and total:
        per = record.headline.get("per")
        amount = _amount(record, per) if per else 1.0
        out[record.headline["name"]] = _figure(record.headline["name"], [t / amount for t in total], "s", "lower")
    if total and all(t > 0 for t in total):
        for name in record.rates:
            amount_name, scale, unit = rate_unit(name)
            amount = _amount(record, amount_name) * scale
            out[name] = _figure(name, [amount / t for t in total], unit, "higher")
    for name, value in record.values.items():
        out.setdefault(name, Figure(name, float(value["value"]), value["unit"], value.get("better", "lower")))
    return out


def _amount(record: CaseRecord, name: str) -> float:
    if name not in record.amounts:
        raise ValueError(f"{record.group}/{record.test}: no amount {name!r} recorded "
                         f"(recorded: {', '.join(record.amounts) or 'none'})")
    return float(record.amounts[name])


def _summary_figures(summary: Mapping[str, Any]) -> dict[str, Figure]:
    """Figures of a record migrated from schema 1: its metrics as they were, in their order; the
    spread of a time figure is the total's IQR rescaled to the figure (value / total)."""
    out = {}
    total = summary.get("timings", {}).get("total")
    for name, metric in summary.get("metrics", {}).items():
        stats: dict[str, Any] = {"median": metric["value"]}
        iqr = metric.get("iqr")
        if iqr is not None and metric.get("unit") == "s" and total:
            stats["iqr"] = iqr * metric["value"] / total
        out[name] = Figure(name, float(metric["value"]), metric["unit"], metric.get("better", "lower"),
                           None, stats)
    return out


def headline_seconds(record: CaseRecord | None) -> float | None:
    """A case's time as ``compare`` shows it: its first figure in seconds, else its total median."""
    if record is None:
        return None
    for figure in figures(record).values():
        if figure.unit == "s":
            return figure.value
    return timings(record).get("total")
