"""Verdicts of one case against one reference (see ``docs/design.md``).

The figure compared is the case's headline (its first figure the reference also has, see
:func:`compared_figure`), derived from the samples of both sides by
:mod:`pytest_cryobench.record.derive`.

``pass``
    within tolerance;
``slower``
    beyond tolerance (a time more than ``tol`` times the reference, or a rate less than ``1/tol``
    of it): the case fails unless ``--cryobench-no-fail``;
``faster``
    better than the reference by more than the tolerance;
``not comparable``
    different profile, backend (GPU cases) or data, no shared metric, or a warm-cache read
    that did not come out slower; reported, never a failure;
``could not run``
    the case (here or in the reference) did not run: no GPU, missing data, ...
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from pytest_cryobench.record import derive
from pytest_cryobench.record.model import CaseRecord

DEFAULT_TOLERANCE = 1.25
# Groups whose figures depend on the array backend.
BACKEND_GROUPS = frozenset({"gpu"})


class Verdict(str, enum.Enum):
    """Every verdict and mark a case can get, with the exact string written in result files.

    ``PASS``, ``SLOWER``, ``FASTER``, ``NOT_COMPARABLE`` and ``COULD_NOT_RUN`` against a reference
    (:func:`judge`); ``BELOW_RECOMMENDED`` and ``BELOW_MINIMUM`` the tiers of a requirement
    (:mod:`pytest_cryobench.requirements.tiers`, whose ``PASS`` is this one); ``CHECKS_FAILED``
    and ``ABSENT`` marks of ``cryobench compare`` (a wrong answer; no such test in a column).
    Members are strings: ``Verdict.PASS == "pass"``, and they format as their value.
    """

    PASS = "pass"
    SLOWER = "slower"
    FASTER = "faster"
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
    """

    verdict: Verdict
    slowdown: float | None = None
    metric: str | None = None
    tolerance: float = DEFAULT_TOLERANCE
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["verdict"] = self.verdict.value
        return out


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


def compared_figure(run: CaseRecord, ref: CaseRecord) -> tuple[float, str] | None:
    """``(slowdown, name)`` of the first figure of the run (headline, then rates, then measured
    values; see :func:`pytest_cryobench.record.derive.figures`) that the reference has in the same
    unit; ``None`` when they share none. Every rate of a case is made of its round times, so the
    headline decides whenever both have it."""
    ref_figures = derive.figures(ref)
    for name, figure in derive.figures(run).items():
        ref_figure = ref_figures.get(name)
        if ref_figure is None or ref_figure.unit != figure.unit:
            continue
        ratio = slowdown_of(figure.value, ref_figure.value, figure.better)
        if ratio is not None:
            return ratio, name
    return None


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
    ratio, name = found
    if ratio > tolerance:
        return Judgement(Verdict.SLOWER, ratio, name, tolerance,
                         f"{name} {ratio:.2f}x slower than the reference (tolerance {tolerance:.2f}x)")
    if run.warm:
        return Judgement(Verdict.NOT_COMPARABLE, ratio, name, tolerance,
                         "files were still in the page cache: not a cold-read figure")
    if ratio < 1.0 / tolerance:
        return Judgement(Verdict.FASTER, ratio, name, tolerance, f"{name} {1.0 / ratio:.2f}x faster than the reference")
    return Judgement(Verdict.PASS, ratio, name, tolerance, f"{name} at {ratio:.2f}x the reference")
