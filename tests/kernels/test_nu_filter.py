"""Unit tests of the matched cross-validation filter kernel (Non-Uniform Refinement's core)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from pytest_cryobench.data.synthetic_maps import two_region_half_maps
from pytest_cryobench.kernels import nu_filter as nf
from pytest_cryobench.measure.timing import SubTimings

APIX = 1.5
N = 48
R1, R2 = 4.5, 9.0        # on the default grid at apix 1.5 Å: 1/r = (3 + j) / 90, j = 17 and 7
AXES = (0, 1, 2)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def nearest_index(candidates: np.ndarray, res_A: float) -> int:
    """Candidate nearest ``res_A`` in spatial frequency."""
    return int(np.argmin(np.abs(1.0 / candidates - 1.0 / res_A)))


def region_medians(result: nf.NuFilterResult, truth: dict) -> tuple[float, float]:
    idx = np.asarray(result.index_map)
    return float(np.median(idx[truth["region1_core"]])), float(np.median(idx[truth["region2_core"]]))


def known_answer_ok(result: nf.NuFilterResult, truth: dict) -> bool:
    """The issue's check: each region's band limit found within one candidate step."""
    m1, m2 = region_medians(result, truth)
    r1, r2 = truth["band_limits_A"]
    return (abs(m1 - nearest_index(result.candidates, r1)) <= 1
            and abs(m2 - nearest_index(result.candidates, r2)) <= 1)


def global_fsc_resolution(a: np.ndarray, b: np.ndarray, apix: float, threshold: float = 0.143) -> float:
    """Resolution (Å) where the unmasked FSC of two half maps first falls below ``threshold``."""
    n = a.shape[0]
    fa = np.fft.rfftn(a.astype(np.float64), axes=AXES)
    fb = np.fft.rfftn(b.astype(np.float64), axes=AXES)
    shell = np.rint(nf.shell_radius(n, np)).astype(np.int64).ravel()
    nshell = n // 2 + 1
    keep = shell < nshell
    shell = shell[keep]

    def sums(x):
        return np.bincount(shell, weights=x.ravel()[keep], minlength=nshell)[:nshell]

    num = sums((fa * np.conj(fb)).real)
    den = np.sqrt(sums(np.abs(fa) ** 2) * sums(np.abs(fb) ** 2))
    fsc = num / np.maximum(den, 1e-30)
    below = np.nonzero(fsc[1:] < threshold)[0]
    s = int(below[0]) + 1 if below.size else nshell - 1
    # linear interpolation of the crossing between shells s-1 and s
    f0, f1 = fsc[s - 1], fsc[s]
    frac = (f0 - threshold) / (f0 - f1) if f0 != f1 else 0.0
    s_cross = (s - 1) + frac
    return n * apix / s_cross


def brute_force_stack(a: np.ndarray, b: np.ndarray, apix: float, candidates: np.ndarray,
                      window_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Independent float64 reference: the full (K, n^3) error stack and filtered averages."""
    n = a.shape[0]
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    fa = np.fft.rfftn(a, axes=AXES)
    fb = np.fft.rfftn(b, axes=AXES)
    errors, outs = [], []
    for r in candidates:
        h = nf.lowpass_filter(n, r, apix, np).astype(np.float64)
        ak = np.fft.irfftn(fa * h, s=a.shape, axes=AXES)
        bk = np.fft.irfftn(fb * h, s=a.shape, axes=AXES)
        raw = (ak - b) ** 2 + (bk - a) ** 2
        w = nf.local_window(n, nf.window_sigma_vox(r, apix, window_factor), np).astype(np.float64)
        errors.append(np.fft.irfftn(np.fft.rfftn(raw, axes=AXES) * w, s=a.shape, axes=AXES))
        outs.append(0.5 * (ak + bk))
    return np.stack(errors), np.stack(outs)


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_region():
    return two_region_half_maps(N, APIX, R1, R2, noise_sigma=0.5, seed=7)


@pytest.fixture(scope="module")
def two_region_result(two_region):
    a, b, _ = two_region
    return nf.matched_cv_filter_estimation(a, b, APIX)


# --------------------------------------------------------------------------------------------
# candidates, filters, windows
# --------------------------------------------------------------------------------------------

def test_candidate_grid_is_even_in_frequency_and_spans_30A_to_nyquist():
    c = nf.candidate_resolutions(N, APIX)
    assert c.shape == (nf.DEFAULT_K,)
    assert c[0] == pytest.approx(30.0) and c[-1] == pytest.approx(2 * APIX)
    step = np.diff(1.0 / c)
    assert np.all(step > 0) and np.allclose(step, step[0])
    # the test geometry lies on the grid
    assert c[nearest_index(c, R1)] == pytest.approx(R1)
    assert c[nearest_index(c, R2)] == pytest.approx(R2)
    assert nearest_index(c, R1) - nearest_index(c, R2) == 10


def test_candidate_grid_small_box_and_errors():
    c = nf.candidate_resolutions(16, APIX, k=5)
    assert c[0] == pytest.approx(16 * APIX / 2)     # box-limited: the coarsest filter keeps 2 shells
    assert c[-1] == pytest.approx(2 * APIX)
    with pytest.raises(ValueError):
        nf.candidate_resolutions(N, APIX, k=1)
    with pytest.raises(ValueError):
        nf.candidate_resolutions(N, APIX, low_A=2.5)


def test_lowpass_filter_is_monotone_one_at_low_and_zero_beyond_cutoff():
    res = 6.0
    s_c = N * APIX / res                                     # 12 shells
    h = nf.lowpass_filter(N, res, APIX, np)
    assert h.shape == (N, N, N // 2 + 1) and h.dtype == np.float32
    radius = nf.shell_radius(N, np)
    assert h[0, 0, 0] == 1.0
    order = np.argsort(radius, axis=None, kind="stable")
    assert np.all(np.diff(h.ravel()[order]) <= 1e-6)         # non-increasing in |f|
    w = nf.DEFAULT_WIDTH_SHELLS
    assert np.all(h[radius <= s_c - w / 2] == 1.0)
    assert np.all(h[radius >= s_c + w / 2] <= 1e-6)
    assert h.min() >= 0.0 and h.max() <= 1.0
    # the profile: half height at the cutoff, symmetric raised cosine around it
    prof = nf.lowpass_filter(N, res, APIX, np, radius=np.array([s_c - 0.5, s_c, s_c + 0.5], np.float32))
    np.testing.assert_allclose(prof, [0.5 + 0.5 * np.cos(np.pi / 4), 0.5, 0.5 - 0.5 * np.cos(np.pi / 4)], atol=1e-6)
    hard = nf.lowpass_filter(N, res, APIX, np, width_shells=0)
    assert set(np.unique(hard)) == {0.0, 1.0}
    assert np.all(hard[radius <= s_c] == 1.0) and np.all(hard[radius > s_c] == 0.0)


def test_local_window_is_a_normalised_gaussian():
    sigma = 2.5
    w = nf.local_window(N, sigma, np)
    assert w.shape == (N, N, N // 2 + 1) and w.dtype == np.float32
    assert w[0, 0, 0] == 1.0
    kernel = np.fft.irfftn(w.astype(np.float64), s=(N, N, N), axes=AXES)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-9)
    assert kernel.min() >= -1e-6 * kernel.max()
    x = np.fft.fftfreq(N) * N                                  # signed voxel offsets
    var_x = (kernel.sum(axis=(0, 1)) * x ** 2).sum()
    assert var_x == pytest.approx(sigma ** 2, rel=1e-3)
    # the window grows with the candidate's resolution, floored at min_sigma_vox
    assert nf.window_sigma_vox(9.0, APIX, 1.0) == pytest.approx(3.0)
    assert nf.window_sigma_vox(18.0, APIX, 1.0) == pytest.approx(6.0)
    assert nf.window_sigma_vox(3.0, APIX, 0.1) == nf.MIN_SIGMA_VOX


# --------------------------------------------------------------------------------------------
# known answers
# --------------------------------------------------------------------------------------------

def test_two_regions_band_limits_found_within_one_candidate_step(two_region, two_region_result):
    a, b, truth = two_region
    res = two_region_result
    c = res.candidates
    i1, i2 = nearest_index(c, R1), nearest_index(c, R2)
    m1, m2 = region_medians(res, truth)
    assert abs(m1 - i1) <= 1, (m1, i1)
    assert abs(m2 - i2) <= 1, (m2, i2)
    assert known_answer_ok(res, truth)
    # most of each region's core is on (or next to) its band limit, in Å as well as in index
    idx = np.asarray(res.index_map)
    assert np.mean(np.abs(idx[truth["region1_core"]] - i1) <= 1) > 0.6
    assert np.mean(np.abs(idx[truth["region2_core"]] - i2) <= 1) > 0.5
    rmap = np.asarray(res.resolution_map)
    assert rmap.dtype == np.float32 and rmap.shape == (N, N, N)
    assert np.median(rmap[truth["region1_core"]]) == pytest.approx(R1, rel=0.06)
    assert np.median(rmap[truth["region2_core"]]) == pytest.approx(R2, rel=0.12)
    np.testing.assert_array_equal(rmap, c.astype(np.float32)[idx])


def test_filtered_map_is_closer_to_the_signal_than_the_raw_average(two_region, two_region_result):
    a, b, truth = two_region
    res = two_region_result
    out = np.asarray(res.filtered_map)
    assert out.dtype == np.float32 and out.shape == (N, N, N)
    signal = truth["signal"]
    raw = 0.5 * (a + b)
    for region in ("region1_core", "region2_core"):
        m = truth[region]
        err_local = np.mean((out[m] - signal[m]) ** 2)
        err_raw = np.mean((raw[m] - signal[m]) ** 2)
        assert err_local < 0.5 * err_raw, (region, err_local, err_raw)
    cv = np.asarray(res.cv_error_min)
    assert cv.dtype == np.float32 and np.all(np.isfinite(cv))


def test_self_comparison_breaks_the_known_answer(two_region):
    """Scoring a filtered half against itself (no matching) always prefers no filtering."""
    a, _, truth = two_region
    res = nf.matched_cv_filter_estimation(a, a.copy(), APIX)
    assert not known_answer_ok(res, truth)
    m1, m2 = region_medians(res, truth)
    assert m1 == m2 == len(res.candidates) - 1


def test_a_global_filter_choice_breaks_the_known_answer(two_region):
    """A window far larger than the box makes the choice global: one filter for both regions."""
    a, b, truth = two_region
    res = nf.matched_cv_filter_estimation(a, b, APIX, window_factor=1e4)
    assert np.unique(np.asarray(res.index_map)).size == 1
    assert not known_answer_ok(res, truth)


def test_uniform_map_picks_the_global_fsc_resolution():
    a, b, truth = two_region_half_maps(N, APIX, 6.0, 6.0, noise_sigma=0.5, seed=3)
    res = nf.matched_cv_filter_estimation(a, b, APIX)
    c = res.candidates
    fsc_res = global_fsc_resolution(a, b, APIX)
    assert 5.0 < fsc_res < 7.0
    expected = nearest_index(c, fsc_res)
    idx = np.asarray(res.index_map)
    assert abs(np.median(idx) - expected) <= 1, (np.median(idx), expected, fsc_res)
    assert np.mean(np.abs(idx - expected) <= 1) > 0.6


# --------------------------------------------------------------------------------------------
# the streamed argmin against a brute-force stack
# --------------------------------------------------------------------------------------------

def test_running_argmin_equals_brute_force_argmin():
    n, k = 24, 10
    c = nf.candidate_resolutions(n, APIX, k=k)
    a, b, _ = two_region_half_maps(n, APIX, c[6], c[2], noise_sigma=0.5, seed=11)
    res = nf.matched_cv_filter_estimation(a, b, APIX, c, 1.0)
    stack, outs = brute_force_stack(a, b, APIX, c, 1.0)
    ref_idx = np.argmin(stack, axis=0)
    ref_min = np.min(stack, axis=0)
    srt = np.sort(stack, axis=0)
    scale = float(np.mean(ref_min))
    clear = (srt[1] - srt[0]) > 1e-4 * scale              # not a float32 near-tie
    idx = np.asarray(res.index_map)
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(idx[clear], ref_idx[clear])
    assert np.mean(idx == ref_idx) > 0.99
    np.testing.assert_allclose(np.asarray(res.cv_error_min), ref_min, rtol=1e-4, atol=1e-5 * scale)
    ref_out = np.take_along_axis(outs, idx[None].astype(np.int64), axis=0)[0]
    np.testing.assert_allclose(np.asarray(res.filtered_map), ref_out, atol=1e-4 * float(np.std(ref_out)))


# --------------------------------------------------------------------------------------------
# determinism, bookkeeping, memory
# --------------------------------------------------------------------------------------------

def test_deterministic(two_region, two_region_result):
    a, b, _ = two_region
    again = nf.matched_cv_filter_estimation(a, b, APIX)
    for name in ("resolution_map", "index_map", "filtered_map", "cv_error_min"):
        np.testing.assert_array_equal(getattr(again, name), getattr(two_region_result, name))
    a2, b2, t2 = two_region_half_maps(N, APIX, R1, R2, noise_sigma=0.5, seed=7)
    np.testing.assert_array_equal(a2, a)
    np.testing.assert_array_equal(b2, b)
    a3, _, _ = two_region_half_maps(N, APIX, R1, R2, noise_sigma=0.5, seed=8)
    assert not np.array_equal(a3, a)
    assert a.dtype == np.float32 and a.shape == (N, N, N)
    assert not np.array_equal(a, b)                           # independent noise per half


def test_generator_regions_and_band_limits():
    a, b, truth = two_region_half_maps(N, APIX, R1, R2, noise_sigma=0.0, seed=1)
    np.testing.assert_array_equal(a, b)                        # no noise: identical halves
    assert not np.any(truth["region1_mask"] & truth["region2_mask"])
    assert np.all(truth["region1_mask"] | truth["region2_mask"])
    assert np.all(truth["region1_mask"][truth["region1_core"]])
    assert np.all(truth["region2_mask"][truth["region2_core"]])
    assert truth["band_limits_A"] == (R1, R2)
    # the signal has no power beyond the finer band limit (plus the blend's spread)
    spec = np.abs(np.fft.rfftn(truth["signal"].astype(np.float64), axes=AXES)) ** 2
    radius = nf.shell_radius(N, np)
    assert spec[radius > N * APIX / R1 + 3].sum() < 5e-3 * spec.sum()


def test_fft_count_and_sub_timings(two_region, monkeypatch):
    a, b, _ = two_region
    calls = {"n": 0}
    for name in ("rfftn", "irfftn"):
        original = getattr(np.fft, name)

        def counted(*args, _f=original, **kwargs):
            calls["n"] += 1
            return _f(*args, **kwargs)

        monkeypatch.setattr(np.fft, name, counted)
    st = SubTimings()
    st.start_round()
    c = nf.candidate_resolutions(N, APIX, k=6)
    res = nf.matched_cv_filter_estimation(a, b, APIX, c, sub_timings=st)
    assert res.n_fft == nf.fft_count(6) == 2 + 4 * 6 == calls["n"]
    assert set(st.rounds[0]) == {"fft", "filter", "cv_error", "argmin"}
    assert all(st.tags[name] == ("GPU",) for name in st.rounds[0])
    assert all(v >= 0 for v in st.rounds[0].values())


def test_memory_plan_fits_11GB_and_bounds_the_numpy_peak():
    assert nf.memory_plan(256) < 11e9
    assert nf.memory_plan(256, 10) == nf.memory_plan(256, 40)      # streamed: independent of K
    parts = nf.memory_plan(256, detail=True)
    assert parts["total"] == parts["persistent"] + parts["per_candidate"] + parts["fft_plans"]

    n = 64
    a, b, _ = two_region_half_maps(n, APIX, 6.0, 9.0, noise_sigma=0.5, seed=2)
    peaks = {}
    for k in (4, 24):
        c = nf.candidate_resolutions(n, APIX, k=k)
        tracemalloc.start()
        try:
            res = nf.matched_cv_filter_estimation(a, b, APIX, c)
            peaks[k] = tracemalloc.get_traced_memory()[1] + a.nbytes + b.nbytes   # inputs predate tracing
        finally:
            tracemalloc.stop()
        del res
    plan = nf.memory_plan(n, 24)
    assert peaks[24] <= plan, (peaks, plan)
    assert peaks[24] >= 0.5 * plan, (peaks, plan)
    assert peaks[24] <= 1.05 * peaks[4]                          # no growth with K


def test_ties_go_to_the_coarser_candidate():
    z = np.zeros((16, 16, 16), np.float32)                     # every candidate's error is exactly 0
    res = nf.matched_cv_filter_estimation(z, z.copy(), APIX)
    assert np.all(np.asarray(res.index_map) == 0)
    assert np.all(np.asarray(res.resolution_map) == np.float32(res.candidates[0]))
    assert np.asarray(res.index_map).dtype == np.int32


def test_rejects_mismatched_or_non_cubic_maps():
    a = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(ValueError):
        nf.matched_cv_filter_estimation(a, np.zeros((16, 16, 8), np.float32), APIX)
    with pytest.raises(ValueError):
        nf.matched_cv_filter_estimation(np.zeros((16, 16, 8), np.float32), np.zeros((16, 16, 8), np.float32), APIX)
    with pytest.raises(ValueError):
        nf.matched_cv_filter_estimation(a, a, APIX, candidates=[])


# --------------------------------------------------------------------------------------------
# CuPy parity (runs where CuPy and a GPU are present)
# --------------------------------------------------------------------------------------------

def test_cupy_matches_numpy(two_region, two_region_result, cupy):
    cp = cupy
    a, b, truth = two_region
    ga, gb, _ = two_region_half_maps(N, APIX, R1, R2, noise_sigma=0.5, seed=7, xp=cp)
    np.testing.assert_array_equal(cp.asnumpy(ga), a)
    res = nf.matched_cv_filter_estimation(ga, gb, APIX)
    assert isinstance(res.index_map, cp.ndarray)
    idx = cp.asnumpy(res.index_map)
    ref = np.asarray(two_region_result.index_map)
    assert np.mean(idx == ref) > 0.999                         # ties aside
    same = idx == ref
    np.testing.assert_allclose(cp.asnumpy(res.cv_error_min)[same], np.asarray(two_region_result.cv_error_min)[same],
                               rtol=1e-4, atol=1e-6)
    assert known_answer_ok(
        nf.NuFilterResult(resolution_map=cp.asnumpy(res.resolution_map), index_map=idx,
                          filtered_map=cp.asnumpy(res.filtered_map), cv_error_min=cp.asnumpy(res.cv_error_min),
                          candidates=res.candidates, window_sigmas_vox=res.window_sigmas_vox, n_fft=res.n_fft),
        truth)
