"""The host-link and all-GPU cases without a GPU: pcie_* and all_gpus_engine could not run (and say
why), numa_affinity reports the host's topology."""

from __future__ import annotations

from tests.helpers import load_results


def test_pcie_and_all_gpus_could_not_run_on_numpy(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-k", "pcie or all_gpus", "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*pcie_h2d[[]cpu[]]*could not run*", "*SKIPPED*needs a GPU and CuPy*"])
    tests = load_results(bench_dirs["out"], "gpu")["tests"]
    assert set(tests) == {"pcie_h2d[cpu]", "pcie_d2h[cpu]", "all_gpus_engine"}
    for status in tests.values():
        assert status["outcome"] == "skipped" and "NumPy backend" in status["reason"]


def test_numa_affinity_reports_the_hosts_topology(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "-m", "requirements", "-k", "numa_affinity",
                                "--cryobench-backend=numpy")
    result.assert_outcomes(passed=1)
    doc = load_results(bench_dirs["out"], "requirements")
    info = doc["tests"]["numa_affinity"]["info"]
    assert info["thread_cpus"] >= 1 and isinstance(info["numa_nodes"], dict)
    assert info["gpus"] == [] or all("numa_node" in g for g in info["gpus"])
