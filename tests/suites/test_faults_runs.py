"""Run ids and work dirs: unique default ids, dirs of killed runs removed (and said), an id in use
refused, an id reused in the same output dir warned about. Other processes are real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pytest_cryobench.plugin.claims import OWNER_NAME
from pytest_cryobench.plugin.session import new_run_id


def _holder(code: str) -> subprocess.Popen:
    """A child process that runs ``code`` (which takes a lock), prints ``ready`` and waits."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code) + "\nprint('ready', flush=True)\n"
                              "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def _stop(child: subprocess.Popen) -> None:
    child.stdin.close()
    child.wait(timeout=10)


def test_default_ids_of_runs_started_in_the_same_second_differ(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(time, "strftime", lambda fmt: "cb20240101-000000")
    child = _holder(f"""
        import time
        from pathlib import Path
        from pytest_cryobench.plugin.session import new_run_id
        time.strftime = lambda fmt: "cb20240101-000000"
        run_id, claim, _ = new_run_id(Path({str(tmp_path)!r}), None)
        assert run_id == "cb20240101-000000", run_id
    """)
    try:
        run_id, claim, warnings = new_run_id(tmp_path, None)
        assert run_id == "cb20240101-000000-2" and warnings == []
        again, claim2, _ = new_run_id(tmp_path, None)
        assert again == "cb20240101-000000-3"
        claim.release()
        claim2.release()
    finally:
        _stop(child)
    run_id, claim, _ = new_run_id(tmp_path, None)  # the first run has ended: its id is free again
    assert run_id == "cb20240101-000000"
    claim.release()
    assert not list(tmp_path.iterdir())


def test_requested_id_of_a_run_going_now_is_refused(pytester, particle_args, bench_dirs):
    bench_dirs["out"].mkdir()
    child = _holder(f"""
        from pathlib import Path
        from pytest_cryobench.plugin.session import new_run_id
        new_run_id(Path({str(bench_dirs["out"])!r}), "nightly")
    """)
    try:
        result = pytester.runpytest(*particle_args, "--cryobench-run-id=nightly")
    finally:
        _stop(child)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--cryobench-run-id nightly: a run with this id is going in {bench_dirs['out']} "
                                 f"(pid {child.pid} on *); choose another id*"])
    assert "Traceback" not in result.stderr.str() and not list(bench_dirs["out"].glob("nightly_*"))


def test_work_dir_of_a_killed_run_is_removed_and_said(pytester, particle_args, bench_dirs):
    user_dir = bench_dirs["project"] / "cryobench-notes"  # not one of ours: no owner file
    user_dir.mkdir()
    (user_dir / "todo.txt").write_text("keep me\n")
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from pytest_cryobench.plugin.claims import claim_work_dir
        path, claim, _ = claim_work_dir(Path({str(bench_dirs["project"])!r}), "cb20240101-000000")
        (path / "particles").mkdir()
        (path / "particles" / "particles_00000.mrc").write_bytes(bytes(1 << 20))
        print(os.getpid(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    pid = killed.stdout.strip()
    stale = bench_dirs["project"] / "cryobench-cb20240101-000000"
    assert (stale / OWNER_NAME).is_file()
    result = pytester.runpytest(*particle_args, "-k", "sequential", "--cryobench-run-id=cb20240101-000000")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"WARNING: removed {stale}, left by a run that ended without cleaning up "
                                 f"(pid {pid} on *)"])
    assert not stale.exists()
    assert (user_dir / "todo.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in bench_dirs["project"].iterdir()) == ["cryobench-notes"]


def test_reused_run_id_in_the_same_output_dir_is_warned_about(pytester, particle_args, bench_dirs):
    pytester.runpytest(*particle_args, "-k", "sequential", "--cryobench-run-id=same").assert_outcomes(passed=1)
    first = (bench_dirs["out"] / "same_fs_benchmark_data.json").read_bytes()
    result = pytester.runpytest(*particle_args, "-k", "sequential", "--cryobench-run-id=same")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["WARNING: --cryobench-run-id same was used before in *: this run replaces*"])
    assert (bench_dirs["out"] / "same_fs_benchmark_data.json").read_bytes() != first
    assert not [p for p in bench_dirs["out"].iterdir() if p.name.startswith(".")]  # the id's lock is gone


def test_kept_work_dir_is_not_taken_for_a_dead_run(pytester, particle_args, bench_dirs):
    pytester.runpytest(*particle_args, "-k", "sequential", "--cryobench-run-id=kept",
                       "--cryobench-keep-data").assert_outcomes(passed=1)
    kept = bench_dirs["project"] / "cryobench-kept"
    assert kept.is_dir() and not (kept / OWNER_NAME).exists()
    result = pytester.runpytest(*particle_args, "-k", "sequential", "--cryobench-run-id=next")
    result.assert_outcomes(passed=1)
    assert kept.is_dir() and "removed" not in result.stdout.str()
    os.stat(kept)
