"""The work behind the plugin's hooks, once ``--cryobench`` is on.

``plugin.py`` stays a thin list of hooks that call into this module, so that a project which
merely has the plugin installed imports none of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.locations import bundled_dir
from pytest_cryobench.measure import pagecache
from pytest_cryobench.measure.backend import make_backend, select_gpus
from pytest_cryobench.measure.fsutil import ensure_writable_dir
from pytest_cryobench.measure.machine import instance_information
from pytest_cryobench.plugin import fixtures
from pytest_cryobench.plugin.options import OptionError
from pytest_cryobench.plugin.session import RunState, build_test_info, command_line, new_run_id
from pytest_cryobench.plugin.settings import build_settings
from pytest_cryobench.plugin.stash import CASE_KEY, RUN_KEY
from pytest_cryobench.record.model import CaseRecord, group_document, write_group
from pytest_cryobench.record.references import load_baseline, load_reference
from pytest_cryobench.record.text import render_notes, render_requirements, render_table
from pytest_cryobench.record.verdicts import Verdict, judge, resolve_tolerance

MARKERS = {
    "fs": "filesystem benchmarks: movie and particle reads (pytest-cryobench)",
    "cpu": "CPU benchmarks: movie decompression (pytest-cryobench)",
    "gpu": "GPU benchmarks: FSC, filter estimation, picking, engine (pytest-cryobench)",
    "requirements": "hardware requirement checks (pytest-cryobench)",
    "workflow": "whole-workflow benchmarks (pytest-cryobench)",
    "cryobench_name(template)": "name of the case in result files, formatted with its parameters",
}
_DONE = pytest.StashKey[bool]()


def suites_dir() -> Path:
    """The bundled ``bench_suites`` folder."""
    path = bundled_dir("bench_suites")
    if path is None:
        raise pytest.UsageError("pytest-cryobench is installed without its bench_suites: reinstall it")
    return path


def configure(config: pytest.Config) -> None:
    """Resolve options, check what can be checked before any case runs, register fixtures."""
    try:
        settings = build_settings(config.getoption, config.getini, os.environ,
                                  config.invocation_params.dir)
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        ensure_writable_dir(settings.output, f"output dir ({settings.sources['output']})")
        run_id = new_run_id(settings.output, settings.run_id)
        if settings.drop_caches == "sysctl":
            pagecache.check_sysctl_permitted()
        if settings.data is not None:
            from pytest_cryobench.data.layout import validate, validation_error

            problems = validate(settings.data, check_movies=False)
            if problems:
                raise CryobenchError(validation_error(settings.data, problems))
        search = [settings.data_dir / "references", bundled_dir("references")]
        comparisons = [load_reference(spec, search) for spec in settings.references]
        if settings.baseline is not None:
            comparisons.append(load_baseline(settings.baseline))
    except (CryobenchError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    names = [c.name for c in comparisons]
    if len(set(names)) != len(names):
        raise pytest.UsageError(f"--cryobench-reference: the same reference is given twice ({names})")
    state = RunState(settings=settings, run_id=run_id, command=command_line(), comparisons=comparisons)
    config.stash[RUN_KEY] = state
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    config.pluginmanager.register(fixtures, "cryobench-fixtures")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(suites_dir())]


def collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` of the bundled suites (pytest's own patterns would skip them)."""
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest's python plugin collects it
    try:
        file_path.relative_to(suites_dir())
    except ValueError:
        return None
    return pytest.Module.from_parent(parent, path=file_path)


def parametrize_devices(metafunc: pytest.Metafunc) -> None:
    """Run cases that use ``cryobench_device`` once per selected GPU, or once on the CPU."""
    if "cryobench_device" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash[RUN_KEY]
    s = state.settings
    if s.backend == "numpy":
        metafunc.parametrize("cryobench_device", ["cpu"], scope="function")
        return
    metafunc.parametrize("cryobench_device", _gpu_labels(state), scope="function")


def _gpu_labels(state: RunState) -> list[str]:
    """``gpu0``, ``gpu1``, ... of the selected GPUs NVML lists; ``gpu`` alone when there is none
    (its cases then say why they could not run)."""
    try:
        gpus = select_gpus(state.inventory, state.settings.gpus)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return [f"gpu{g.index}" for g in gpus] or ["gpu"]


def parametrize_gpus(metafunc: pytest.Metafunc) -> None:
    """Run requirement cases that use ``cryobench_gpu`` once per selected GPU that NVML lists,
    whatever the array backend (``gpu`` alone when there is none: the case says why)."""
    if "cryobench_gpu" not in metafunc.fixturenames:
        return
    metafunc.parametrize("cryobench_gpu", _gpu_labels(metafunc.config.stash[RUN_KEY]), scope="function")


def deselect_unasked_requirements(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The requirements suite answers another question than the benchmark: it runs only when asked
    for by marker (``-m requirements``, as ``cryobench requirements`` does)."""
    if "requirements" in (config.option.markexpr or ""):
        return
    named = {Path(arg.split("::")[0]).resolve() for arg in config.args}  # a module given by path asks for it
    keep, drop = [], []
    for item in items:
        asked = Path(item.path).resolve() in named
        (drop if item.get_closest_marker("requirements") is not None and not asked else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config.stash[RUN_KEY].requirements_not_asked = len(drop)


def backend_for(state: RunState, device_label: str):
    """The backend of one case, or ``pytest.skip`` with the reason no GPU can be used."""
    if device_label == "cpu":
        return make_backend("numpy", None)
    plan = state.backend_plan
    if plan.backend is None:
        pytest.skip(plan.skip_reason)
    device = next(d for d in plan.devices if f"gpu{d.index}" == device_label)
    return make_backend("cupy", device)


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
        tolerance_default = None
    else:
        record = case.record
        failed_checks = case.failed_checks
        tolerance_default = case.tolerance
    record.outcome = outcome
    record.reason = reason
    if tolerance_default is not None:
        record.info["tolerance"] = tolerance_default
    run_context = state.context()
    for comparison in state.comparisons:
        entry = comparison.entry(record.group, record.test)
        verdict = judge(run=record, run_context=run_context, ref_context=comparison.context, ref=entry,
                        tolerance=resolve_tolerance(state.settings.tolerance, entry, tolerance_default))
        record.verdicts[comparison.name] = verdict.to_json()
    state.records.append(record)
    if case is not None and getattr(case, "benchmark", None) is not None:
        # pytest-benchmark keeps its own statistics of the rounds; the figures are in the result
        # files: say which case this is and how it was judged.
        case.benchmark.extra_info.update({"cryobench_case": f"{record.group}/{record.test}",
                                          "cryobench_verdicts": record.verdicts})
    if outcome != "passed":
        return None
    if failed_checks:
        record.outcome = "failed"
        lead = "below the minimum requirement: " if record.group == "requirements" else "wrong answer: "
        record.reason = lead + "; ".join(c.removeprefix("minimum: ") for c in failed_checks)
        return record.reason
    slower = [f"{name}: {v['detail']}" for name, v in record.verdicts.items() if v["verdict"] == Verdict.SLOWER]
    if slower and not state.settings.no_fail:
        record.outcome = "failed"
        record.reason = "slower than " + "; ".join(slower)
        return record.reason
    return None


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
            record.outcome = "failed"
            record.reason = _reason(report)
        elif report.skipped:
            record.outcome, record.reason = "skipped", _reason(report)


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2])
        return text[len("Skipped: "):] if text.startswith("Skipped: ") else text
    lines = [line for line in report.longreprtext.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else report.outcome


def finish_run(session: pytest.Session, exitstatus: int) -> None:
    """Write the result files (also after Ctrl-C) and remove this run's generated data."""
    state = session.config.stash.get(RUN_KEY, None)
    if state is None:
        return
    state.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    try:
        if state.records:
            _write_results(state)
    finally:
        if not state.settings.keep_data:
            from pytest_cryobench.data.particles import remove_tree

            for directory in state.work_dirs:
                remove_tree(directory)


def _write_results(state: RunState) -> None:
    from pytest_cryobench.record.anonymize import anonymize_document

    s = state.settings
    info = instance_information(s.project_dir, s.cache_dir, state.inventory)
    test_info = build_test_info(state, info)
    groups: dict[str, list[CaseRecord]] = {}
    for record in state.records:
        groups.setdefault(record.group, []).append(record)
    for group, records in groups.items():
        doc = group_document(group, records, test_info, state.run_id)
        if s.anonymize:
            doc = anonymize_document(doc)
        try:
            state.written.extend(write_group(s.output, doc))
        except OSError as exc:
            state.problems.append(f"could not write the {group} results to {s.output}: {exc.strerror}")


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
    for problem in state.problems:
        tr.write_line(f"ERROR: {problem}", red=True)
    if state.written:
        tr.write_line("")
        tr.write_line("results written:")
        for path in state.written:
            tr.write_line(f"  {path}")
    if state.interrupted:
        tr.write_line("run interrupted: the result files hold the cases that finished", yellow=True)
