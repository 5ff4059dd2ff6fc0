"""A case's outcome: recorded once, with its verdicts, and changed only through :func:`set_outcome`
(design: data flow, step 6)."""

from __future__ import annotations

import pytest

from pytest_cryobench.measure.load import LOADED_SHARE
from pytest_cryobench.plugin.case import CASE_KEY
from pytest_cryobench.plugin.collection import case_tolerance
from pytest_cryobench.plugin.session import RUN_KEY
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.verdicts import Verdict, judge, resolve_tolerance

_DONE = pytest.StashKey[bool]()


def set_outcome(record: CaseRecord, outcome: str, reason: str | None) -> None:
    """The one place where a case's outcome changes."""
    record.outcome = outcome
    record.reason = reason


def finish_case(item: pytest.Item, outcome: str, reason: str | None = None) -> str | None:
    """Record the case once, with its verdicts; returns why it must fail, or ``None``."""
    state = item.config.stash[RUN_KEY]
    if item.stash.get(_DONE, False):
        return None
    item.stash[_DONE] = True
    case = item.stash.get(CASE_KEY, None)
    if case is None:
        from pytest_cryobench.plugin.naming import case_identity

        group, test = case_identity(item)
        record = CaseRecord(group=group, test=test, nodeid=item.nodeid)
        failed_checks: list[str] = []
    else:
        record = case.record
        failed_checks = case.failed_checks
    tolerance_default = case_tolerance(item)
    set_outcome(record, outcome, reason)
    if tolerance_default is not None:
        record.info["tolerance"] = tolerance_default
    run_context = state.context()
    for comparison in state.comparisons:
        entry = comparison.entry(record.group, record.test)
        verdict = judge(run=record, run_context=run_context, ref_context=comparison.context, ref=entry,
                        tolerance=resolve_tolerance(state.settings.tolerance, entry, tolerance_default))
        record.verdicts[comparison.name] = _with_load(verdict.to_json(), record)
    state.records.append(record)
    if case is not None and getattr(case, "benchmark", None) is not None:
        # pytest-benchmark keeps its own statistics of the rounds; the figures are in the result
        # files: say which case this is and how it was judged.
        case.benchmark.extra_info.update({"cryobench_case": f"{record.group}/{record.test}",
                                          "cryobench_verdicts": record.verdicts})
    if outcome != "passed":
        return None
    if failed_checks:
        lead = "below the minimum requirement: " if record.group == "requirements" else "wrong answer: "
        set_outcome(record, "failed", lead + "; ".join(c.removeprefix("minimum: ") for c in failed_checks))
        return record.reason
    slower = [f"{name}: {v['detail']}" for name, v in record.verdicts.items() if v["verdict"] == Verdict.SLOWER]
    if slower and not state.settings.no_fail:
        set_outcome(record, "failed", "slower than " + "; ".join(slower))
        return record.reason
    undecided = [f"{name}: {v['detail']}" for name, v in record.verdicts.items()
                 if v["verdict"] == Verdict.INCONCLUSIVE]
    if undecided and state.settings.strict:
        set_outcome(record, "failed", "cannot tell (--cryobench-strict) against " + "; ".join(undecided))
        return record.reason
    return None


def _with_load(verdict: dict, record: CaseRecord) -> dict:
    """A ``slower`` or ``inconclusive`` verdict of a case during which other processes took a
    good share of the CPUs says so (``measure.load``): the slowdown may be the machine's load."""
    share = record.info.get("other_load")
    if share is None or share <= LOADED_SHARE or verdict["verdict"] not in (Verdict.SLOWER, Verdict.INCONCLUSIVE):
        return verdict
    return {**verdict, "loaded": share,
            "detail": f"{verdict['detail']} (other processes used {share:.0%} of the CPUs during this case)"}


def out_of_memory_message(item: pytest.Item, exc: BaseException) -> str:
    """One line for a case that ran out of host or GPU memory, with what it asked for."""
    from pytest_cryobench.plugin.naming import case_identity

    group, test = case_identity(item)
    where = "GPU" if type(exc).__module__.startswith("cupy") else "host"
    detail = str(exc) or type(exc).__name__
    return (f"{group}/{test} ran out of {where} memory ({detail}); the other cases still run. "
            "Use a smaller --cryobench-profile or a device with more memory")


def update_outcome(item: pytest.Item, report: pytest.TestReport) -> None:
    """Keep the record in step with pytest's report of the setup and call phases."""
    if report.when == "setup" and not report.passed:
        reason = _reason(report)
        finish_case(item, "skipped" if report.skipped else "error", reason)
    elif report.when == "call":
        state = item.config.stash[RUN_KEY]
        record = next((r for r in reversed(state.records) if r.nodeid == item.nodeid), None)
        if record is None:
            finish_case(item, "skipped" if report.skipped else report.outcome, _reason(report))
        elif report.failed and record.outcome == "passed":
            set_outcome(record, "failed", _reason(report))
        elif report.skipped:
            set_outcome(record, "skipped", _reason(report))


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2])
        return text[len("Skipped: "):] if text.startswith("Skipped: ") else text
    lines = [line for line in report.longreprtext.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else report.outcome
