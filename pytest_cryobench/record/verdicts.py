"""Verdicts of one case against one reference (SPEC section 7).

``pass``
    every shared metric within tolerance;
``slower``
    some metric beyond tolerance (a time more than ``tol`` times the reference, or a rate less
    than ``1/tol`` of it): the case fails unless ``--cryobench-no-fail``;
``faster``
    every shared metric better than the reference by more than the tolerance;
``not comparable``
    different profile, backend (GPU cases) or data, no shared metric, or a warm-cache read
    that did not come out slower; reported, never a failure;
``could not run``
    the case (here or in the reference) did not run: no GPU, missing data, ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

DEFAULT_TOLERANCE = 1.25
PASS, SLOWER, FASTER, NOT_COMPARABLE, COULD_NOT_RUN = (
    "pass", "slower", "faster", "not comparable", "could not run")
# Groups whose figures depend on the array backend.
BACKEND_GROUPS = frozenset({"gpu"})


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Outcome of comparing one case with one reference.

    Attributes
    ----------
    verdict : str
        One of the five verdicts.
    slowdown : float or None
        Worst ratio over shared metrics, oriented so that >1 means slower than the reference.
    metric : str or None
        The metric that gave ``slowdown``.
    tolerance : float
        The tolerance applied.
    detail : str
        One line for people: why this verdict.
    """

    verdict: str
    slowdown: float | None = None
    metric: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_tolerance(override: float | None, ref_entry: Mapping[str, Any] | None,
                      case_default: float | None) -> float:
    """The tolerance of one case against one reference: ``--cryobench-tolerance`` (or
    ``cryobench compare --tolerance``) if given, else the reference's own for the case, else the
    case's (noisier IO cases carry their own), else 1.25."""
    if override is not None:
        return override
    if ref_entry is not None and ref_entry.get("tolerance") is not None:
        return float(ref_entry["tolerance"])
    return case_default or DEFAULT_TOLERANCE


def slowdown_of(value: float, ref_value: float, better: str) -> float | None:
    """How many times slower ``value`` is than ``ref_value`` (``None`` if undefined)."""
    if value is None or ref_value is None or ref_value <= 0:
        return None
    if better == "lower":
        return value / ref_value if value > 0 else None
    if value <= 0:
        return float("inf") if ref_value > 0 else None
    return ref_value / value


def context_mismatch(run: Mapping[str, Any], ref: Mapping[str, Any], group: str) -> str | None:
    """Why a run and a reference cannot be compared for ``group`` (``None``: they can)."""
    for key in ("profile", "data"):
        if run.get(key) != ref.get(key):
            return f"{key} {run.get(key)} here, {ref.get(key)} in the reference"
    if group in BACKEND_GROUPS and run.get("backend") != ref.get("backend"):
        return f"backend {run.get('backend')} here, {ref.get('backend')} in the reference"
    return None


def judge(*, group: str, outcome: str, reason: str | None, warm: bool,
          metrics: Mapping[str, Mapping[str, Any]], run_context: Mapping[str, Any],
          ref_context: Mapping[str, Any], ref_entry: Mapping[str, Any] | None,
          tolerance: float) -> Verdict:
    """Compare one case with its entry in a reference.

    Parameters
    ----------
    group : str
        The case's group.
    outcome : str
        ``passed``/``failed``/``skipped``/``error`` of the case in this run.
    reason : str or None
        Why it did not run, for ``skipped``.
    warm : bool
        Whether a cold read of this run found its files cached.
    metrics : mapping
        ``{name: {"value", "unit", "better"}}`` of this run.
    run_context, ref_context : mapping
        ``profile``, ``backend`` and ``data`` of the run and of the reference.
    ref_entry : mapping or None
        The reference's entry for this case (``metrics``, ``outcome``, and ``not_comparable``: why an
        imported figure has no counterpart here), or ``None`` if absent.
    tolerance : float
        Allowed slowdown ratio.
    """
    if outcome == "skipped":
        return Verdict(COULD_NOT_RUN, tolerance=tolerance, detail=reason or "the case did not run")
    mismatch = context_mismatch(run_context, ref_context, group)
    if mismatch:
        return Verdict(NOT_COMPARABLE, tolerance=tolerance, detail=mismatch)
    if ref_entry is None:
        return Verdict(NOT_COMPARABLE, tolerance=tolerance, detail="not in the reference")
    if ref_entry.get("not_comparable"):
        return Verdict(NOT_COMPARABLE, tolerance=tolerance, detail=str(ref_entry["not_comparable"]))
    if ref_entry.get("outcome", "passed") == "skipped":
        return Verdict(COULD_NOT_RUN, tolerance=tolerance, detail="it could not run in the reference")
    worst: tuple[float, str] | None = None
    for name, metric in metrics.items():
        ref_metric = ref_entry.get("metrics", {}).get(name)
        if ref_metric is None or ref_metric.get("unit") != metric.get("unit"):
            continue
        ratio = slowdown_of(metric["value"], ref_metric["value"], metric.get("better", "lower"))
        if ratio is None:
            continue
        if worst is None or ratio > worst[0] * (1 + 1e-9):  # ties (rates of one time): the first metric
            worst = (ratio, name)
    if worst is None:
        return Verdict(NOT_COMPARABLE, tolerance=tolerance, detail="no metric in common with the reference")
    ratio, name = worst
    if ratio > tolerance:
        return Verdict(SLOWER, ratio, name, tolerance,
                       f"{name} {ratio:.2f}x slower than the reference (tolerance {tolerance:.2f}x)")
    if warm:
        return Verdict(NOT_COMPARABLE, ratio, name, tolerance,
                       "files were still in the page cache: not a cold-read figure")
    if ratio < 1.0 / tolerance:
        return Verdict(FASTER, ratio, name, tolerance,
                       f"{name} {1.0 / ratio:.2f}x faster than the reference")
    return Verdict(PASS, ratio, name, tolerance, f"{name} at {ratio:.2f}x the reference")
