"""``pytest_configure`` once ``--cryobench`` is on: resolve the settings, check what can be checked
before any case runs, and point pytest at the bundled suites (design: data flow, steps 2-3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.locations import bundled_dir
from pytest_cryobench.measure import pagecache
from pytest_cryobench.measure.fsutil import ensure_writable_dir
from pytest_cryobench.plugin import fixtures
from pytest_cryobench.plugin.options import OptionError
from pytest_cryobench.plugin.session import RUN_KEY, RunState, command_line, new_run_id
from pytest_cryobench.plugin.settings import build_settings
from pytest_cryobench.record.references import load_baseline, load_reference

MARKERS = {
    "fs": "filesystem benchmarks: movie and particle reads (pytest-cryobench)",
    "cpu": "CPU benchmarks: movie decompression (pytest-cryobench)",
    "gpu": "GPU benchmarks: FSC, filter estimation, picking, engine (pytest-cryobench)",
    "requirements": "hardware requirement checks (pytest-cryobench)",
    "workflow": "whole-workflow benchmarks (pytest-cryobench)",
    "cryobench_name(template)": "name of the case in result files, formatted with its parameters",
    "cryobench_tolerance(ratio)": "the case's own allowed slowdown ratio against a reference (noisier IO cases)",
}


def suites_dir() -> Path:
    """The bundled ``bench_suites`` folder."""
    path = bundled_dir("bench_suites")
    if path is None:
        raise pytest.UsageError("pytest-cryobench is installed without its bench_suites: reinstall it")
    return path


# The longest result file name a run id is part of: <run-id>_requirements_benchmark_data.json
_LONGEST_SUFFIX = len("_requirements_benchmark_data.json") + len("..XXXXXXXX.tmp")  # atomic_write's temporary name


def check_run_id_fits(run_id: str, output: Path) -> None:
    """Refuse, before any case runs, a run id whose result file names the output dir's filesystem
    cannot hold (what the run would otherwise find out only when writing them at the end)."""
    try:
        limit = os.pathconf(output if output.exists() else output.parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = len(run_id.encode()) + _LONGEST_SUFFIX
    if longest > limit:
        raise CryobenchError(f"--cryobench-run-id is {len(run_id)} characters: its result files' names would be "
                             f"{longest} bytes, over the {limit} that {output} allows; use at most "
                             f"{limit - _LONGEST_SUFFIX} characters")


def _quiet_pytest_benchmark_table(config: pytest.Config, asked: bool) -> None:
    """pytest-benchmark's own table repeats ours in other units: shown only when asked for, by
    ``--cryobench-pytest-benchmark-table`` or any ``--benchmark-*`` option (runs before
    pytest-benchmark reads its options)."""
    given = any(str(arg).startswith("--benchmark-") for arg in config.invocation_params.args)
    if not asked and not given and hasattr(config.option, "benchmark_quiet"):
        config.option.benchmark_quiet = True


def configure(config: pytest.Config) -> None:
    """Resolve options, check what can be checked before any case runs, register fixtures."""
    try:
        settings = build_settings(config.getoption, config.getini, os.environ,
                                  config.invocation_params.dir,
                                  Path(config.inipath).parent if config.inipath is not None else None)
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    claim = None
    try:
        ensure_writable_dir(settings.output, f"output dir ({settings.sources['output']})")
        if settings.run_id is not None:  # default ids are short; a requested one is checked before it is claimed
            check_run_id_fits(settings.run_id, settings.output)
        run_id, claim, run_id_warnings = new_run_id(settings.output, settings.run_id)
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
        if claim is not None:
            claim.release()
        raise pytest.UsageError(str(exc)) from None
    names = [c.name for c in comparisons]
    if len(set(names)) != len(names):
        if claim is not None:
            claim.release()
        raise pytest.UsageError(f"--cryobench-reference: the same reference is given twice ({names})")
    state = RunState(settings=settings, run_id=run_id, command=command_line(), comparisons=comparisons,
                     warnings=run_id_warnings, claims=[claim] if claim is not None else [])
    config.stash[RUN_KEY] = state
    _quiet_pytest_benchmark_table(config, settings.pytest_benchmark_table)
    for marker, text in MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
    config.pluginmanager.register(fixtures, "cryobench-fixtures")
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(suites_dir())]


