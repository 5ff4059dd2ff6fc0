"""End-to-end runs of the particle filesystem benchmark through pytester (smoke profile)."""

from __future__ import annotations

import csv
import json

import pytest

from pytest_cryobench.record.references import load_result
from tests.helpers import figures_of, leftover_files, load_results

FS_TESTS = ["particle_cache", "particle_sequential_read", "particle_random_read"]


def test_smoke_run_writes_results_and_cleans_up(pytester, particle_args, bench_dirs):
    result = pytester.runpytest(*particle_args, "--cryobench-run-id=first")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*cryobench first (smoke profile)*",
        "test*metric*median*spread*unit*rate*",
        "fs/particle_cache*particle_cache_time*s*MB/s*",
        "fs/particle_sequential_read*particle_sequential_read_time*particles/s*MB/s*",
        "fs/particle_random_read*particle_random_read_time*particles/s*MB/s*",
        "results written:",
        f"*{bench_dirs['out']}/first_fs_benchmark_data.json",
        f"*{bench_dirs['out']}/first_fs_benchmark_data.csv",
    ])
    doc = load_result(bench_dirs["out"] / "first_fs_benchmark_data.json")
    assert doc["type"] == "fs" and list(doc["timings"]) == FS_TESTS
    for test in FS_TESTS:
        assert doc["timings"][test]["total"] > 0
        rounds = doc["tests"][test]["info"]["rounds"]
        assert len(doc["tests"][test]["samples"]["total"]) == rounds["count"]
        assert 3 <= rounds["count"] <= 5 and rounds["stopped"] in ("precise", "budget", "max_rounds")
        assert doc["tests"][test]["checks"]["passed"] is True
        assert doc["tests"][test]["outcome"] == "passed"
    assert doc["tests"]["particle_random_read"]["checks"]["content_particles_checked"] == 2000
    read = doc["tests"]["particle_random_read"]
    assert read["amounts"]["particles"] == 2000 and read["rates"] == ["particles_per_s", "mb_per_s"]
    figures = figures_of(doc, "particle_random_read")
    assert figures["particles_per_s"].unit == "particles/s"
    # a rate is the median of the rounds' rates (docs/design.md), not the amount over the median
    # time: the two differ when an even number of rounds averages the middle pair
    round_rates = sorted(2000 / t for t in read["samples"]["total"])
    middle = len(round_rates) // 2
    median_rate = (round_rates[middle] if len(round_rates) % 2
                   else (round_rates[middle - 1] + round_rates[middle]) / 2)
    assert figures["particles_per_s"].value == pytest.approx(median_rate)
    assert doc["tests"]["particle_random_read"]["tags"]["read_particles"] == ["IO"]
    info = doc["test_info"]
    assert info["profile"] == "smoke" and info["job_params"]["send_data"] is False
    for key in ("platform_node", "cpu_model", "physical_cores", "total_memory", "available_memory",
                "used_memory", "ofd_soft_limit", "ofd_hard_limit", "logical_cores",
                "project_dir_fstype", "cache_dir_fstype", "project_dir_device"):
        assert key in info["instance_information"], key
    rows = list(csv.DictReader((bench_dirs["out"] / "first_fs_benchmark_data.csv").open()))
    assert {(r["test"], r["timing"]) for r in rows} >= {("particle_random_read", "total"),
                                                       ("particle_random_read", "read_particles")}
    # Generated particles are removed from the project and cache dirs; nothing temporary is left.
    assert leftover_files(bench_dirs["project"], bench_dirs["cache"]) == []
    assert not list(bench_dirs["out"].glob("*.tmp"))


def test_keep_data_keeps_particle_files(pytester, particle_args, bench_dirs):
    result = pytester.runpytest(*particle_args, "--cryobench-keep-data", "-k", "sequential")
    result.assert_outcomes(passed=1)
    assert len(list(bench_dirs["project"].rglob("particles_*.mrc"))) == 20
    assert len(list(bench_dirs["cache"].rglob("particles_*.mrc"))) == 20


def test_no_ssd_reads_from_project_dir(pytester, particle_args, bench_dirs):
    args = [a for a in particle_args if not a.startswith("--cryobench-cache-dir")]
    result = pytester.runpytest(*args, "--cryobench-no-ssd")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["fs/particle_cache*could not run*"])
    doc = load_results(bench_dirs["out"])
    assert doc["tests"]["particle_cache"]["outcome"] == "skipped"
    assert "no-ssd" in doc["tests"]["particle_cache"]["reason"]
    assert str(bench_dirs["project"]) in doc["tests"]["particle_random_read"]["info"]["source"]
    assert doc["test_info"]["job_params"]["use_ssd"] is False
    assert leftover_files(bench_dirs["cache"]) == []


def test_rounds_option_sets_rounds(pytester, particle_args, bench_dirs, monkeypatch):
    monkeypatch.setenv("CRYOBENCH_ROUNDS", "2")
    result = pytester.runpytest(*particle_args, "-k", "random")
    result.assert_outcomes(passed=1)
    assert len(load_results(bench_dirs["out"])["tests"]["particle_random_read"]["samples"]["total"]) == 2


def test_warm_reads_are_marked_and_warned(pytester, particle_args, bench_dirs):
    result = pytester.runpytest(*particle_args, "--cryobench-drop-caches=none", "-k", "random")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["fs/particle_random_read (warm)*", "*still in the page cache*"])
    status = load_results(bench_dirs["out"])["tests"]["particle_random_read"]
    assert status["warm"] is True and min(status["residency"]) > 0.5


def test_cold_reads_are_cold(pytester, particle_args, bench_dirs):
    pytester.runpytest(*particle_args).assert_outcomes(passed=3)
    status = load_results(bench_dirs["out"])["tests"]
    for test in FS_TESTS:
        assert status[test]["warm"] is False
        assert max(status[test]["residency"]) < 0.02


def test_save_reference_then_compare(pytester, particle_args, bench_dirs):
    from pytest_cryobench.cli import main

    pytester.runpytest(*particle_args, "--cryobench-run-id=before").assert_outcomes(passed=3)
    ref_path = bench_dirs["out"] / "machine-a.json"
    assert main(["save-reference", str(bench_dirs["out"] / "before_fs_benchmark_data.json"),
                 "--name", "machine-a", "-o", str(ref_path)]) == 0
    ref = json.loads(ref_path.read_text())
    assert ref["profile"] == "smoke" and set(ref["tests"]["fs"]) == set(FS_TESTS)
    assert ref["tests"]["fs"]["particle_random_read"]["info"]["tolerance"] == 1.5
    assert "pytest" in ref["command"]

    # Generous tolerance: a second run on the same machine passes against both.
    result = pytester.runpytest(*particle_args, f"--cryobench-reference={ref_path}",
                                f"--cryobench-baseline={bench_dirs['out'] / 'before_fs_benchmark_data.json'}",
                                "--cryobench-tolerance=50")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*vs machine-a*vs baseline before*",
                                 "fs/particle_random_read*pass*x*pass*x*"])


def _fast_reference(path, profile="smoke", factor=1e-3, backend="none"):
    """A reference whose machine was (impossibly) 1000 times faster than any disk."""
    tests = {t: {"metrics": {f"{t}_time": {"value": factor, "unit": "s", "better": "lower"}}}
             for t in ("particle_sequential_read", "particle_random_read")}
    path.write_text(json.dumps({
        "schema_version": 1, "kind": "cryobench-reference", "name": "fast-machine",
        "profile": profile, "backend": backend, "data": "synthetic",
        "instance_information": {}, "tests": {"fs": tests}}))
    return path


def test_slower_than_reference_fails_the_case(pytester, particle_args, tmp_path, bench_dirs):
    ref = _fast_reference(tmp_path / "fast.json")
    result = pytester.runpytest(*particle_args, f"--cryobench-reference={ref}", "-k", "particle and read")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*SLOWER*", "*slower than fast-machine: particle_*_read_time*x [[]*, *[]] slower*"])
    doc = load_results(bench_dirs["out"])
    verdict = doc["tests"]["particle_random_read"]["verdicts"]["fast-machine"]
    assert verdict["verdict"] == "slower" and verdict["slowdown"] > 10
    assert doc["tests"]["particle_random_read"]["outcome"] == "failed"


def test_no_fail_reports_slower_without_failing(pytester, particle_args, tmp_path):
    ref = _fast_reference(tmp_path / "fast.json")
    result = pytester.runpytest(*particle_args, f"--cryobench-reference={ref}", "-k", "particle and read",
                                "--cryobench-no-fail")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*SLOWER*", "*not failed, --cryobench-no-fail*"])


def test_reference_of_another_profile_is_not_comparable(pytester, particle_args, tmp_path, bench_dirs):
    ref = _fast_reference(tmp_path / "fast.json", profile="full")
    result = pytester.runpytest(*particle_args, f"--cryobench-reference={ref}", "-k", "particle and read")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*not comparable*", "*profile smoke here, full in the reference*"])
    verdicts = load_results(bench_dirs["out"])["tests"]["particle_random_read"]["verdicts"]
    assert verdicts["fast-machine"]["verdict"] == "not comparable"


def test_anonymize_strips_identifying_fields(pytester, particle_args, bench_dirs):
    result = pytester.runpytest(*particle_args, "--cryobench-anonymize", "-k", "random")
    result.assert_outcomes(passed=1)
    text = next(bench_dirs["out"].glob("*_fs_benchmark_data.json")).read_text()
    import platform

    assert platform.node() not in text
    assert str(bench_dirs["project"]) not in text
    assert json.loads(text)["test_info"]["instance_information"]["platform_node"] == "<redacted>"
