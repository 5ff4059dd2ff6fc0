"""A run's rounds, noise and verdicts as a user meets them: adaptive rounds and why they stopped,
``inconclusive`` that fails only with ``--cryobench-strict``, and a run whose results could not be
written failing instead of staying green (``docs/design.md``, verdicts)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

SUITE = textwrap.dedent("""
    import time

    import pytest

    pytestmark = pytest.mark.cpu

    @pytest.mark.cryobench_name("sleepy")
    def test_sleepy(benchmark, cryobench_case):
        def work(st):
            time.sleep(0.004)
        cryobench_case.measure(benchmark, work, rounds=3)
        cryobench_case.headline("sleepy_time")
""")


def _suite(pytester):
    return str(pytester.makepyfile(bench_trust=SUITE))


def _case(out, run_id):
    return json.loads((out / f"{run_id}_cpu_benchmark_data.json").read_text())["tests"]["sleepy"]


def test_rounds_are_adaptive_and_say_why_they_stopped(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest_subprocess(*smoke_args, _suite(pytester), "--cryobench-run-id=adaptive",
                                           "--benchmark-json=bench.json")
    result.assert_outcomes(passed=1)
    case = _case(bench_dirs["out"], "adaptive")
    rounds = case["info"]["rounds"]
    assert 3 <= rounds["count"] <= 5 == rounds["max"]  # the smoke profile's bounds; the case's own 3 the minimum
    assert rounds["stopped"] in ("precise", "budget", "max_rounds")
    assert len(case["samples"]["total"]) == rounds["count"]
    assert 0.0 <= case["info"]["other_load"] <= 1.0
    # pytest-benchmark's statistics hold exactly the rounds the record holds
    (bench,) = json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    assert bench["stats"]["rounds"] == rounds["count"]


def test_fixed_rounds_are_exact(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest_subprocess(*smoke_args, _suite(pytester), "--cryobench-run-id=fixed",
                                           "--cryobench-rounds=4")
    result.assert_outcomes(passed=1)
    rounds = _case(bench_dirs["out"], "fixed")["info"]["rounds"]
    assert (rounds["count"], rounds["stopped"]) == (4, "fixed")


def test_one_round_against_one_round_is_inconclusive_and_fails_only_when_strict(pytester, smoke_args, bench_dirs):
    suite = _suite(pytester)
    first = pytester.runpytest_subprocess(*smoke_args, suite, "--cryobench-run-id=one", "--cryobench-rounds=1")
    first.assert_outcomes(passed=1)
    baseline = str(bench_dirs["out"] / "one_cpu_benchmark_data.json")
    lenient = pytester.runpytest_subprocess(*smoke_args, suite, "--cryobench-run-id=two", "--cryobench-rounds=1",
                                            f"--cryobench-baseline={baseline}")
    lenient.assert_outcomes(passed=1)
    lenient.stdout.fnmatch_lines(["*cpu/sleepy*can't tell *x [[]*, *[]]*"])
    verdict = _case(bench_dirs["out"], "two")["verdicts"]
    (judged,) = verdict.values()
    assert judged["verdict"] == "inconclusive" and "rounds" in judged["advice"]
    strict = pytester.runpytest_subprocess(*smoke_args, suite, "--cryobench-run-id=three", "--cryobench-rounds=1",
                                           f"--cryobench-baseline={baseline}", "--cryobench-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*cannot tell (--cryobench-strict) against*"])


def test_a_run_id_too_long_for_the_filesystem_is_refused_before_any_case(pytester, smoke_args):
    result = pytester.runpytest_subprocess(*smoke_args, _suite(pytester), "--cryobench-run-id=" + "r" * 240)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cryobench-run-id is 240 characters*use at most * characters*"])


NAN_SUITE = textwrap.dedent("""
    import pytest

    pytestmark = pytest.mark.cpu

    @pytest.mark.cryobench_name("measured_nothing")
    def test_measured_nothing(cryobench_case):
        cryobench_case.record.samples = {"total": [float("nan")]}
        cryobench_case.headline("nothing_time")
""")


def test_results_that_cannot_be_written_fail_the_run(pytester, smoke_args, bench_dirs):
    path = pytester.makepyfile(bench_nan=NAN_SUITE)
    result = pytester.runpytest_subprocess(*smoke_args, str(path), "--cryobench-run-id=nan")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the case "passed", but nothing was saved
    result.stdout.fnmatch_lines(["*ERROR: could not write the cpu results to *NaN*"])
    assert not list(bench_dirs["out"].glob("nan_cpu_*"))  # no half-written file either


@pytest.fixture
def full_output(tmp_path):
    """An output dir on a 1 MiB tmpfs, filled to the last byte (a real full disk)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        out = mount / "out"
        out.mkdir()
        with open(mount / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError:
                pass
        yield out
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_output_disk_fails_the_run(pytester, smoke_args, full_output):
    args = [a for a in smoke_args if not a.startswith("--cryobench-output=")]
    result = pytester.runpytest_subprocess(*args, _suite(pytester), f"--cryobench-output={full_output}",
                                           "--cryobench-run-id=full", "--cryobench-rounds=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR: could not write the cpu results to *No space left on device*"])
    left = sorted(p.name for p in full_output.iterdir())
    assert not [name for name in left if name.endswith(".tmp") or "_benchmark_data" in name], left  # no half file
