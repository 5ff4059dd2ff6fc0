"""The terminal summary: one table of the run with verdicts, then notes and the files written."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pytest_cryobench.record import derive
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.verdicts import Verdict, ratio_text

OUTCOME_LABEL = {"failed": "FAILED", "error": "ERROR", "skipped": "could not run"}


def format_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.3f}"
    if value >= 1e-3:
        return f"{value:.4f}"
    return f"{value:.2e}"


def format_rate(value: float, unit: str) -> str:
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}"


def primary_metric(record: CaseRecord) -> derive.Figure | None:
    """The case's headline figure when it is a time (else ``None``: the summary shows the total)."""
    figure = derive.headline(record)
    return figure if figure is not None and figure.unit == "s" else None


def verdict_cell(verdict: dict | None) -> str:
    """A verdict with its ratio and interval: ``SLOWER 1.53x [1.02, 2.31]``, ``pass 1.02x [0.97,
    1.08]``, ``can't tell 1.20x [0.85, 1.71]``; the bare verdict where there is no ratio."""
    if not verdict:
        return "-"
    kind = Verdict(verdict["verdict"])
    ratio = ratio_text(verdict)
    if kind in (Verdict.PASS, Verdict.SLOWER, Verdict.FASTER, Verdict.INCONCLUSIVE) and ratio:
        label = {Verdict.SLOWER: "SLOWER", Verdict.INCONCLUSIVE: "can't tell"}.get(kind, kind.value)
        return f"{label} {ratio}"
    return kind.value


def table_rows(records: Iterable[CaseRecord], comparisons: Sequence[str]) -> list[list[str]]:
    header = ["test", "metric", "median", "spread", "unit", "rate", *[f"vs {c}" for c in comparisons]]
    rows = [header]
    for rec in records:
        test = f"{rec.group}/{rec.test}"
        verdicts = [verdict_cell(rec.verdicts.get(c)) for c in comparisons]
        stats = derive.total_stats(rec)
        if rec.outcome in OUTCOME_LABEL and not stats:
            rows.append([test, OUTCOME_LABEL[rec.outcome], "-", "-", "-", "-", *verdicts])
            continue
        figure = primary_metric(rec)
        if figure is not None:
            name, median, half = figure.name, figure.value, figure.spread
        elif stats:
            name, median, half = "total", stats["median"], derive.spread_of(stats)
        else:
            name, median, half = "total", None, None
        rates = [format_rate(f.value, f.unit) for f in derive.figures(rec).values() if f.better == "higher"]
        flags = "".join([" (warm)" if rec.warm else "",
                         f" [{OUTCOME_LABEL[rec.outcome]}]" if rec.outcome in OUTCOME_LABEL else ""])
        rows.append([test + flags, name, format_seconds(median),
                     "±" + format_seconds(half) if half is not None else "-",
                     "s", ", ".join(rates) or "-", *verdicts])
    return rows


def align_rows(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """A header row and body rows as aligned text, with a rule of dashes under the header; the
    body cells of the columns in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.rjust(w) if i in right and index else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def render_table(records: Sequence[CaseRecord], comparisons: Sequence[str]) -> list[str]:
    """Aligned text lines: test, metric, median, spread (half the IQR of the figure itself, on its
    scale: per movie for a per-movie figure), unit, rate, verdicts."""
    return align_rows(table_rows(records, comparisons), right=frozenset({2, 3}))


def render_notes(records: Sequence[CaseRecord], comparisons: Sequence[str]) -> list[str]:
    """Lines for what needs a word: failures and skips, warm reads, slower verdicts that did not
    fail the case (``--cryobench-no-fail``), and why a reference was not comparable (once each)."""
    notes = outcome_notes(records)
    not_comparable: dict[tuple[str, str], int] = {}
    for rec in records:
        test = f"{rec.group}/{rec.test}"
        if rec.warm and "warm_warning" in rec.info:
            notes.append(f"warm: {rec.info['warm_warning']}")
        for name in comparisons:
            verdict = rec.verdicts.get(name)
            if not verdict:
                continue
            if verdict["verdict"] == Verdict.SLOWER and rec.outcome == "passed":
                notes.append(f"{test} vs {name}: slower (not failed, --cryobench-no-fail): {verdict['detail']}")
            elif verdict["verdict"] == Verdict.NOT_COMPARABLE and verdict.get("detail"):
                key = (name, verdict["detail"])
                not_comparable[key] = not_comparable.get(key, 0) + 1
    for (name, detail), count in not_comparable.items():
        notes.append(f"vs {name}: {count} case(s) not comparable: {detail}")
    notes += load_notes(records)
    return notes


def _wrapped(items: Iterable[str]) -> str:
    """Items as indented lines of at most 100 characters (a CI log stays readable)."""
    import textwrap

    return textwrap.fill(", ".join(items), width=100, initial_indent="  ", subsequent_indent="  ")


def load_notes(records: Sequence[CaseRecord]) -> list[str]:
    """How noisy the run was: the cases during which other processes took more than
    ``LOADED_SHARE`` of the CPUs, and the cases whose rounds never reached the wanted precision."""
    from pytest_cryobench.measure.load import LOADED_SHARE

    loaded = [(f"{r.group}/{r.test}", r.info["other_load"]) for r in records
              if (r.info.get("other_load") or 0) > LOADED_SHARE]
    notes = []
    if loaded:
        worst = max(share for _, share in loaded)
        notes.append(f"machine load: other processes used up to {worst:.0%} of the CPUs during {len(loaded)} "
                     "case(s); their times and verdicts may reflect that: rerun on a quiet machine\n"
                     + _wrapped(name for name, _ in loaded))
    imprecise = [f"{r.group}/{r.test} ({r.info['rounds']['precision']:.0%} after {r.info['rounds']['count']})"
                 for r in records if (r.info.get("rounds") or {}).get("stopped") in ("budget", "max_rounds")
                 and r.info["rounds"].get("precision") is not None]
    if imprecise:
        notes.append("rounds: median known to less than the wanted precision (95% half-width); more rounds "
                     "(--cryobench-rounds N) or a quieter machine narrow it\n" + _wrapped(imprecise))
    return notes


def outcome_notes(records: Sequence[CaseRecord], names_width: int = 160) -> list[str]:
    """One line per distinct reason a case failed or could not run, naming its cases.

    Twenty GPU cases skipped for want of a GPU are one line (``could not run (all 20 gpu cases):
    <the reason>``, or ``(5 cases: gpu/fsc, ... and 2 more)``), not the same reason twenty times;
    the cases' names are cut after about ``names_width`` characters (the table lists every one).
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    for rec in records:
        if rec.reason and rec.outcome != "passed":
            key = (OUTCOME_LABEL.get(rec.outcome, rec.outcome), rec.reason)
            grouped.setdefault(key, []).append(f"{rec.group}/{rec.test}")
    notes = []
    for (label, reason), tests in grouped.items():
        if len(tests) == 1:
            notes.append(f"{tests[0]}: {label}: {reason}")
            continue
        group = tests[0].split("/", 1)[0]
        if all(t.startswith(f"{group}/") for t in tests) and sum(r.group == group for r in records) == len(tests):
            notes.append(f"{label} (all {len(tests)} {group} cases):\n  {reason}")  # one fix, on its own line
            continue
        shown, width = [], 0
        for test in tests:
            if shown and width + len(test) > names_width:
                break
            shown.append(test)
            width += len(test) + 2
        more = f" and {len(tests) - len(shown)} more" if len(shown) < len(tests) else ""
        notes.append(f"{label} ({len(tests)} cases: {', '.join(shown)}{more}):\n  {reason}")
    return notes


def requirement_rows(records: Iterable[CaseRecord]) -> list[list[str]]:
    """Rows of the requirements table: requirement, measured, minimum, recommended, verdict."""
    rows = [["requirement", "measured", "minimum", "recommended", "verdict"]]
    for rec in records:
        req = rec.info.get("requirement")
        if req is None:
            verdict = (Verdict.COULD_NOT_RUN.value if rec.outcome == "skipped"
                       else OUTCOME_LABEL.get(rec.outcome, rec.outcome))
            rows.append([rec.test, "-", "-", "-", verdict])
            continue
        unit = req["unit"]
        rows.append([rec.test, format_value(req["value"], unit), format_value(req["minimum"], unit),
                     format_value(req["recommended"], unit), req["tier"] if rec.outcome != "error" else "ERROR"])
    return rows


def render_requirements(records: Sequence[CaseRecord]) -> list[str]:
    """The requirements table, then one line per case that is not ``pass`` saying why."""
    lines = align_rows(requirement_rows(records))
    notes = []
    not_run: dict[str, list[str]] = {}  # one line per reason: "no GPU" covers many cases
    for rec in records:
        req = rec.info.get("requirement")
        if req is not None and req["tier"] != Verdict.PASS:
            notes.append(f"{rec.test}: {req['tier']}: {req['detail']} [{req['source']}]")
        elif req is None and rec.reason:
            label = Verdict.COULD_NOT_RUN.value if rec.outcome == "skipped" else rec.outcome
            not_run.setdefault(f"{label}: {rec.reason}", []).append(rec.test)
    notes += [f"{', '.join(tests)}: {reason}" for reason, tests in not_run.items()]
    return lines + ([""] + notes if notes else [])


def format_value(value: Any, unit: str = "") -> str:
    """A value for people: versions dotted (tuples, or the lists they become in JSON), booleans
    yes/no, numbers to three significant digits, ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list)):
        return ".".join(str(part) for part in value)
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit and unit not in ("yes/no", "version") else text
