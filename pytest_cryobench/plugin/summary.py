"""The terminal summary of a run: the table, notes, requirement checks and the files written."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cryobench.plugin.session import RUN_KEY
from pytest_cryobench.record.text import render_notes, render_requirements, render_table


def terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(RUN_KEY, None)
    if state is None:
        return
    tr = terminalreporter
    tr.write_sep("=", f"cryobench {state.run_id} ({state.settings.profile} profile)")
    benchmark = [r for r in state.records if r.group != "requirements"]
    requirements = [r for r in state.records if r.group == "requirements"]
    if not state.records:
        tr.write_line("no benchmark case ran")
    if benchmark:
        names = [c.name for c in state.comparisons]
        for line in render_table(benchmark, names):
            tr.write_line(line)
        notes = render_notes(benchmark, names)
        if notes:
            tr.write_line("")
            for note in notes:
                tr.write_line(note)
    if requirements:
        if benchmark:
            tr.write_line("")
        for line in render_requirements(requirements):
            tr.write_line(line)
    if state.requirements_not_asked:
        tr.write_line(f"({state.requirements_not_asked} hardware requirement checks not run: add -m requirements, "
                      "or run cryobench requirements)")
    for warning in state.warnings:
        tr.write_line(f"WARNING: {warning}", yellow=True)
    for problem in state.problems:
        tr.write_line(f"ERROR: {problem}", red=True)
    if state.written:
        tr.write_line("")
        tr.write_line("results written:")
        for path in state.written:
            tr.write_line(f"  {path}")
    if state.interrupted:
        tr.write_line("run interrupted: the result files hold the cases that finished", yellow=True)
