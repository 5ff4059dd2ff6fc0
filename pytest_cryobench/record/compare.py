"""``cryobench compare``: runs and references side by side, as the guide's Benchmark viewer shows them.

One column per run or reference with three figures per test:

``Time``
    the test's headline time in seconds (its first metric in seconds; else its ``total``);
``Pct``
    that time's share of the column's total over the group's tests; on a sub-timing row
    (``--detail``), the sub-timing's share of its test's total;
``Speedup``
    reference time / time: above 1 the column is faster than the chosen reference.

Each test cell of a column other than the reference carries a mark from the verdicts of
:mod:`pytest_cryobench.record.verdicts` (the same rules the plugin applies): ``SLOWER`` (beyond the
tolerance: the exit status is 1), ``faster``, ``n/c`` (not comparable: another profile, backend or
data, or not measured there) and ``could not run``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pytest_cryobench.measure.timing import TAGS
from pytest_cryobench.record import derive
from pytest_cryobench.record.derive import headline_seconds
from pytest_cryobench.record.model import GROUPS, CaseRecord
from pytest_cryobench.record.references import Comparison
from pytest_cryobench.record.text import format_seconds
from pytest_cryobench.record.verdicts import Judgement, Verdict, interval_text, judge, resolve_tolerance

#: A cell's mark: ``"ref"`` on the reference column, ``""`` on sub-timing rows, else a Verdict.
REF_MARK = "ref"
MARK_LABEL = {Verdict.SLOWER: "SLOWER", Verdict.FASTER: "faster", Verdict.NOT_COMPARABLE: "n/c",
              Verdict.COULD_NOT_RUN: "could not run", Verdict.PASS: "", Verdict.CHECKS_FAILED: "CHECKS FAILED",
              Verdict.ABSENT: "-", Verdict.BELOW_RECOMMENDED: "below recommended",
              Verdict.BELOW_MINIMUM: "BELOW MINIMUM", Verdict.INCONCLUSIVE: "can't tell"}
CHANGED = frozenset({Verdict.SLOWER, Verdict.FASTER, Verdict.CHECKS_FAILED})
NOT_JUDGED = frozenset({Verdict.NOT_COMPARABLE, Verdict.COULD_NOT_RUN, Verdict.ABSENT})


@dataclasses.dataclass
class Cell:
    """One column's figures on one row.

    Attributes
    ----------
    seconds : float or None
        The time (s); ``None`` when the column has no figure here.
    spread : float or None
        Half the IQR of that time over its rounds, seconds, on the same scale (``None`` unknown).
    pct : float or None
        Share in percent (see the module docstring).
    speedup : float or None
        Reference time / time; ``None`` where not comparable or on the reference itself.
    mark : str
        ``"ref"`` on the reference column; otherwise a verdict (``pass``, ``slower``, ``faster``,
        ``not comparable``, ``could not run``), ``checks failed`` or ``absent``; ``""`` on
        sub-timing rows.
    detail : str
        Why, in words (from the verdict).
    text : str or None
        A requirement's measured value, shown instead of a time.
    interval : (float or None, float or None) or None
        Confidence interval of ``speedup`` from the verdict (``None`` for an unbounded end); ``None``
        when the verdict had no samples to make one.
    """

    seconds: float | None = None
    spread: float | None = None
    pct: float | None = None
    speedup: float | None = None
    mark: str = ""
    detail: str = ""
    text: str | None = None
    interval: tuple[float | None, float | None] | None = None


@dataclasses.dataclass
class Row:
    """A test (``timing is None``) or, with ``--detail``, one of its sub-timings."""

    group: str
    test: str
    timing: str | None
    tags: list[str]
    cells: list[Cell]

    @property
    def label(self) -> str:
        return self.test if self.timing is None else f"  {self.timing}"


@dataclasses.dataclass
class CompareTable:
    """The whole comparison, shared by the text table and the HTML report.

    Attributes
    ----------
    columns : list of Comparison
        Runs and references in the order given.
    reference : int
        Index of the column speedups and marks are computed against.
    tolerance : float or None
        ``--tolerance`` if given (else each test's own, else 1.25).
    rows : list of Row
        Group by group (``fs``, ``cpu``, ``gpu``, ...), tests in the reference's order, then the
        tests only other columns have.
    """

    columns: list[Comparison]
    reference: int
    tolerance: float | None
    rows: list[Row]

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(row.group for row in self.rows))

    def regressions(self) -> list[tuple[Row, str, str]]:
        """``(row, column name, detail)`` of every test cell marked slower."""
        return [(row, self.columns[i].name, cell.detail) for row in self.rows if row.timing is None
                for i, cell in enumerate(row.cells) if cell.mark == Verdict.SLOWER]

    def notes(self) -> list[str]:
        """Why columns were not comparable or could not run (each reason once per column)."""
        seen: dict[tuple[str, str, str], int] = {}
        for row in self.rows:
            if row.timing is not None:
                continue
            for column, cell in zip(self.columns, row.cells, strict=True):
                if cell.mark in (Verdict.NOT_COMPARABLE, Verdict.COULD_NOT_RUN, Verdict.CHECKS_FAILED) and cell.detail:
                    key = (column.name, MARK_LABEL[cell.mark], cell.detail)
                    seen[key] = seen.get(key, 0) + 1
        return [f"{name}: {count} test(s) {label}: {detail}" for (name, label, detail), count in seen.items()]


def _test_order(columns: Sequence[Comparison], reference: int) -> list[tuple[str, str]]:
    ordered = [columns[reference], *[c for i, c in enumerate(columns) if i != reference]]
    keys = list(dict.fromkeys(key for column in ordered for key in column.tests))
    rank = {group: i for i, group in enumerate(GROUPS)}
    return sorted(keys, key=lambda key: rank.get(key[0], len(GROUPS)))  # stable: keeps test order


def _requirement_cell(entry: CaseRecord | None, column: Comparison) -> Cell:
    """A requirement is judged on its own tiers, not against the reference: the cell shows the
    measured value and the tier it reached."""
    from pytest_cryobench.record.text import format_value

    if entry is None:
        return Cell(mark=Verdict.ABSENT, detail=f"{column.name} has no such requirement")
    req = entry.info.get("requirement")
    if req is None:
        return Cell(mark=Verdict.COULD_NOT_RUN, detail=entry.reason or "it did not run")
    return Cell(mark=Verdict(req["tier"]), detail=req.get("detail", ""), text=format_value(req["value"], req["unit"]))


def _spread_seconds(entry: CaseRecord | None) -> float | None:
    """Half the IQR of the time :func:`headline_seconds` shows, on its scale."""
    if entry is None:
        return None
    figure = next((f for f in derive.figures(entry).values() if f.unit == "s"), None)
    if figure is not None:
        return figure.spread
    return derive.spread_of(derive.total_stats(entry))


def _test_cell(group: str, test: str, entry: CaseRecord | None, column: Comparison, ref: Comparison,
               is_reference: bool, tolerance: float | None, group_total: float) -> Cell:
    if group == "requirements":
        return _requirement_cell(entry, column)
    seconds = headline_seconds(entry)
    pct = 100.0 * seconds / group_total if seconds is not None and group_total > 0 else None
    if entry is None:
        return Cell(mark=Verdict.ABSENT, detail=f"{column.name} has no such test")
    spread = _spread_seconds(entry)
    if is_reference:
        return Cell(seconds, spread, pct, None, REF_MARK)
    ref_entry = ref.entry(group, test)
    verdict = _verdict(entry, column, ref, ref_entry, tolerance)
    mark = verdict.verdict
    if mark in (Verdict.PASS, Verdict.SLOWER, Verdict.FASTER) and not entry.checks_passed:
        mark = Verdict.CHECKS_FAILED
    ref_seconds = headline_seconds(ref_entry)
    speedup = None
    if mark not in NOT_JUDGED and seconds and ref_seconds:
        speedup = ref_seconds / seconds
    detail = verdict.detail
    if mark == Verdict.CHECKS_FAILED:
        detail = "its known-answer checks failed: the time is of a wrong answer"
    return Cell(seconds, spread, pct, speedup, mark, detail, interval=_speedup_interval(verdict, speedup))


def _speedup_interval(verdict: Judgement, speedup: float | None) -> tuple[float | None, float | None] | None:
    """The verdict's interval of the slowdown as one of the speedup (its reciprocal, ends swapped)."""
    if speedup is None or verdict.interval is None:
        return None
    low, high = verdict.interval
    return (1.0 / high if 0 < high < float("inf") else None, 1.0 / low if low > 0 else None)


def _verdict(entry: CaseRecord, column: Comparison, ref: Comparison, ref_entry: CaseRecord | None,
             tolerance: float | None) -> Judgement:
    """The plugin's verdict of ``column``'s test against the reference column, with "here" in
    its words naming the column."""
    verdict = judge(run=entry, run_context=column.context, ref_context=ref.context, ref=ref_entry,
                    tolerance=resolve_tolerance(tolerance, ref_entry, entry.tolerance))
    if verdict.verdict == Verdict.NOT_COMPARABLE:
        verdict = dataclasses.replace(verdict, detail=verdict.detail.replace(" here,", f" in {column.name},"))
    return verdict


def build_table(columns: Sequence[Comparison], reference: int = 0, *, tolerance: float | None = None,
                detail: bool = False, only_changed: bool = False) -> CompareTable:
    """Compute every cell of the comparison.

    Parameters
    ----------
    columns : sequence of Comparison
        Runs and references (see :func:`pytest_cryobench.record.references.load_column`).
    reference : int
        Index of the column to compare against.
    tolerance : float, optional
        Allowed slowdown ratio; default each test's own tolerance, else 1.25.
    detail : bool
        Add a row per sub-timing after each test, with its component tags.
    only_changed : bool
        Keep only tests where some column is slower, faster, or its checks failed (with their
        sub-timing rows).
    """
    columns = list(columns)
    ref = columns[reference]
    keys = _test_order(columns, reference)
    totals = {(i, group): sum(s for s in (headline_seconds(c.entry(g, t)) for g, t in keys if g == group) if s)
              for i, c in enumerate(columns) for group in {g for g, _ in keys}}
    rows: list[Row] = []
    for group, test in keys:
        cells = []
        for i, column in enumerate(columns):
            cells.append(_test_cell(group, test, column.entry(group, test), column, ref, i == reference,
                                    tolerance, totals[(i, group)]))
        if only_changed and not any(cell.mark in CHANGED for cell in cells):
            continue
        entries = [column.entry(group, test) for column in columns]
        rows.append(Row(group, test, None, [], cells))
        if detail:
            rows.extend(_sub_rows(group, test, entries, reference, cells))
    return CompareTable(columns, reference, tolerance, rows)


def _sub_rows(group: str, test: str, entries: list[CaseRecord | None], reference: int,
              test_cells: list[Cell]) -> list[Row]:
    medians = [derive.timings(e) if e is not None else {} for e in entries]
    names = list(dict.fromkeys(name for m in medians for name in m if name != "total"))
    rows = []
    ref_timings = medians[reference]
    for name in names:
        tags = next((list(e.tags[name]) for e in entries if e is not None and name in e.tags), [])
        cells = []
        for i, timings in enumerate(medians):
            seconds = timings.get(name)
            total = timings.get("total")
            pct = 100.0 * seconds / total if seconds is not None and total else None
            speedup = None
            comparable = test_cells[i].mark not in NOT_JUDGED
            if i != reference and comparable and seconds and ref_timings.get(name):
                speedup = ref_timings[name] / seconds
            cells.append(Cell(seconds, None, pct, speedup))
        rows.append(Row(group, test, name, tags, cells))
    return rows


def _speedup_text(cell: Cell) -> str:
    if cell.text is not None:
        return MARK_LABEL.get(cell.mark, cell.mark) or cell.mark
    if cell.mark == REF_MARK:
        return REF_MARK
    label = MARK_LABEL.get(cell.mark, cell.mark)
    if cell.speedup is None:
        return label or "-"
    text = f"{cell.speedup:.2f}x{interval_text(cell.interval)}"
    return f"{text} {label}" if label else text


def _time_text(cell: Cell) -> str:
    if cell.text is not None:
        return cell.text
    return "-" if cell.seconds is None else format_seconds(cell.seconds)


def _pct_text(cell: Cell) -> str:
    return "-" if cell.pct is None else f"{cell.pct:.1f}%"


def render_text(table: CompareTable) -> list[str]:
    """The table as aligned text lines: a header per column (its name spanning Time, Pct and
    Speedup), one block per group, then the legend and notes."""
    detail = any(row.timing is not None for row in table.rows)
    lead = ["test", "tags"] if detail else ["test"]
    header2 = [*lead]
    for _ in table.columns:
        header2 += ["Time (s)", "Pct", "Speedup"]
    body: list[list[str] | str] = []
    for group in table.groups:
        body.append(f"[{group}]")
        if group == "requirements":  # judged on their own tiers: the value measured and the tier reached
            body.append(["", *([""] if detail else []), *(["Measured", "", "Verdict"] * len(table.columns))])
        for row in table.rows:
            if row.group != group:
                continue
            cells = [row.label] + ([",".join(row.tags)] if detail else [])
            for cell in row.cells:
                cells += [_time_text(cell), _pct_text(cell), _speedup_text(cell) if row.timing is None
                          else ("-" if cell.speedup is None else f"{cell.speedup:.2f}x")]
            body.append(cells)
    grid = [header2] + [line for line in body if isinstance(line, list)]
    widths = [max(len(r[i]) for r in grid) for i in range(len(header2))]
    # A column's name spans its three sub-columns; widen the last one if the name is longer.
    for index, column in enumerate(table.columns):
        first = len(lead) + 3 * index
        span = sum(widths[first:first + 3]) + 4
        title = column.name + (" (reference)" if index == table.reference else "")
        if len(title) > span:
            widths[first + 2] += len(title) - span
    right = {i for i in range(len(lead), len(header2)) if (i - len(lead)) % 3 != 2}  # Time, Pct

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    titles = ["".ljust(widths[i]) for i in range(len(lead))]
    for index, column in enumerate(table.columns):
        first = len(lead) + 3 * index
        span = sum(widths[first:first + 3]) + 4
        titles.append((column.name + (" (reference)" if index == table.reference else "")).ljust(span))
    lines = ["  ".join(titles).rstrip(), line(header2), "  ".join("-" * w for w in widths)]
    for item in body:
        lines.append(item if isinstance(item, str) else line(item))
    return lines


def render_legend(table: CompareTable) -> list[str]:
    """What each column is, how to read the table, and why cells were not comparable."""
    ref = table.columns[table.reference]
    tol = f"{table.tolerance:.2f}x" if table.tolerance is not None else "each test's own, default 1.25x"
    lines = [f"Speedup = {ref.name} time / time (above 1: faster than the reference), with its 99% "
             f"interval from both sides' rounds; SLOWER: beyond the tolerance ({tol}) and significantly so; "
             "can't tell: the rounds' spread is too wide to decide; n/c = not comparable."]
    for column in table.columns:
        lines.append(f"  {column.name}: {describe(column)}")
    tags = sorted({tag for row in table.rows for tag in row.tags})
    if tags:
        lines.append("Tags (the component a sub-timing depends on most): "
                     + "; ".join(f"{tag} = {TAGS.get(tag, tag)}" for tag in tags) + ".")
    lines += [f"  note: {note}" for note in table.notes()]
    return lines


def machine_summary(info: Any) -> str:
    """``"AMD EPYC, 2 cores, 2 x NVIDIA H100"`` from an ``instance_information`` block."""
    info = info if isinstance(info, dict) else {}
    machine = info.get("cpu_model") or "unknown CPU"
    if info.get("physical_cores"):
        machine += f", {info['physical_cores']} cores"
    gpus = [g.get("name") for g in info.get("gpus") or [] if isinstance(g, dict) and g.get("name")]
    if gpus:
        machine += f", {len(gpus)} x {gpus[0]}"
    return machine


def date_of(when: Any, missing: str = "undated") -> str:
    """``YYYY-MM-DD`` (UTC) of a ``created_at`` timestamp; ``missing`` when there is none usable."""
    import time

    if isinstance(when, bool) or not isinstance(when, (int, float)):
        return missing
    try:
        return time.strftime("%Y-%m-%d", time.gmtime(when))
    except (OverflowError, OSError, ValueError):
        return missing


def what_ran(column: Comparison) -> str:
    """``"numpy backend"``, ``"cupy backend"``; for a run of filesystem and CPU cases only (no
    array backend chosen: ``"none"``), what did run: ``"CPU only, 16 threads"``."""
    backend = column.context.get("backend")
    if backend not in (None, "none"):
        return f"{backend} backend"
    threads = [rec.info["threads"] for rec in column.tests.values()
               if isinstance(rec.info.get("threads"), int) and not isinstance(rec.info.get("threads"), bool)]
    info = column.meta.get("instance_information")
    cores = info.get("logical_cores") if isinstance(info, dict) else None
    count = max(threads) if threads else cores
    return f"CPU only, {count} threads" if isinstance(count, int) and count > 0 else "CPU only"


def describe(column: Comparison) -> str:
    """One line on where a column's figures came from: kind, profile, backend, data, machine, date."""
    ctx = column.context
    return (f"{column.kind}, {ctx.get('profile')} profile, {what_ran(column)}, {ctx.get('data')} data; "
            f"{machine_summary(column.meta.get('instance_information'))}; {date_of(column.meta.get('created_at'))}; "
            f"{column.path.name}")
