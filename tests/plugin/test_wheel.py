"""Installed from a wheel, the bundled suites are collected from an empty directory."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory) -> Path:
    """A virtual environment with the wheel installed, whose dependencies are those of the
    interpreter running the tests.

    ``system_site_packages=True`` would show the *base* interpreter's packages, which on a fresh
    machine have none of the dependencies. Instead a ``.pth`` file appends this interpreter's own
    site-packages after the new venv's: the wheel's copy of the package is found first, and the
    ``.pth`` files of the running environment (its editable install) are not processed there.
    """
    where = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: setuptools would reuse a stale build/ folder of the checkout.
    source = where / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", ".venv*", ".tox", "__pycache__", "*.egg-info", "cryobench-results"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(where / "dist"), str(source)]
    if all(importlib.util.find_spec(m) is not None for m in ("setuptools", "wheel")):
        build.insert(5, "--no-build-isolation")
    subprocess.run(build, check=True, capture_output=True)
    wheel = next((where / "dist").glob("pytest_cryobench-*.whl"))
    venv.create(where / "venv", system_site_packages=False, with_pip=False)
    python = where / "venv" / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    Path(target, "_cryobench_test_dependencies.pth").write_text("".join(f"{path}\n" for path in ours))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    str(wheel)], check=True, capture_output=True)
    return python


def test_wheel_ships_suites_schemas_and_references(wheel_python, tmp_path):
    code = ("import pytest_cryobench, pytest_cryobench.plugin.configure as r, pytest_cryobench.locations as l; "
            "print(pytest_cryobench.__file__); print(r.suites_dir()); print(l.bundled_dir('references'))")
    out = subprocess.run([str(wheel_python), "-c", code], cwd=tmp_path, check=True, capture_output=True,
                         text=True).stdout.split()
    venv_dir = str(wheel_python.parent.parent)
    assert all(line.startswith(venv_dir) for line in out), out
    assert (Path(out[1]) / "bench_fs_particles.py").is_file()
    assert Path(out[0]).parent.joinpath("record", "schemas").joinpath("reference-1.schema.json").is_file()
    assert Path(out[0]).parent.joinpath("record", "report_assets").joinpath("report.js").is_file()
    assert sorted(p.name for p in Path(out[2]).glob("*.json")) == [
        "ci-2core-epyc-numpy-smoke.json", "ci-2core-epyc-numpy-standard.json",
        "ci-2core-xeon-numpy-smoke.json", "ci-2core-xeon-numpy-standard.json"]


def test_wheel_collects_suites_in_empty_dir(wheel_python, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run([str(wheel_python), "-m", "pytest", "--cryobench", "--collect-only", "-q",
                           "-p", "no:cacheprovider", f"--cryobench-data-dir={tmp_path / 'data'}",
                           f"--cryobench-output={tmp_path / 'out'}"],
                          cwd=empty, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bench_fs_particles.py::test_particle_random_read" in proc.stdout
    assert "bench_fs_movies.py::test_movie_read[eer]" in proc.stdout
    assert "bench_cpu_decompress.py::test_decompress[tiff]" in proc.stdout
