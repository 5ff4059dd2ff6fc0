"""Shared fixtures for the plugin's own tests."""

from __future__ import annotations

import os
from pathlib import Path

# pytester's in-process runs forget modules first imported inside them; numpy's C core cannot be
# loaded twice in one process, so the heavy modules are imported once here, outside those runs.
import numpy  # noqa: F401
import pytest
import scipy.ndimage  # noqa: F401

import pytest_cryobench.kernels.fsc  # noqa: F401
import pytest_cryobench.kernels.masks  # noqa: F401
import pytest_cryobench.kernels.nu_filter  # noqa: F401
import pytest_cryobench.kernels.picking  # noqa: F401
import pytest_cryobench.kernels.projection  # noqa: F401
import pytest_cryobench.kernels.rotations  # noqa: F401
import pytest_cryobench.plugin.configure  # noqa: F401


@pytest.fixture(autouse=True)
def _no_outer_cryobench_env(monkeypatch):
    """The tests set every CRYOBENCH_* variable they use themselves."""
    for name in list(os.environ):
        if name == "CRYOBENCH" or name.startswith("CRYOBENCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def bench_dirs(tmp_path: Path) -> dict[str, Path]:
    """Separate data, output and project dirs for one benchmark run."""
    dirs = {name: tmp_path / name for name in ("data", "out", "project", "cache")}
    for name in ("project", "cache"):
        dirs[name].mkdir()
    return dirs


@pytest.fixture
def smoke_args(bench_dirs) -> list[str]:
    """Arguments of a quick, isolated ``pytest --cryobench`` run of the smoke profile."""
    # The --opt=value form: pytest looks for its ini file before plugin options are known, and
    # would take the value of "--opt value" for a path argument.
    return ["--cryobench", "--cryobench-profile=smoke",
            f"--cryobench-data-dir={bench_dirs['data']}",
            f"--cryobench-output={bench_dirs['out']}",
            f"--cryobench-project-dir={bench_dirs['project']}",
            f"--cryobench-cache-dir={bench_dirs['cache']}",
            "-p", "no:cacheprovider"]


@pytest.fixture
def particle_args(smoke_args) -> list[str]:
    """``smoke_args`` selecting the particle cases (a later ``-k`` in a test replaces this one)."""
    return [*smoke_args, "-k", "particle"]


@pytest.fixture
def cupy():
    """CuPy with a reachable CUDA device, or a skip that says why not (the plugin's own probe)."""
    from pytest_cryobench.measure.backend import import_cupy

    module, reason = import_cupy()
    if module is None:
        pytest.skip(f"GPU parity check not run: {reason}")
    return module
