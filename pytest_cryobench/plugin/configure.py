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


