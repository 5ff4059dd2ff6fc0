"""GPU workloads run on the NumPy backend through pytester (smoke profile), as CI runs them."""

from __future__ import annotations

import numpy as np

from tests.helpers import load_results

MASK_KINDS = ("spherical", "loose", "tight", "noisesub")


def test_nu_filter_estimation_finds_both_band_limits(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-k", "matched_cv")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gpu/matched_cv_filter_estimation[[]cpu[]]*voxel-candidates/s*"])
    doc = load_results(bench_dirs["out"], "gpu")
    test = "matched_cv_filter_estimation[cpu]"
    checks = doc["tests"][test]["checks"]
    assert checks["passed"] is True
    assert checks["region1_core_band_limit_found_A"] == 4.5 and checks["region2_core_band_limit_found_A"] == 9.0
    assert doc["tests"][test]["tags"]["put_maps_on_gpu"] == ["PCIe"] and doc["tests"][test]["tags"]["fft"] == ["GPU"]
    assert doc["tests"][test]["info"]["n_fft"] > 100
    assert doc["test_info"]["backend"] == "numpy"


def test_gpu_cases_without_gpu_are_reported_as_could_not_run(pytester, smoke_args, bench_dirs):
    from pytest_cryobench.measure.backend import query_gpus

    if query_gpus().gpus:
        import pytest

        pytest.skip("this machine has a GPU")
    result = pytester.runpytest(*smoke_args, "-k", "matched_cv")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["gpu/matched_cv_filter_estimation[[]gpu[]]*could not run*"])


def test_fsc_cases_match_the_designed_curves(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-k", "fsc")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["gpu/fsc_spherical[[]cpu[]]*", "gpu/fsc_loose[[]cpu[]]*",
                                 "gpu/fsc_tight[[]cpu[]]*", "gpu/fsc_noisesub[[]cpu[]]*"])
    doc = load_results(bench_dirs["out"], "gpu")
    for kind in ("spherical", "loose", "tight"):
        checks = doc["tests"][f"fsc_{kind}[cpu]"]["checks"]
        assert checks["passed"] and checks["curve_max_error"] < 0.05
        assert abs(checks["crossing_shell"] - checks["crossing_expected_shell"]) <= 1
    noisesub = doc["tests"]["fsc_noisesub[cpu]"]["checks"]
    assert noisesub["fsc_n_decorrelated_passed"] and noisesub["corrected_curve_passed"]
    assert all(doc["tests"][f"fsc_{k}[cpu]"]["checks"]["reference_curve_max_error"] < 1e-4 for k in MASK_KINDS)
    assert doc["tests"]["fsc_loose[cpu]"]["tags"]["put_mapr_on_gpu"] == ["PCIe"]
    assert set(doc["timings"]["fsc_tight[cpu]"]) >= {"put_mapr_on_gpu", "mask", "fsc", "resolution", "total"}
    info = doc["tests"]["fsc_spherical[cpu]"]["info"]
    assert info["box"] == 64 and info["resolution_A"] > 2 * info["apix"]


def test_fsc_check_catches_a_wrong_curve(pytester, smoke_args, monkeypatch):
    """An FSC that forgets the mask cannot pass: the tight-mask expectation differs too much."""
    from pytest_cryobench.kernels import fsc

    real = fsc.fsc_maps
    monkeypatch.setattr(fsc, "fsc_maps", lambda v1, v2, mask=None: real(v1, v2, None))
    result = pytester.runpytest_inprocess(*smoke_args, "--cryobench-backend=numpy", "-k", "fsc and tight")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wrong answer: reference_curve: *; curve: shell*expected*"])


def test_picking_finds_the_planted_particles(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-k", "picking")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gpu/picking[[]cpu[]]*template-angles/s*"])
    doc = load_results(bench_dirs["out"], "gpu")
    checks = doc["tests"]["picking[cpu]"]["checks"]
    assert checks["micrograph_0_recall"] >= 0.95 and checks["micrograph_0_precision"] >= 0.95
    assert checks["micrograph_0_planted"] == 40
    assert doc["tests"]["picking[cpu]"]["tags"]["pick"] == ["GPU"]
    data = bench_dirs["data"] / "synthetic-smoke" / "picking_test"
    from pytest_cryobench.data.cs import read_cs

    exposures = read_cs(data / "exposure_dataset_for_picking.cs", required=("ctf/df1_A", "micrograph_blob/path"))
    assert len(exposures) == 1 and (data / "picking_templates.mrc").exists()


def test_picking_check_catches_misplaced_picks(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.kernels import picking

    real = picking.pick

    def shifted(*args, **kwargs):
        out = real(*args, **kwargs)
        out["coords"] = out["coords"] + 3  # every pick 3 px off in y and x
        return out

    monkeypatch.setattr(picking, "pick", shifted)
    import bench_suites.bench_gpu_picking as suite

    monkeypatch.setattr(suite, "pick", shifted)
    result = pytester.runpytest_inprocess(*smoke_args, "--cryobench-backend=numpy", "-k", "picking")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wrong answer: micrograph_0: micrograph 0: recall 0.000*"])


def _real_maps_set(tmp_path):
    """A CryoSPARC-layout data set with designed gpu_fsc_test half maps (placeholders elsewhere)."""
    from pytest_cryobench.data import layout
    from pytest_cryobench.data.maps import write_map
    from pytest_cryobench.data.synthetic_maps import designed_half_maps

    root = tmp_path / "cryosparc_benchmark"
    for pattern, _ in layout.EXPECTED:
        path = root / pattern.replace("J*", "J586").replace("*", "sample")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"placeholder")
    maps = designed_half_maps(48, 1.5, 18, 1.0, seed=2)
    write_map(root / "gpu_fsc_test" / "half_map_A.mrc", maps.half_a, 1.5)
    write_map(root / "gpu_fsc_test" / "half_map_B.mrc", maps.half_b, 1.5)
    return root


def test_fsc_and_nu_on_a_real_data_set_check_sanity(pytester, smoke_args, bench_dirs, tmp_path):
    """CryoSPARC's data set has no planted answer: the cases check sane, repeatable results."""
    root = _real_maps_set(tmp_path)
    result = pytester.runpytest(*smoke_args, f"--cryobench-data={root}", "--cryobench-backend=numpy",
                                "-k", "fsc or matched_cv")
    result.assert_outcomes(passed=5)
    doc = load_results(bench_dirs["out"], "gpu")
    assert doc["tests"]["fsc_loose[cpu]"]["checks"]["curve_sane_passed"] is True
    assert doc["tests"]["matched_cv_filter_estimation[cpu]"]["checks"]["rounds_agree_passed"] is True
    assert doc["test_info"]["data"] == "cryosparc"


def test_real_data_sanity_checks_catch_broken_curves_and_maps(pytester, smoke_args, bench_dirs, tmp_path,
                                                              monkeypatch):
    """A curve with NaN, a resolution map outside the candidates that changes every round."""
    import dataclasses

    import bench_suites.bench_gpu_nu as nu_suite
    from pytest_cryobench.kernels import fsc

    root = _real_maps_set(tmp_path)
    real_fsc, real_nu, calls = fsc.fsc_maps, nu_suite.matched_cv_filter_estimation, []
    monkeypatch.setattr(fsc, "fsc_maps", lambda v1, v2, mask=None: real_fsc(v1, v2, mask) * np.nan)

    def drifting(*args, **kwargs):
        result = real_nu(*args, **kwargs)
        calls.append(1)
        return dataclasses.replace(result, resolution_map=result.resolution_map * 0 + 1000.0 * len(calls))

    monkeypatch.setattr(nu_suite, "matched_cv_filter_estimation", drifting)
    result = pytester.runpytest_inprocess(*smoke_args, f"--cryobench-data={root}", "--cryobench-backend=numpy",
                                          "-k", "(fsc and loose) or matched_cv", "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    doc = load_results(bench_dirs["out"], "gpu")
    assert doc["tests"]["fsc_loose[cpu]"]["checks"]["curve_sane_passed"] is False
    nu = doc["tests"]["matched_cv_filter_estimation[cpu]"]["checks"]
    assert nu["resolution_map_sane_passed"] is False and nu["rounds_agree_passed"] is False
