"""Bad input gets one clear message naming the file or option, and nothing is lost (``docs/design.md``, faults)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import leftover_files, load_results


@pytest.mark.parametrize("how, message", [
    ("cli", "*--cryobench-profile: bad value from command line --cryobench-profile: 'huge' is not one of*"),
    ("env", "*--cryobench-profile: bad value from environment variable CRYOBENCH_PROFILE: 'huge'*"),
    ("ini", "*--cryobench-profile: bad value from ini option cryobench_profile: 'huge'*"),
])
def test_bad_option_value_names_its_source(pytester, particle_args, monkeypatch, how, message):
    args = [a for a in particle_args if not a.startswith("--cryobench-profile")]
    if how == "cli":
        args.append("--cryobench-profile=huge")
    elif how == "env":
        monkeypatch.setenv("CRYOBENCH_PROFILE", "huge")
    else:
        pytester.makeini("[pytest]\ncryobench_profile = huge\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_command_line_beats_environment(pytester, particle_args, monkeypatch):
    monkeypatch.setenv("CRYOBENCH_ROUNDS", "0")  # would be an error if it were used
    result = pytester.runpytest(*particle_args, "--cryobench-rounds=1", "--collect-only", "-q")
    assert result.ret == 0


@pytest.mark.parametrize("option, value, words", [
    ("--cryobench-rounds", "0", "must be at least 1"),
    ("--cryobench-tolerance", "0.8", "at least 1.0"),
    ("--cryobench-gpus", "0,x", "GPU indices"),
    ("--cryobench-drop-caches", "always", "is not one of fadvise, sysctl, none"),
])
def test_invalid_values(pytester, particle_args, option, value, words):
    result = pytester.runpytest(*particle_args, f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}*{words}*"])


def test_output_dir_not_writable(pytester, particle_args, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [a for a in particle_args if not a.startswith("--cryobench-output")]
    result = pytester.runpytest(*args, f"--cryobench-output={blocker / 'out'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*output dir (command line --cryobench-output) {blocker / 'out'} cannot be created*"])


def test_project_dir_not_writable(pytester, particle_args, tmp_path, bench_dirs):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = [a for a in particle_args if not a.startswith("--cryobench-project-dir")]
    result = pytester.runpytest(*args, f"--cryobench-project-dir={blocker}")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines([f"*project dir (command line --cryobench-project-dir) {blocker} is not a directory*"])
    assert "Traceback" not in result.stdout.str()
    # The run's record is still written, saying why each case could not run.
    doc = load_results(bench_dirs["out"])
    assert doc["tests"]["particle_random_read"]["outcome"] == "error"
    assert "is not a directory" in doc["tests"]["particle_random_read"]["reason"]


def test_cache_dir_that_does_not_exist(pytester, particle_args, tmp_path, bench_dirs):
    missing = tmp_path / "no-such-ssd"
    args = [a for a in particle_args if not a.startswith("--cryobench-cache-dir")]
    result = pytester.runpytest(*args, f"--cryobench-cache-dir={missing}")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines([f"*cache dir (command line --cryobench-cache-dir) {missing} does not exist*"])
    assert not missing.exists()  # never created behind the user's back
    assert leftover_files(bench_dirs["project"]) == []


def test_not_enough_space_refuses_before_writing(pytester, particle_args, bench_dirs, monkeypatch):
    import shutil

    from pytest_cryobench.measure import fsutil

    real = shutil.disk_usage
    monkeypatch.setattr(fsutil.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=1_000_000))
    result = pytester.runpytest_inprocess(*particle_args, "-k", "random")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*not enough free space in the particle stack's directory*needs 34.*MB*1.00 MB (1000000 bytes) free*"])
    assert leftover_files(bench_dirs["project"]) == []


def test_reference_not_json(pytester, particle_args, tmp_path):
    bad = tmp_path / "ref.json"
    bad.write_text('{"schema_version": 1, "kind": "cryobench-ref')
    result = pytester.runpytest(*particle_args, f"--cryobench-reference={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*reference {bad} is not valid JSON (line 1, column*was it truncated?*"])


def test_reference_failing_schema(pytester, particle_args, tmp_path):
    bad = tmp_path / "ref.json"
    bad.write_text(json.dumps({"schema_version": 1, "kind": "cryobench-reference", "name": "x",
                               "profile": "smoke", "backend": "numpy", "data": "synthetic",
                               "instance_information": {},
                               "tests": {"fs": {"particle_random_read": {"metrics": {"t": {"unit": "s"}}}}}}))
    result = pytester.runpytest(*particle_args, f"--cryobench-reference={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*does not match its schema at tests/fs/particle_random_read/metrics/t: 'value' is a required property*"])


def test_unknown_reference_name_lists_known(pytester, particle_args, bench_dirs):
    refs = bench_dirs["data"] / "references"
    refs.mkdir(parents=True)
    (refs / "lab-ws1.json").write_text("{}")
    result = pytester.runpytest(*particle_args, "--cryobench-reference=h100-x9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cryobench-reference h100-x9: no such file, and no shipped reference of that name (known: *lab-ws1*)*"])


def test_baseline_of_another_schema_version(pytester, particle_args, tmp_path):
    old = tmp_path / "old_fs_benchmark_data.json"
    old.write_text(json.dumps({"schema_version": 99, "kind": "cryobench-result"}))
    result = pytester.runpytest(*particle_args, f"--cryobench-baseline={old}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*baseline*has schema version 99*reads versions 1, 2: it was written by a newer pytest-cryobench; upgrade this one*"])


def test_sysctl_drop_caches_not_permitted(pytester, particle_args, monkeypatch, tmp_path):
    from pytest_cryobench.measure import pagecache

    monkeypatch.setattr(pagecache, "DROP_CACHES_PATH", tmp_path / "no" / "drop_caches")
    result = pytester.runpytest_inprocess(*particle_args, "--cryobench-drop-caches=sysctl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cryobench-drop-caches sysctl needs write access to*use --cryobench-drop-caches fadvise*"])


def test_keyboard_interrupt_in_process_keeps_finished_results(pytester, particle_args, bench_dirs):
    # A plugin, not a conftest: conftest hooks only see items below their own directory.
    pytester.syspathinsert()
    pytester.makepyfile(interrupter="""
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_call(item):
            if "random" in item.name:
                raise KeyboardInterrupt
    """)
    recorder = pytester.inline_run(*particle_args, "-p", "interrupter", no_reraise_ctrlc=True)
    assert recorder.ret == pytest.ExitCode.INTERRUPTED
    doc = load_results(bench_dirs["out"])
    assert set(doc["timings"]) == {"particle_cache", "particle_sequential_read"}
    assert doc["test_info"]["interrupted"] is True
    assert leftover_files(bench_dirs["project"], bench_dirs["cache"]) == []
    assert not list(bench_dirs["out"].glob("*.tmp"))


def test_ctrl_c_signal_leaves_nothing_half_written(tmp_path, bench_dirs, particle_args):
    """A real SIGINT in the middle of a long run (many rounds of the smoke profile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYOBENCH")}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *particle_args, "--cryobench-rounds=100000"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    deadline = time.monotonic() + 60
    while not list(bench_dirs["cache"].rglob("cache-copy/particles_*.mrc")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start copying"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert leftover_files(bench_dirs["project"], bench_dirs["cache"]) == []
    assert not list(bench_dirs["out"].glob("*.tmp")) if bench_dirs["out"].exists() else True
    for path in bench_dirs["out"].glob("*.json") if bench_dirs["out"].exists() else []:
        json.loads(path.read_text())  # complete, parseable
