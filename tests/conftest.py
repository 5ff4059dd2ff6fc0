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


_CUPY: list = []  # (module or None, reason): probed once per test session


def cupy_or_reason():
    """CuPy if it imports and the plugin's device probe passes on the current device, else
    ``(None, why not)``; asked once per session."""
    if not _CUPY:
        from pytest_cryobench.measure.backend import GpuInfo, import_cupy
        from pytest_cryobench.measure.gpu_probe import probe_devices

        module, reason = import_cupy()
        if module is not None:
            reason = probe_devices(module, [GpuInfo(0, "the current device", "", 0)])
            module = module if reason is None else None
        _CUPY.append((module, reason))
    return _CUPY[0]


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    """The array namespace a known-answer test runs on: NumPy always, CuPy where it imports and a
    device works (else that parameter skips with the reason), as SciPy's ``xp`` fixture does."""
    if request.param == "numpy":
        return numpy
    module, reason = cupy_or_reason()
    if module is None:
        pytest.skip(f"CuPy backend not run: {reason}")
    return module


@pytest.fixture
def cupy():
    """CuPy with a reachable CUDA device, or a skip that says why not (the plugin's own probe)."""
    module, reason = cupy_or_reason()
    if module is None:
        pytest.skip(f"GPU check not run: {reason}")
    return module


class Mounts:
    """Real filesystems for the fault tests: a small tmpfs (a disk that fills), a read-only bind
    mount (write-protected storage). Everything mounted is unmounted at teardown, even on failure."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def _mount(self, *args: str) -> None:
        import subprocess

        done = subprocess.run(["mount", *args], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mounting is not allowed here (mount {' '.join(args)}: {done.stderr.strip()}); "
                        "the fault tests need root with CAP_SYS_ADMIN, as in .ci/run")

    def tmpfs(self, where: Path, size: str) -> Path:
        """Mount a tmpfs of ``size`` (e.g. ``"8m"``) on ``where`` (created)."""
        where.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
        self.mounted.append(where)
        return where

    def read_only(self, where: Path) -> Path:
        """Make ``where`` read-only in place (a bind mount of itself, remounted ``ro``)."""
        self._mount("--bind", str(where), str(where))
        self.mounted.append(where)
        self._mount("-o", "remount,ro,bind", str(where))
        return where

    def unmount_all(self) -> None:
        import subprocess

        for where in reversed(self.mounted):
            subprocess.run(["umount", str(where)], capture_output=True)
            if os.path.ismount(where):
                subprocess.run(["umount", "-l", str(where)], capture_output=True)
        self.mounted.clear()


@pytest.fixture
def mounts() -> Mounts:
    """:class:`Mounts`, or a skip saying why where this process may not mount (not root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root (CAP_SYS_ADMIN); the fault tests run in .ci/run, which has it")
    made = Mounts()
    try:
        yield made
    finally:
        made.unmount_all()
