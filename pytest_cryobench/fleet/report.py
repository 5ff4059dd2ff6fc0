"""``cryobench fleet report``: every node's results as one column each, outliers named, and the
nodes that could not run shown as such, never as slow or fast.

The table is ``cryobench compare``'s (:func:`pytest_cryobench.record.compare.build_table`), with
the fleet's *typical node* as its reference column: the node whose times are, over all cases,
closest to the fleet's median (the smallest sum of ``|time - median| / median``). Its marks are
the usual verdicts against that node; which node is an *outlier* is decided by
:mod:`pytest_cryobench.fleet.outliers` across all nodes at once. With ``--baseline DIR`` each node
is also compared with its own column of an earlier fleet run.
"""

from __future__ import annotations

import dataclasses
import html
import statistics
from collections.abc import Sequence
from pathlib import Path

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.fleet.jobs import JobRecord, read_fleet
from pytest_cryobench.fleet.outliers import MIN_NODES, THRESHOLD, NodeTime, Outlier, find_outliers, sentence
from pytest_cryobench.fleet.submit import refresh
from pytest_cryobench.record import derive
from pytest_cryobench.record.compare import CompareTable, build_table, render_legend, render_text
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.references import Comparison, load_column
from pytest_cryobench.record.verdicts import resolve_tolerance

#: Groups whose cases are judged on their own tiers, not timed against each other.
UNTIMED_GROUPS = ("requirements",)


@dataclasses.dataclass
class NodeResult:
    """One node of the fleet: its job, and its results or why there are none."""

    node: str
    job: JobRecord
    column: Comparison | None
    problem: str | None = None


@dataclasses.dataclass
class FleetReport:
    """Everything ``fleet report`` shows.

    Attributes
    ----------
    out : Path
    nodes : list of NodeResult
        In the fleet's node order.
    table : CompareTable or None
        One column per node with results, the typical node first; ``None`` when no node has results.
    outliers : dict
        ``{(group, test): [Outlier, ...]}`` (:func:`pytest_cryobench.fleet.outliers.find_outliers`).
    judged : int
        Cases that enough nodes measured for the rule to apply.
    baseline : list of (str, CompareTable)
        Per node, its earlier column against this one (``--baseline``).
    """

    out: Path
    nodes: list[NodeResult]
    table: CompareTable | None
    outliers: dict[tuple[str, str], list[Outlier]]
    judged: int
    baseline: list[tuple[str, CompareTable]] = dataclasses.field(default_factory=list)

    @property
    def could_not_run(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.column is None]

    @property
    def baseline_regressions(self) -> list[str]:
        return [f"{node}: {row.group}/{row.test} {detail}" for node, table in self.baseline
                for row, _, detail in table.regressions()]


def node_time(node: str, record: CaseRecord) -> NodeTime | None:
    """The outlier rule's view of one node's case: headline seconds, the low end of their
    confidence interval over rounds, and the sub-timings; ``None`` when the case gave no time or
    a wrong answer."""
    if record.outcome != "passed" or not record.checks_passed:
        return None
    seconds = derive.headline_seconds(record)
    if seconds is None:
        return None
    figure = next((f for f in derive.figures(record).values() if f.unit == "s"), None)
    stats = figure.stats if figure is not None else derive.total_stats(record)
    low = seconds
    if stats and stats.get("ci_low") is not None:
        low = float(stats["ci_low"])
    elif stats and derive.spread_of(stats) is not None:
        low = seconds - derive.spread_of(stats)
    return NodeTime(node, seconds, min(low, seconds), derive.timings(record), record.tags)


def load_node(out: Path, job: JobRecord) -> NodeResult:
    """A node's results as a column named after the node, or why it has none."""
    files = sorted((out / job.node).glob("*_benchmark_data.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        why = job.reason or job.state.lower().replace("_", " ")
        if job.state == "COMPLETED":
            why = f"the job completed but wrote no result files; see {job.stdout}"
        return NodeResult(job.node, job, None, f"{job.state.lower().replace('_', ' ')}: {why}"
                          if job.reason else why)
    try:
        column = load_column(str(files[-1]))  # the newest run; its other group files come along
    except CryobenchError as exc:
        return NodeResult(job.node, job, None, f"results unreadable: {exc}")
    return NodeResult(job.node, job, dataclasses.replace(column, name=job.node))


def typical_node(columns: Sequence[Comparison]) -> int:
    """Index of the column closest to the fleet median over all cases (see the module docstring)."""
    keys = {key for column in columns for key in column.tests if key[0] not in UNTIMED_GROUPS}
    distance = [0.0] * len(columns)
    for key in keys:
        times = [(i, derive.headline_seconds(column.tests[key])) for i, column in enumerate(columns)
                 if key in column.tests]
        times = [(i, t) for i, t in times if t]
        if len(times) < 2:
            continue
        median = statistics.median(t for _, t in times)
        for i, t in times:
            distance[i] += abs(t - median) / median
    return min(range(len(columns)), key=lambda i: distance[i])


def fleet_outliers(columns: Sequence[Comparison], tolerance: float | None) -> tuple[dict, int]:
    """Outliers of every timed case, and how many cases had enough nodes to judge."""
    cases: dict[tuple[str, str], list[NodeTime]] = {}
    tolerances: dict[tuple[str, str], float] = {}
    for column in columns:
        for key, record in column.tests.items():
            if key[0] in UNTIMED_GROUPS:
                continue
            time_here = node_time(column.name, record)
            if time_here is not None:
                cases.setdefault(key, []).append(time_here)
                tolerances.setdefault(key, resolve_tolerance(tolerance, None, record.tolerance))
    judged = sum(1 for times in cases.values() if len(times) >= MIN_NODES)
    return find_outliers(cases, tolerances), judged


def build_fleet_report(out: Path, *, tolerance: float | None = None, detail: bool = False,
                       baseline: Path | None = None) -> FleetReport:
    """Read a fleet directory (job states refreshed from SLURM where it answers) and compare its nodes.

    Raises
    ------
    FleetError
        ``out`` (or ``baseline``) holds no fleet run.
    """
    out = Path(out)
    read_fleet(out)
    nodes = [load_node(out, job) for job in refresh(out)]
    columns = [n.column for n in nodes if n.column is not None]
    if not columns:
        return FleetReport(out, nodes, None, {}, 0)
    reference = typical_node(columns)
    ordered = [columns[reference], *[c for i, c in enumerate(columns) if i != reference]]
    table = build_table(ordered, 0, tolerance=tolerance, detail=detail)
    outliers, judged = fleet_outliers(columns, tolerance)
    report = FleetReport(out, nodes, table, outliers, judged)
    if baseline is not None:
        read_fleet(Path(baseline))
        earlier = {n.node: n.column for n in (load_node(Path(baseline), job) for job in refresh(Path(baseline)))
                   if n.column is not None}
        for column in columns:
            if column.name in earlier:
                before = dataclasses.replace(earlier[column.name], name=f"{column.name} (baseline)")
                report.baseline.append((column.name, build_table([before, column], 0, tolerance=tolerance)))
    return report


def outlier_lines(report: FleetReport) -> list[str]:
    """One sentence per outlier (``n07: particle_random_read 2.4x the fleet median; IO``), slowest
    first, with the sub-timing that grew; or why none is named."""
    with_results = len(report.nodes) - len(report.could_not_run)
    if with_results < MIN_NODES:
        return [f"outliers: not judged: {with_results} node(s) with results; the rule needs at least {MIN_NODES}"]
    if not report.outliers:
        return [f"outliers: none ({report.judged} case(s) on {with_results} nodes; a node is named when "
                f"(low - median) / (1.4826 MAD) > {THRESHOLD} and low / median > the tolerance)"]
    found = sorted(((test, o) for (_, test), outs in report.outliers.items() for o in outs), key=lambda p: -p[1].factor)
    lines = [f"outliers: {len(found)} (of {report.judged} case(s) on {with_results} nodes):"]
    for test, outlier in found:
        grew = (f" ({outlier.timing} +{outlier.grew_s:.3g} s over its fleet median; score {outlier.score:.1f})"
                if outlier.timing else f" (score {outlier.score:.1f})")
        lines.append(f"  {sentence(test, outlier)}{grew}")
    return lines


def could_not_run_lines(report: FleetReport) -> list[str]:
    if not report.could_not_run:
        return []
    return ["could not run (not compared):"] + [f"  {n.node}: {n.problem}" for n in report.could_not_run]


def render_fleet_text(report: FleetReport) -> list[str]:
    """The whole report as text: the compare table, the outliers, the nodes that could not run."""
    fleet = read_fleet(report.out)
    lines = [f"Fleet {report.out}: {len(report.nodes)} node(s) of partition {fleet.get('partition')}, "
             f"{len(report.nodes) - len(report.could_not_run)} with results"]
    if report.table is not None:
        lines += ["", f"reference column: {report.table.columns[0].name}, the typical node (times closest to the "
                      "fleet median)", *render_text(report.table), "", *render_legend(report.table)]
    lines += ["", *outlier_lines(report)]
    failed_cases = [n for n in report.nodes if n.column is not None and n.job.state == "FAILED"]
    lines += [f"note: {n.node}: {n.job.reason} (some cases failed; the others are compared)" for n in failed_cases]
    lines += could_not_run_lines(report)
    for node, table in report.baseline:
        lines += ["", f"{node} against its baseline:", *render_text(table)]
    if report.baseline:
        regressions = report.baseline_regressions
        lines += ["", f"{len(regressions)} test(s) slower than their node's baseline" + (":" if regressions else "")]
        lines += [f"  {r}" for r in regressions]
    return lines


def write_fleet_html(report: FleetReport, path: Path, title: str) -> Path:
    """The single-run HTML report of the node table, with the fleet's findings at its top."""
    from pytest_cryobench.measure.fsutil import atomic_write
    from pytest_cryobench.record.html import render_html

    if report.table is None:
        raise CryobenchError("no node has results: nothing to draw")
    page = render_html(report.table, title)
    items = outlier_lines(report) + could_not_run_lines(report) + [
        f"slower than its baseline: {r}" for r in report.baseline_regressions]
    section = ("<section id='fleet'><h2>Fleet</h2><ul>"
               + "".join(f"<li>{html.escape(item.strip())}</li>" for item in items) + "</ul></section>")
    marker = "</h1>"
    at = page.index(marker) + len(marker)
    with atomic_write(Path(path)) as handle:
        handle.write(page[:at] + "\n" + section + page[at:])
    return Path(path)
