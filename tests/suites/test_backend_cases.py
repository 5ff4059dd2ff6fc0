"""GPU cases: skipped with a reason where no GPU is usable, run on NumPy when asked."""

from __future__ import annotations

import textwrap

import pytest

from pytest_cryobench.measure.backend import query_gpus

GPU_CASE = textwrap.dedent("""
    import pytest

    @pytest.mark.gpu
    def test_sum(cryobench_backend, cryobench_case, benchmark):
        xp = cryobench_backend.xp
        data = xp.arange(1_000_000, dtype=xp.float64)
        result = []
        cryobench_case.measure(benchmark, lambda st: result.append(float(data.sum())), rounds=2,
                               warmup_rounds=1)
        cryobench_case.check("sum", result[-1] == 999_999 * 1_000_000 / 2, "wrong sum")
        cryobench_case.metric("sum_time", cryobench_case.stats["median"], "s")
""")

no_gpu = pytest.mark.skipif(bool(query_gpus().gpus), reason="this machine has a GPU")


@no_gpu
def test_gpu_case_without_gpu_is_skipped_with_reason(pytester, smoke_args, bench_dirs):
    pytester.makepyfile(test_gpu_case=GPU_CASE)
    result = pytester.runpytest(*smoke_args, "test_gpu_case.py", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["gpu/sum[[]gpu[]]*could not run*",
                                 "*SKIPPED*no usable GPU*run them on the CPU with --cryobench-backend numpy*"])
    from tests.helpers import load_results

    status = load_results(bench_dirs["out"], "gpu")["tests"]["sum[gpu]"]
    assert status["outcome"] == "skipped" and "no usable GPU" in status["reason"]


@no_gpu
def test_cupy_backend_requested_without_gpu(pytester, smoke_args):
    pytester.makepyfile(test_gpu_case=GPU_CASE)
    result = pytester.runpytest(*smoke_args, "test_gpu_case.py", "-rs", "--cryobench-backend=cupy")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*no usable GPU*"])


def test_numpy_backend_runs_gpu_cases_on_cpu(pytester, smoke_args, bench_dirs):
    pytester.makepyfile(test_gpu_case=GPU_CASE)
    # a fixed count: the warm-up round is not among the samples
    result = pytester.runpytest(*smoke_args, "test_gpu_case.py", "--cryobench-backend=numpy", "--cryobench-rounds=2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gpu/sum[[]cpu[]]*sum_time*"])
    from tests.helpers import load_results

    doc = load_results(bench_dirs["out"], "gpu")
    assert doc["test_info"]["backend"] == "numpy"
    assert doc["tests"]["sum[cpu]"]["checks"]["passed"] is True
    assert len(doc["tests"]["sum[cpu]"]["samples"]["total"]) == 2


def test_wrong_answer_fails_whatever_the_speed(pytester, smoke_args, bench_dirs):
    pytester.makepyfile(test_gpu_case=GPU_CASE.replace("999_999 * 1_000_000 / 2", "42"))
    result = pytester.runpytest(*smoke_args, "test_gpu_case.py", "--cryobench-backend=numpy")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wrong answer: sum: wrong sum*"])


def test_out_of_memory_fails_only_that_case(pytester, smoke_args, bench_dirs):
    pytester.makepyfile(test_gpu_case=GPU_CASE + textwrap.dedent("""

        @pytest.mark.gpu
        def test_huge(cryobench_backend, cryobench_case, benchmark):
            def allocate(st):
                raise MemoryError("Out of memory allocating 17,179,869,184 bytes (allocated so far: 0 bytes)")
            cryobench_case.measure(benchmark, allocate, rounds=1)
    """))
    result = pytester.runpytest(*smoke_args, "test_gpu_case.py", "--cryobench-backend=numpy")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*gpu/huge[[]cpu[]] ran out of host memory (Out of memory allocating 17,179,869,184 bytes*"
                                 "the other cases still run*"])
    assert "Traceback" not in result.stdout.str()
    from tests.helpers import load_results

    doc = load_results(bench_dirs["out"], "gpu")
    assert doc["tests"]["huge[cpu]"]["outcome"] == "failed"
    assert doc["tests"]["sum[cpu]"]["outcome"] == "passed"
    assert doc["tests"]["sum[cpu]"]["info"]["device"] == "cpu"
