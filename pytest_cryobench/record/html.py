"""``cryobench report --html``: one self-contained HTML page of runs and references.

The page carries its data as JSON and draws its charts as inline SVG with a short script: no
file, font or script is fetched, so it opens offline and can be mailed as it is. Per group it
shows

- a bar chart per test: each column's time, scaled to the slowest column of that test, with the
  speedup against the reference and the verdict mark;
- the sub-timing breakdown: per test and column, a bar split into sub-timings coloured by their
  component tag (CPU, GPU, PCIe, Alloc, IO);
- the compare table's figures and verdicts;
- for the ``workflow`` group, the chain as a timeline per column: its steps one after another,
  each as long as it took;

then the instance information of every column side by side. When the script has drawn every
chart it sets ``data-charts-rendered`` on the ``<html>`` element to their number (the browser test
reads it).
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

from pytest_cryobench import __version__
from pytest_cryobench.measure.fsutil import atomic_write
from pytest_cryobench.measure.timing import TAGS
from pytest_cryobench.record.compare import MARK_LABEL, CompareTable, describe

INSTANCE_KEYS = (
    "platform_node", "platform_release", "platform_architecture", "cpu_model", "physical_cores",
    "logical_cores", "total_memory", "ofd_soft_limit", "ofd_hard_limit", "python_version", "numpy_version",
    "cupy_version", "nvidia_driver_version", "cuda_driver_version", "gpus", "project_dir_fstype",
    "project_dir_device", "cache_dir_fstype", "cache_dir_device",
)


def _instance_value(value: Any) -> str:
    if isinstance(value, list):
        if value and all(isinstance(item, dict) for item in value):
            return "; ".join(" ".join(str(item.get(k)) for k in ("name", "bus_id") if item.get(k)) for item in value)
        return ", ".join(str(item) for item in value)
    return "" if value is None else str(value)


def report_data(table: CompareTable, title: str) -> dict[str, Any]:
    """The page's data: columns, groups with their tests, cells and sub-timings, instance rows."""
    columns = [{"name": c.name, "kind": c.kind, "reference": i == table.reference, "about": describe(c)}
               for i, c in enumerate(table.columns)]
    groups = []
    for group in table.groups:
        tests = []
        for row in table.rows:
            if row.group != group:
                continue
            cells = [{"seconds": cell.seconds, "spread": cell.spread, "pct": cell.pct, "speedup": cell.speedup,
                      "interval": cell.interval, "text": cell.text, "mark": cell.mark,
                      "label": MARK_LABEL.get(cell.mark, cell.mark),
                      "detail": cell.detail}
                     for cell in row.cells]
            if row.timing is None:
                tests.append({"test": row.test, "cells": cells, "subs": []})
            else:
                tests[-1]["subs"].append({"name": row.timing, "tags": row.tags,
                                          "seconds": [cell.seconds for cell in row.cells]})
        groups.append({"group": group, "tests": tests})
    infos = [c.meta.get("instance_information") if isinstance(c.meta.get("instance_information"), dict) else {}
             for c in table.columns]
    keys = [k for k in INSTANCE_KEYS if any(k in info for info in infos)]
    keys += sorted({k for info in infos for k in info} - set(keys))
    instance = [{"key": k, "values": [_instance_value(info.get(k)) for info in infos]} for k in keys]
    return {"title": title, "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "version": __version__, "columns": columns, "groups": groups, "instance": instance,
            "tags": TAGS, "notes": table.notes(),
            "regressions": [f"{row.group}/{row.test} in {name}: {detail}" for row, name, detail in table.regressions()]}





_ASSETS = Path(__file__).with_name("report_assets")


def render_html(table: CompareTable, title: str = "pytest-cryobench report") -> str:
    """The whole page as a string (see the module docstring); the style sheet and the script of
    ``report_assets/`` are inlined."""
    data = report_data(table, title)
    style = (_ASSETS / "report.css").read_text(encoding="utf-8")
    script = (_ASSETS / "report.js").read_text(encoding="utf-8").replace("</", "<\\/")
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    esc = html.escape
    columns = "".join(f"<li><b>{esc(c['name'])}</b>{' (reference)' if c['reference'] else ''}: {esc(c['about'])}</li>"
                      for c in data["columns"])
    head_cells = "".join(f"<th>{esc(c['name'])}</th>" for c in data["columns"])
    instance = "".join(f"<tr><td class='l'>{esc(row['key'])}</td>"
                       + "".join(f"<td class='l'>{esc(v)}</td>" for v in row["values"]) + "</tr>"
                       for row in data["instance"])
    notes = "".join(f"<li>{esc(n)}</li>" for n in data["notes"])
    regressions = "".join(f"<li>{esc(r)}</li>" for r in data["regressions"])
    verdict = (f"<p class='slower'>{len(data['regressions'])} test(s) slower than the reference beyond the "
               f"tolerance:</p><ul>{regressions}</ul>" if regressions
               else "<p>No test is slower than the reference beyond the tolerance.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title><style>{style}</style></head>
<body>
<h1>{esc(title)}</h1>
<p class="muted">pytest-cryobench {esc(data['version'])}, written {esc(data['generated'])}. Speedup is the
reference's time divided by the column's time: above 1 the column is faster.</p>
<ul>{columns}</ul>
{verdict}
{f"<h3>Notes</h3><ul>{notes}</ul>" if notes else ""}
<noscript><p class="slower">The charts and tables per group are drawn by the page's own script; allow
JavaScript for this file, or read the figures with <code>cryobench compare</code>.</p></noscript>
<div id="groups"></div>
<h2>Instance information</h2>
<table class="instance"><tr><th class="l">field</th>{head_cells}</tr>{instance}</table>
<script type="application/json" id="cryobench-data">{payload}</script>
<script>{script}</script>
</body></html>
"""


def write_html(table: CompareTable, path: Path, title: str = "pytest-cryobench report") -> Path:
    """Write the page atomically."""
    with atomic_write(Path(path)) as handle:
        handle.write(render_html(table, title))
    return Path(path)
