"""Every known-answer check can fail: a wrong answer planted in a kernel's output fails its case.

Each test wraps the workload a suite times (monkeypatched where the suite looks it up) so that it
returns a plausible but wrong result, runs the case in-process on the smoke profile (NumPy
backend), and asserts that the named check failed and the case with it. Checks on a real data
set (no planted truth) have their planted tests beside the real-data fixtures
(``test_gpu_run.py``, ``test_engine_run.py``, ``test_movies_bad_input.py``,
``test_cryosparc_layout.py``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.helpers import load_results

# Minutes, not seconds, on 2 cores: left out of the default run, run by .ci/run (pytest -m slow).
pytestmark = pytest.mark.slow

NUMPY = "--cryobench-backend=numpy"


def failed_check(pytester, args, group, test, check, *more):
    """Run the selected case in-process; assert it failed and ``check`` (and ``more``) with it."""
    result = pytester.runpytest_inprocess(*args, "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    checks = load_results(args_out(args), group)["tests"][test]["checks"]
    for name in (check, *more):
        assert checks[f"{name}_passed"] is False, (name, checks)
    assert checks["passed"] is False
    return checks


def args_out(args):
    from pathlib import Path

    return Path(next(a for a in args if a.startswith("--cryobench-output=")).split("=", 1)[1])


# -- cpu: decompression ------------------------------------------------------------------------

def test_eer_decode_that_drops_a_fraction_fails_the_totals(pytester, smoke_args, monkeypatch):
    import bench_suites.bench_cpu_decompress as suite

    real = suite.decode_fractions

    def dropped(*args, **kwargs):
        out = real(*args, **kwargs)
        out[-1] = 0  # the last fraction lost
        return out

    monkeypatch.setattr(suite, "decode_fractions", dropped)
    checks = failed_check(pytester, [*smoke_args, "-k", "cpu and eer"], "cpu", "eer", "totals_synthetic_movie_000")
    assert checks["totals_synthetic_movie_000_decoded"] < checks["totals_synthetic_movie_000_written"]


# -- fs: movie reads, particle cache and reads -------------------------------------------------

def test_short_movie_read_fails_bytes_read(pytester, smoke_args, monkeypatch):
    import bench_suites.bench_fs_movies as suite

    real = suite.read_whole_file
    monkeypatch.setattr(suite, "read_whole_file", lambda path, buffer: real(path, buffer) - 1)
    failed_check(pytester, [*smoke_args, "-k", "fs and movie_read and tiff"], "fs", "tiff", "bytes_read")


def test_cache_copy_that_drops_bytes_fails_copy_bytes(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.data import particles

    real = particles.copy_stack_bytes

    def short(stack, directory, buffer=None):
        copy, written = real(stack, directory, buffer)
        last = copy.files[-1]
        with open(last, "r+b") as f:
            f.truncate(last.stat().st_size - 4096)  # the tail of the last file never arrived
        return copy, written - 4096

    monkeypatch.setattr(particles, "copy_stack_bytes", short)
    failed_check(pytester, [*smoke_args, "-k", "particle_cache"], "fs", "particle_cache", "copy_bytes")


def test_cache_copy_with_wrong_bytes_fails_copy_content(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.data import particles

    real = particles.copy_stack_bytes

    def garbled(stack, directory, buffer=None):
        copy, written = real(stack, directory, buffer)
        for path, offset in zip(copy.files, copy.data_offsets, strict=True):
            size = path.stat().st_size
            with open(path, "r+b") as f:  # same size, data zeroed
                f.seek(int(offset))
                f.write(bytes(size - int(offset)))
        return copy, written

    monkeypatch.setattr(particles, "copy_stack_bytes", garbled)
    checks = failed_check(pytester, [*smoke_args, "-k", "particle_cache"], "fs", "particle_cache", "copy_content")
    assert checks["copy_bytes_passed"] is True


@pytest.mark.parametrize("order", ["sequential", "random"])
def test_particle_reads_short_or_wrong_fail_their_checks(pytester, smoke_args, monkeypatch, order):
    from pytest_cryobench.data import particles

    real = particles.ParticleReader.read_all

    def wrong(self):
        got = real(self)
        self.kept[:, :8] ^= 0xFF  # every kept particle's first bytes flipped
        return got - 1

    monkeypatch.setattr(particles.ParticleReader, "read_all", wrong)
    failed_check(pytester, [*smoke_args, "-k", f"particle_{order}_read"], "fs", f"particle_{order}_read",
                 "bytes_read", "content")


# -- gpu: FSC ----------------------------------------------------------------------------------

def test_a_curve_shifted_by_two_shells_fails_reference_curve_and_crossing(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.kernels import fsc

    real = fsc.fsc_maps

    def shifted(v1, v2, mask=None):
        curve = real(v1, v2, mask)
        return np.concatenate([curve[:1], curve[:1], curve[:-2]])  # two shells further out

    monkeypatch.setattr(fsc, "fsc_maps", shifted)
    failed_check(pytester, [*smoke_args, NUMPY, "-k", "fsc and spherical"], "gpu", "fsc_spherical[cpu]",
                 "reference_curve", "crossing")


def test_noise_substitution_without_randomisation_fails_fsc_n(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.kernels import fsc

    monkeypatch.setattr(fsc, "randomize_phases_beyond", lambda f, shell, rng: f)
    failed_check(pytester, [*smoke_args, NUMPY, "-k", "fsc and noisesub"], "gpu", "fsc_noisesub[cpu]",
                 "fsc_n_decorrelated")


def test_uncorrected_curve_as_fsc_true_fails_corrected_curve(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.kernels import fsc

    real = fsc.noise_substituted_fsc

    def uncorrected(*args, **kwargs):
        result = real(*args, **kwargs)
        return {**result, "fsc_true": result["fsc_t"].copy()}

    monkeypatch.setattr(fsc, "noise_substituted_fsc", uncorrected)
    checks = failed_check(pytester, [*smoke_args, NUMPY, "-k", "fsc and noisesub"], "gpu", "fsc_noisesub[cpu]",
                          "corrected_curve")
    assert checks["fsc_n_decorrelated_passed"] is True and checks["reference_curve_passed"] is True


# -- gpu: NU filter, picking -------------------------------------------------------------------

def test_a_flattened_resolution_map_fails_a_band_limit(pytester, smoke_args, monkeypatch):
    import bench_suites.bench_gpu_nu as suite

    real = suite.matched_cv_filter_estimation

    def flattened(a, b, apix, candidates, **kwargs):
        result = real(a, b, apix, candidates, **kwargs)
        index = np.full_like(result.index_map, int(np.median(result.index_map)))
        return dataclasses.replace(result, index_map=index)

    monkeypatch.setattr(suite, "matched_cv_filter_estimation", flattened)
    failed_check(pytester, [*smoke_args, NUMPY, "-k", "matched_cv"], "gpu", "matched_cv_filter_estimation[cpu]",
                 "region2_core_band_limit")  # the median candidate is region 1's


# -- gpu: engine -------------------------------------------------------------------------------

ENGINE_MAX = ["-k", "engine and memory_single_linear10_max_C1"]
ENGINE_MARG = ["-k", "engine and memory_single_linear10_marg_C1"]


def _plant_in_pass(monkeypatch, change):
    import bench_suites.bench_gpu_engine as suite

    real = suite.run_pass
    monkeypatch.setattr(suite, "run_pass", lambda *a, **k: change(real(*a, **k)))


def test_random_poses_fail_poses_and_the_marg_peak(pytester, smoke_args, monkeypatch):
    rng = np.random.default_rng(0)
    _plant_in_pass(monkeypatch, lambda r: dataclasses.replace(
        r, rotation=rng.permutation(r.rotation)))
    failed_check(pytester, [*smoke_args, NUMPY, *ENGINE_MARG], "gpu", "memory_single_linear10_marg_C1[cpu]",
                 "poses", "marg_peak_at_truth")


def test_shifts_one_step_off_fail_shifts(pytester, smoke_args, monkeypatch):
    _plant_in_pass(monkeypatch, lambda r: dataclasses.replace(r, shift=(r.shift + 1) % 9))
    failed_check(pytester, [*smoke_args, NUMPY, *ENGINE_MAX], "gpu", "memory_single_linear10_max_C1[cpu]", "shifts")


def test_a_posterior_spread_that_ignores_the_snr_fails_marg_spread(pytester, smoke_args, monkeypatch):
    _plant_in_pass(monkeypatch, lambda r: dataclasses.replace(r, marg_kept=np.full_like(r.marg_kept, 5)))
    failed_check(pytester, [*smoke_args, NUMPY, *ENGINE_MARG], "gpu", "memory_single_linear10_marg_C1[cpu]",
                 "marg_spread_follows_snr")


def test_a_shifted_reconstruction_fails_reconstruction_fsc(pytester, smoke_args, monkeypatch):
    _plant_in_pass(monkeypatch, lambda r: dataclasses.replace(r, volume=np.roll(r.volume, 2, axis=(0, 1, 2))))
    failed_check(pytester, [*smoke_args, NUMPY, *ENGINE_MAX], "gpu", "memory_single_linear10_max_C1[cpu]",
                 "reconstruction_fsc")


def test_slices_at_transposed_poses_fail_projection(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.kernels import projection

    real = projection.extract_slices
    monkeypatch.setattr(projection, "extract_slices",
                        lambda prepared, rotations, coords: real(prepared, rotations.transpose(0, 2, 1), coords))
    failed_check(pytester, [*smoke_args, NUMPY, *ENGINE_MAX], "gpu", "memory_single_linear10_max_C1[cpu]",
                 "projection")


def test_cubic_interpolation_that_is_trilinear_fails_cubic_more_accurate(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.kernels import projection

    real = projection.prepare_volume
    monkeypatch.setattr(projection, "prepare_volume",
                        lambda volume, pad=2, interpolation="linear", gridding=True: real(volume, pad, "linear",
                                                                                          gridding))
    failed_check(pytester, [*smoke_args, NUMPY, "-k", "engine and memory_single_linear20_max_C1"], "gpu",
                 "memory_single_linear20_max_C1[cpu]", "cubic_more_accurate")


def test_a_wrong_two_fold_axis_fails_symmetry_operators(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.kernels import rotations

    real = rotations.symmetry_group

    def tilted(name):
        group = real(name)
        if name.upper().startswith("D"):
            a = np.pi / 14  # the two-folds turned by half a step about z
            rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            half = len(group) // 2
            group = np.concatenate([group[:half], rz @ group[half:] @ rz.T])
        return group

    monkeypatch.setattr(rotations, "symmetry_group", tilted)
    failed_check(pytester, [*smoke_args, NUMPY, "-k", "engine and memory_single_linear10_max_D7"], "gpu",
                 "memory_single_linear10_max_D7[cpu]", "symmetry_operators")


# -- requirements ------------------------------------------------------------------------------

def test_live_motion_correction_with_wrong_shifts_fails(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.requirements import live

    real = live.preprocess_movie

    def off(*args, **kwargs):
        result = real(*args, **kwargs)
        return dataclasses.replace(result, shifts=result.shifts + 1.5)

    monkeypatch.setattr(live, "preprocess_movie", off)
    failed_check(pytester, [*smoke_args, "-m", "requirements", "-k", "live_throughput", NUMPY,
                            "--cryobench-live-camera=K3", "--cryobench-live-rate=10"],
                 "requirements", "live_throughput", "shifts")


def test_a_probe_below_the_minimum_fails_its_requirement(pytester, smoke_args, monkeypatch):
    from pytest_cryobench.requirements import probes

    monkeypatch.setattr(probes, "open_file_limits", lambda: (64, 64))
    failed_check(pytester, [*smoke_args, "-m", "requirements", "-k", "open_files"], "requirements", "open_files",
                 "minimum")
