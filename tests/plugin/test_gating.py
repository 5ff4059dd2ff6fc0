"""Without --cryobench the plugin changes nothing; with it, the bundled suites are collected."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_installed_but_off_changes_nothing(pytester):
    pytester.makepyfile(test_own=textwrap.dedent("""
        import sys

        def test_one():
            loaded = sorted(m for m in sys.modules if m.startswith("pytest_cryobench"))
            assert loaded == ["pytest_cryobench", "pytest_cryobench.plugin", "pytest_cryobench.plugin.hooks",
                              "pytest_cryobench.plugin.options"], loaded
            assert "cupy" not in sys.modules
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*bench_fs_particles*")
    result.stdout.no_fnmatch_line("*cryobench cb*")


def test_plugin_import_is_standard_library_only():
    code = ("import sys; import pytest_cryobench.plugin.hooks; "
            "bad = [m for m in ('numpy', 'cupy', 'psutil', 'mrcfile', 'jsonschema') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    # pytest itself is imported by plugin.py; measure only what our modules add on top of it.
    code = "import pytest; " + code
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cryobench_flag_collects_suites_from_empty_dir(pytester, smoke_args):
    result = pytester.runpytest(*smoke_args, "--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "*bench_fs_particles.py::test_particle_cache",
        "*bench_fs_particles.py::test_particle_sequential_read",
        "*bench_fs_particles.py::test_particle_random_read",
    ])
    assert result.ret == 0


def test_environment_and_ini_switch_it_on(pytester, smoke_args, monkeypatch):
    args = [a for a in smoke_args if a != "--cryobench"]
    monkeypatch.setenv("CRYOBENCH", "1")
    result = pytester.runpytest(*args, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_particle_random_read"])
    monkeypatch.delenv("CRYOBENCH")
    pytester.makeini("[pytest]\ncryobench = true\n")
    result = pytester.runpytest(*args, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_particle_random_read"])


def test_markers_and_k_select_cases(pytester, smoke_args):
    result = pytester.runpytest(*smoke_args, "--collect-only", "-q", "-m", "gpu")
    result.stdout.no_fnmatch_line("*test_particle*")
    result = pytester.runpytest(*smoke_args, "--collect-only", "-q", "-k", "random")
    result.stdout.fnmatch_lines(["*test_particle_random_read"])
    result.stdout.no_fnmatch_line("*test_particle_cache*")


def test_explicit_paths_are_kept(pytester, smoke_args):
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = pytester.runpytest(*smoke_args, "test_mine.py")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*test_particle*")
