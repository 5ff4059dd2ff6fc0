"""The engine's 14 cases through pytester on the NumPy backend (smoke profile), and their bad input."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from pytest_cryobench.engine.passes import ENGINE_CASES
from tests.helpers import figures_of, load_results

ONE_CASE = ["-k", "engine and memory_single_linear10_max_C1"]


def test_the_fourteen_cases_run_and_check_their_answers(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-k", "engine and not all_gpus")
    result.assert_outcomes(passed=14)
    result.stdout.fnmatch_lines([f"gpu/{name}[[]cpu[]]*particles/s*poses/s*" for name in ENGINE_CASES],
                                consecutive=False)
    doc = load_results(bench_dirs["out"], "gpu")
    for name in ENGINE_CASES:
        test = f"{name}[cpu]"
        checks = doc["tests"][test]["checks"]
        assert checks["passed"] is True, checks
        assert checks["poses_fraction_within_step"] >= 0.9
        assert checks["reconstruction_fsc_min_fsc"] >= 0.5
        assert checks["projection_passed"] is True
        assert set(figures_of(doc, test)) == {name, "particles_per_s", "poses_per_s"}
        info = doc["tests"][test]["info"]
        assert doc["tests"][test]["amounts"]["particles"] == 256 and info["rotations"] > 100 and info["shifts"] == 9
        if "single" in name:
            assert {"setup_scales", "project", "read_particles", "upload", "fft", "ctf", "score", "backproject",
                    "reconstruct"} <= set(doc["timings"][test])
            assert doc["tests"][test]["tags"]["read_particles"] == ["IO"] and doc["tests"][test]["tags"]["upload"] == ["PCIe"]
            assert info["read_compute_overlap_s"] == 0
        else:  # multi: the overall time only, as the guide does
            assert set(doc["timings"][test]) == {"total"}
    assert doc["tests"]["memory_single_linear10_max_D7[cpu]"]["checks"]["symmetry_operators_operators"] == 14
    assert doc["tests"]["memory_single_linear20_max_C1[cpu]"]["checks"]["cubic_more_accurate_passed"] is True
    marg = doc["tests"]["memory_single_linear10_marg_C1[cpu]"]["checks"]
    assert marg["marg_spread_follows_snr_passed"] and marg["marg_peak_at_truth_passed"]
    assert doc["tests"]["disk_single_linear10_max_C1[cpu]"]["residency"] is not None


def test_a_wrong_projection_convention_fails_the_pose_check(pytester, smoke_args, monkeypatch):
    """Slices taken at R instead of R^T (a transposed pose convention) cannot pass."""
    from pytest_cryobench.engine import passes as engine_pass

    real = engine_pass.extract_slices
    monkeypatch.setattr(engine_pass, "extract_slices",
                        lambda prepared, rotations, coords: real(prepared, np.swapaxes(rotations, 1, 2), coords))
    result = pytester.runpytest_inprocess(*smoke_args, "--cryobench-backend=numpy", *ONE_CASE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wrong answer: poses: *of best rotations within one grid step*"])


def test_running_out_of_memory_mid_pass_fails_only_that_case(pytester, smoke_args, bench_dirs, monkeypatch):
    from pytest_cryobench.kernels import projection

    real = projection.Backprojector.insert

    def insert(self, values, ctf2, rotations, coords, weights=None):
        if rotations.shape[0] % 14 == 0 and rotations.shape[0] >= 14 * 8:  # the D7 case's insertions
            raise MemoryError("Out of memory allocating 8,589,934,592 bytes (allocated so far: 0 bytes)")
        return real(self, values, ctf2, rotations, coords, weights)

    monkeypatch.setattr(projection.Backprojector, "insert", insert)
    result = pytester.runpytest_inprocess(*smoke_args, "--cryobench-backend=numpy", "-k",
                                          "engine and memory_single and linear10 and not marg")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*gpu/memory_single_linear10_max_D7[[]cpu[]] ran out of host memory "
                                 "(Out of memory allocating 8,589,934,592 bytes*the other cases still run*"])
    doc = load_results(bench_dirs["out"], "gpu")
    assert doc["tests"]["memory_single_linear10_max_C1[cpu]"]["outcome"] == "passed"


@pytest.fixture
def real_engine_set(tmp_path):
    """A CryoSPARC-layout data set whose gpu_engine_test holds generated (smoke) engine data."""
    from pytest_cryobench.data import layout
    from pytest_cryobench.data.engine import ENGINE_DIR, engine_component
    from pytest_cryobench.data.provision import ensure
    from pytest_cryobench.profiles import PROFILES

    generated = tmp_path / "generated"
    ensure(generated, engine_component(PROFILES["smoke"], 3), 3)
    root = tmp_path / "cryosparc_benchmark"
    for pattern, _ in layout.EXPECTED:
        if pattern.startswith(ENGINE_DIR):
            continue
        path = root / pattern.replace("*", "sample")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"placeholder")
    shutil.copytree(generated / ENGINE_DIR, root / ENGINE_DIR)
    (root / ENGINE_DIR / "truth_volume.mrc").unlink()  # CryoSPARC's set has no truth
    return root


def _rewrite_cs(root, change):
    from pytest_cryobench.data.cs import read_cs, write_cs

    path = root / "gpu_engine_test" / "abinit_particles.cs"
    write_cs(path, change(read_cs(path)))


def test_real_data_set_runs_with_sanity_checks(pytester, smoke_args, bench_dirs, real_engine_set):
    result = pytester.runpytest(*smoke_args, f"--cryobench-data={real_engine_set}", "--cryobench-backend=numpy",
                                *ONE_CASE)
    result.assert_outcomes(passed=1)
    checks = load_results(bench_dirs["out"], "gpu")["tests"]["memory_single_linear10_max_C1[cpu]"]["checks"]
    assert checks["reconstruction_finite_passed"] and "poses_passed" not in checks


@pytest.mark.parametrize("case, check, change", [
    ("memory_single_linear10_max_C1", "reconstruction_finite",
     lambda r: dataclasses.replace(r, volume=np.full_like(r.volume, np.nan))),
    ("memory_single_linear10_marg_C1", "marg_posterior_finite",
     lambda r: dataclasses.replace(r, marg_kept=np.zeros_like(r.marg_kept))),
])
def test_real_data_sanity_checks_catch_a_broken_pass(pytester, smoke_args, bench_dirs, real_engine_set, monkeypatch,
                                                     case, check, change):
    import bench_suites.bench_gpu_engine as suite

    real = suite.run_pass
    monkeypatch.setattr(suite, "run_pass", lambda *a, **k: change(real(*a, **k)))
    result = pytester.runpytest_inprocess(*smoke_args, f"--cryobench-data={real_engine_set}",
                                          "--cryobench-backend=numpy", "-k", f"engine and {case}", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    assert load_results(bench_dirs["out"], "gpu")["tests"][f"{case}[cpu]"]["checks"][f"{check}_passed"] is False


def test_cs_without_pose_fields_is_a_clear_error(pytester, smoke_args, real_engine_set):
    import numpy.lib.recfunctions as rfn

    _rewrite_cs(real_engine_set, lambda d: rfn.drop_fields(d, ["alignments3D/pose", "alignments3D/shift"]))
    result = pytester.runpytest(*smoke_args, f"--cryobench-data={real_engine_set}", "--cryobench-backend=numpy",
                                *ONE_CASE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*abinit_particles.cs: the dataset lacks field(s) alignments3D/pose, "
                                 "alignments3D/shift*"])


def test_cs_naming_more_particles_than_the_stacks_hold_is_a_clear_error(pytester, smoke_args, real_engine_set):
    def beyond(d):
        d["blob/idx"][-1] = 10_000
        return d

    _rewrite_cs(real_engine_set, beyond)
    result = pytester.runpytest(*smoke_args, f"--cryobench-data={real_engine_set}", "--cryobench-backend=numpy",
                                *ONE_CASE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*abinit_particles.cs: names particle 10000 of *_particles.mrc, which holds 64: "
                                 "the .cs file does not match the stacks*"])


def test_stacks_with_another_box_than_the_volume_are_a_clear_error(pytester, smoke_args, real_engine_set):
    from pytest_cryobench.data.maps import read_map, write_map

    path = real_engine_set / "gpu_engine_test" / "abinit_volume.mrc"
    volume, apix = read_map(path)
    write_map(path, np.ascontiguousarray(volume[:40, :40, :40]), apix)
    result = pytester.runpytest(*smoke_args, f"--cryobench-data={real_engine_set}", "--cryobench-backend=numpy",
                                *ONE_CASE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*particles of 48x48 px, but the volume *abinit_volume.mrc is 40^3: "
                                 "the box must match*"])
