"""Verdicts of one case against one reference (see ``docs/design.md``).

The figure compared is the case's headline (its first figure the reference also has, see
:func:`compared_figure`), derived from the samples of both sides by
:mod:`pytest_cryobench.record.derive`, and decided from both sides' round samples by
:func:`pytest_cryobench.record.significance.decide` (the rule: ``docs/design.md``, verdicts).

``pass``
    the evidence bounds the slowdown within the tolerance;
``slower``
    slower than the tolerance allows *and* significantly so: the case fails unless
    ``--cryobench-no-fail``;
``faster``
    the mirror image: better than the reference by more than the tolerance, significantly;
``inconclusive``
    the spread of this run or of the reference is too wide to decide; reported with the spread
    and what to do, never a failure unless ``--cryobench-strict``;
``not comparable``
    different profile, backend (GPU cases) or data, no shared metric, or a warm-cache read
    that did not come out slower; reported, never a failure;
``could not run``
    the case (here or in the reference) did not run: no GPU, missing data, ...
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_cryobench.record import derive, significance
from pytest_cryobench.record.model import CaseRecord

DEFAULT_TOLERANCE = 1.25
# Groups whose figures depend on the array backend.
BACKEND_GROUPS = frozenset({"gpu"})


class Verdict(str, enum.Enum):
    """Every verdict and mark a case can get, with the exact string written in result files.

    ``PASS``, ``SLOWER``, ``FASTER``, ``INCONCLUSIVE``, ``NOT_COMPARABLE`` and ``COULD_NOT_RUN``
    against a reference
    (:func:`judge`); ``BELOW_RECOMMENDED`` and ``BELOW_MINIMUM`` the tiers of a requirement
    (:mod:`pytest_cryobench.requirements.tiers`, whose ``PASS`` is this one); ``CHECKS_FAILED``
    and ``ABSENT`` marks of ``cryobench compare`` (a wrong answer; no such test in a column).
    Members are strings: ``Verdict.PASS == "pass"``, and they format as their value.
    """

    PASS = "pass"
    SLOWER = "slower"
    FASTER = "faster"
    INCONCLUSIVE = "inconclusive"
    NOT_COMPARABLE = "not comparable"
    COULD_NOT_RUN = "could not run"
    BELOW_RECOMMENDED = "below recommended"
    BELOW_MINIMUM = "below minimum"
    CHECKS_FAILED = "checks failed"
    ABSENT = "absent"

    __str__ = str.__str__
    __format__ = str.__format__


@dataclasses.dataclass(frozen=True)
class Judgement:
    """Outcome of comparing one case with one reference.

    Attributes
    ----------
    verdict : Verdict
        One of the five verdicts against a reference.
    slowdown : float or None
        Ratio of the compared figure, oriented so that >1 means slower than the reference.
    metric : str or None
        The figure that gave ``slowdown``.
    tolerance : float
        The tolerance applied.
    detail : str
        One line for people: why this verdict.
    interval : (float, float) or None
        Confidence interval of ``slowdown`` at ``confidence`` (``None``: no samples on either side,
        the ratio of the recorded figures is all there is).
    confidence : float or None
        Level of ``interval``.
    method : str or None
        How the interval was made (``rank``, ``log-t``, ``summary-reference``, ``unbounded``), or
        ``point`` when neither side has samples.
    p_value : float or None
        One-sided Mann-Whitney p-value that this run is worse (display only).
    spreads : (float, float) or None
        Relative half-width of the 95% interval of the median of this run and of the reference.
    advice : str
        For ``inconclusive``: which spread stood in the way and what to do.
    """

    verdict: Verdict
    slowdown: float | None = None
    metric: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    detail: str = ""
    interval: tuple[float, float] | None = None
    confidence: float | None = None
    method: str | None = None
    p_value: float | None = None
    spreads: tuple[float, float] | None = None
    advice: str = ""

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["verdict"] = self.verdict.value
        for key in ("interval", "spreads"):
            if out[key] is not None:
                out[key] = [finite_or_none(v) for v in out[key]]
        return out


def finite_or_none(value: float) -> float | None:
    """JSON has no infinity: an unbounded end of an interval (or any unbounded figure) is written
    as ``null``."""
    return float(value) if math.isfinite(value) else None


def interval_text(interval: Sequence[float | None] | None) -> str:
    """`` [1.02, 2.31]`` (a leading space; ``-`` for an unbounded end), or empty without one."""
    if not interval:
        return ""
    low, high = (f"{v:.2f}" if v is not None else "-" for v in interval)
    return f" [{low}, {high}]"


def ratio_text(verdict: Mapping[str, Any]) -> str:
    """``1.53x [1.02, 2.31]`` of a verdict's JSON: its ratio with its interval (``-`` for an
    unbounded end); the bare ratio when it has no interval; empty without a ratio."""
    ratio = verdict.get("slowdown")
    if ratio is None:
        return ""
    return f"{ratio:.2f}x{interval_text(verdict.get('interval'))}"


def resolve_tolerance(override: float | None, ref_entry: CaseRecord | None,
                      case_default: float | None) -> float:
    """The tolerance of one case against one reference: ``--cryobench-tolerance`` (or
    ``cryobench compare --tolerance``) if given, else the reference's own for the case, else the
    case's (noisier IO cases carry their own), else 1.25."""
    if override is not None:
        return override
    if ref_entry is not None and ref_entry.tolerance is not None:
        return ref_entry.tolerance
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
    # the decode figures depend on the EER settings; None: a side that does not say (an imported
    # CryoSPARC result, an older reference), {}: a result file from before they were recorded
    eer, ref_eer = run.get("eer"), ref.get("eer")
    if group == "cpu" and eer is not None and ref_eer is not None and eer != ref_eer:
        return f"EER settings {_eer_text(run.get('eer'))} here, {_eer_text(ref.get('eer'))} in the reference"
    return None


def _eer_text(eer: Mapping[str, Any] | None) -> str:
    if not eer:
        return "not recorded (a result from before the decode clock excluded the check)"
    return f"{eer.get('fractions')} fractions, super-resolution {eer.get('superres')}, rate of {eer.get('rate_of')}"


def compared_figure(run: CaseRecord, ref: CaseRecord) -> tuple[derive.Figure, derive.Figure] | None:
    """``(run figure, reference figure)`` of the first figure of the run (headline, then rates,
    then measured values; see :func:`pytest_cryobench.record.derive.figures`) that the reference
    has in the same unit with a usable value; ``None`` when they share none. Every rate of a case
    is made of its round times, so the headline decides whenever both have it."""
    ref_figures = derive.figures(ref)
    for name, figure in derive.figures(run).items():
        ref_figure = ref_figures.get(name)
        if ref_figure is None or ref_figure.unit != figure.unit:
            continue
        if slowdown_of(figure.value, ref_figure.value, figure.better) is not None:
            return figure, ref_figure
    return None


def _decide(figure: derive.Figure, ref_figure: derive.Figure, tolerance: float) -> Judgement:
    """The verdict on one shared figure: from both sides' samples where this run has them (the
    reference's samples, or its recorded median and IQR), else the ratio of the two figures."""
    name = figure.name
    if not figure.samples:
        ratio = slowdown_of(figure.value, ref_figure.value, figure.better)
        if ratio > tolerance:
            return Judgement(Verdict.SLOWER, ratio, name, tolerance,
                             f"{name} {ratio:.2f}x slower than the reference (tolerance {tolerance:.2f}x)",
                             method="point")
        if ratio < 1.0 / tolerance:
            return Judgement(Verdict.FASTER, ratio, name, tolerance,
                             f"{name} {1.0 / ratio:.2f}x faster than the reference", method="point")
        return Judgement(Verdict.PASS, ratio, name, tolerance, f"{name} at {ratio:.2f}x the reference",
                         method="point")
    if ref_figure.samples:
        reference: Any = ref_figure.samples
    else:
        stats = ref_figure.stats or {}
        reference = significance.RecordedSummary(ref_figure.value, float(stats.get("iqr") or 0.0),
                                                 int(stats.get("rounds") or 1))
    decision = significance.decide(figure.samples, reference, tolerance, better=figure.better)
    verdict = Verdict(decision.verdict)
    shown = ratio_text({"slowdown": decision.ratio, "interval": [finite_or_none(v) for v in decision.interval]})
    level = f"{decision.confidence:.0%}"
    if verdict == Verdict.SLOWER:
        detail = f"{name} {shown} slower than the reference (tolerance {tolerance:.2f}x, {level} interval)"
    elif verdict == Verdict.FASTER:
        detail = f"{name} {shown} faster than the reference ({level} interval)"
    elif verdict == Verdict.INCONCLUSIVE:
        detail = f"{name} {shown}: cannot tell against tolerance {tolerance:.2f}x; {decision.advice}"
    else:
        detail = f"{name} at {shown} the reference"
    return Judgement(verdict, decision.ratio, name, tolerance, detail, decision.interval, decision.confidence,
                     decision.method, decision.p_value, (decision.run_spread, decision.ref_spread),
                     decision.advice)


def judge(*, run: CaseRecord, run_context: Mapping[str, Any], ref_context: Mapping[str, Any],
          ref: CaseRecord | None, tolerance: float) -> Judgement:
    """Compare one case with its record in a reference.

    Parameters
    ----------
    run : CaseRecord
        The case in this run (its ``outcome``, ``reason``, ``warm`` and figures).
    run_context, ref_context : mapping
        ``profile``, ``backend`` and ``data`` of the run and of the reference.
    ref : CaseRecord or None
        The reference's record of this case (with ``not_comparable``: why an imported figure has
        no counterpart here), or ``None`` if absent.
    tolerance : float
        Allowed slowdown ratio.
    """
    if run.outcome == "skipped":
        return Judgement(Verdict.COULD_NOT_RUN, tolerance=tolerance, detail=run.reason or "the case did not run")
    mismatch = context_mismatch(run_context, ref_context, run.group)
    if mismatch:
        return Judgement(Verdict.NOT_COMPARABLE, tolerance=tolerance, detail=mismatch)
    if ref is None:
        return Judgement(Verdict.NOT_COMPARABLE, tolerance=tolerance, detail="not in the reference")
    if ref.not_comparable:
        return Judgement(Verdict.NOT_COMPARABLE, tolerance=tolerance, detail=str(ref.not_comparable))
    if ref.outcome == "skipped":
        return Judgement(Verdict.COULD_NOT_RUN, tolerance=tolerance, detail="it could not run in the reference")
    found = compared_figure(run, ref)
    if found is None:
        return Judgement(Verdict.NOT_COMPARABLE, tolerance=tolerance, detail="no metric in common with the reference")
    judgement = _decide(*found, tolerance)
    if run.warm and judgement.verdict != Verdict.SLOWER:
        return dataclasses.replace(judgement, verdict=Verdict.NOT_COMPARABLE,
                                   detail="files were still in the page cache: not a cold-read figure")
    return judgement
