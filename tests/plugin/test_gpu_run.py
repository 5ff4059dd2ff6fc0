"""GPU workloads run on the NumPy backend through pytester (smoke profile), as CI runs them."""

from __future__ import annotations

from tests.conftest import load_results


def test_nu_filter_estimation_finds_both_band_limits(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-k", "matched_cv")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gpu/matched_cv_filter_estimation[[]cpu[]]*voxel-candidates/s*"])
    doc = load_results(bench_dirs["out"], "gpu")
    test = "matched_cv_filter_estimation[cpu]"
    checks = doc["checks"][test]
    assert checks["passed"] is True
    assert checks["region1_core_band_limit_found_A"] == 4.5 and checks["region2_core_band_limit_found_A"] == 9.0
    assert doc["tags"][test]["put_maps_on_gpu"] == ["PCIe"] and doc["tags"][test]["fft"] == ["GPU"]
    assert doc["status"][test]["info"]["n_fft"] > 100
    assert doc["test_info"]["backend"] == "numpy"


def test_gpu_cases_without_gpu_are_reported_as_could_not_run(pytester, smoke_args, bench_dirs):
    from pytest_cryobench.backend import query_gpus

    if query_gpus().gpus:
        import pytest

        pytest.skip("this machine has a GPU")
    result = pytester.runpytest(*smoke_args, "-k", "matched_cv")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["gpu/matched_cv_filter_estimation[[]gpu[]]*could not run*"])
