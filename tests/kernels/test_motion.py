"""Global motion correction (kernels/motion.py): planted shifts recovered, the sign convention,
Fourier binning, chunking, the gain, the aligned sum against the truth, and the CuPy backend.

The test movies are Poisson counts of a smooth random specimen, ``rate * exp(c z - c^2 / 2)`` with
``z`` a band-limited unit-variance field, displaced per frame by a Fourier phase ramp (an exact
circular translation, also for fractional shifts). Frame ``i`` with planted shift ``s_i`` is
``specimen(y - s_y, x - s_x)``; the kernel reports ``s_i - mean(s)``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_cryobench.kernels import motion as M

SHAPE = (256, 256)


def smooth_specimen(shape, seed, feature_px=3.0):
    """The band-limited field's half spectrum (unit variance), and a function rate_at(shift)."""
    rng = np.random.default_rng(seed)
    ky, kx = np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * np.exp(-2 * math.pi ** 2 * feature_px ** 2 * (ky ** 2 + kx ** 2))
    spectrum[0, 0] = 0
    spectrum /= np.fft.irfft2(spectrum, s=shape).std()

    def rate_at(shift, rate=1.0, contrast=0.6):
        field = np.fft.irfft2(spectrum * np.exp(-2j * math.pi * (ky * shift[0] + kx * shift[1])), s=shape)
        return rate * np.exp(contrast * field - contrast ** 2 / 2)

    return rate_at


def noisy_movie(shifts, shape=SHAPE, seed=0, rate=1.0):
    """float32 Poisson frames (F, H, W) of the specimen at ``shifts``, and the ideal aligned sum."""
    rate_at = smooth_specimen(shape, seed)
    rng = np.random.default_rng(seed + 1000)
    frames = np.stack([rng.poisson(rate_at(s, rate)) for s in shifts]).astype(np.float32)
    return frames, len(shifts) * rate_at(np.mean(shifts, axis=0), rate)


def planted(n, seed, limit=6.0):
    """``n`` fractional shifts, uniform in +-limit pixels per axis (y, x)."""
    return np.random.default_rng(seed).uniform(-limit, limit, size=(n, 2))


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def chi2(image, expected):
    """Mean of (image - expected)^2 / expected: about 1 for a sum of Poisson counts of mean ``expected``."""
    return float(np.mean((np.asarray(image, np.float64) - expected) ** 2 / expected))


@pytest.fixture(scope="module")
def drifting():
    """12 frames with fractional shifts up to +-6 px, and the kernel's result on them."""
    shifts = planted(12, seed=3)
    frames, truth = noisy_movie(shifts, seed=3)
    return shifts, frames, truth, M.align_frames(frames)


# -- geometry ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, bin_to, expected", [
    ((256, 256), 1024, (256, 256)),        # fits: no binning
    ((255, 257), 1024, (255, 257)),        # odd sizes kept when nothing is cut
    ((4096, 4096), 1024, (1024, 1024)),    # Falcon 4: bin 4
    ((8184, 11520), 1024, (726, 1024)),    # K3 super-resolution: bin 11.25, rounded down to even
    ((4092, 5760), 1024, (726, 1024)),     # K3
    ((512, 512), 256, (256, 256)),
])
def test_binned_shape(shape, bin_to, expected):
    assert M.binned_shape(shape, bin_to) == expected


def test_crop_spectrum_resamples_low_frequencies():
    """Cropping the rfft2 of low-frequency cosines gives the same cosines on the coarser grid."""
    h, w, hb, wb = 64, 96, 32, 48
    y, x = np.mgrid[0:h, 0:w]
    yb, xb = np.mgrid[0:hb, 0:wb]
    image = np.cos(2 * np.pi * (3 * y / h + 5 * x / w)) + 0.5 * np.sin(2 * np.pi * (-7 * y / h + 2 * x / w))
    want = np.cos(2 * np.pi * (3 * yb / hb + 5 * xb / wb)) + 0.5 * np.sin(2 * np.pi * (-7 * yb / hb + 2 * xb / wb))
    spectrum = np.fft.rfft2(image.astype(np.float32))[None]
    cropped = M.crop_spectrum(spectrum, (h, w), (hb, wb))
    assert cropped.shape == (1, hb, wb // 2 + 1)
    got = np.fft.irfft2(cropped[0], s=(hb, wb)) * (hb * wb) / (h * w)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert M.crop_spectrum(spectrum, (h, w), (h, w)) is spectrum


# -- known answers ---------------------------------------------------------------------------------

def test_recovers_planted_fractional_shifts(drifting):
    shifts, frames, _, result = drifting
    assert result.shifts.shape == (12, 2) and result.shifts.dtype == np.float64
    assert isinstance(result.shifts, np.ndarray)
    np.testing.assert_allclose(result.shifts.mean(axis=0), 0, atol=1e-9)
    error = np.abs(result.shifts - (shifts - shifts.mean(axis=0)))
    assert error.max() < 0.3, error.max()
    assert result.binned_shape == SHAPE and result.iterations >= 2


def test_aligned_sum_matches_the_truth_better_than_the_plain_sum(drifting):
    _, frames, truth, result = drifting
    assert result.aligned_sum.shape == SHAPE and result.aligned_sum.dtype == np.float32
    aligned, plain = corr(result.aligned_sum, truth), corr(frames.sum(axis=0), truth)
    assert aligned > 0.9 and aligned > plain + 0.1, (aligned, plain)
    # the aligned sum differs from the truth by Poisson noise only (chi2 about 1, measured 1.01);
    # the plain sum also by the blur of the motion (measured 2.2)
    assert chi2(result.aligned_sum, truth) < 1.05 and chi2(frames.sum(axis=0), truth) > 1.5
    # a translation keeps every count: the totals agree
    assert math.isclose(float(result.aligned_sum.sum(dtype=np.float64)), float(frames.sum(dtype=np.float64)),
                        rel_tol=1e-4)


def test_sign_convention_positive_x_is_a_move_to_larger_columns():
    """A frame whose content is rolled +3 columns reports +3 in x relative to the others."""
    rate = smooth_specimen(SHAPE, seed=5)((0.0, 0.0))
    movie = np.random.default_rng(6).poisson(rate, size=(4, *SHAPE)).astype(np.float32)
    movie[3] = np.roll(movie[3], 3, axis=1)  # specimen at x + 3 in frame 3
    movie[2] = np.roll(movie[2], -2, axis=0)  # specimen at y - 2 in frame 2
    shifts = M.align_frames(movie).shifts
    relative = shifts - shifts[0]
    np.testing.assert_allclose(relative[3], [0, 3], atol=0.2)
    np.testing.assert_allclose(relative[2], [-2, 0], atol=0.2)
    np.testing.assert_allclose(relative[1], [0, 0], atol=0.2)


def test_no_motion_gives_no_shifts():
    frames, _ = noisy_movie(np.zeros((8, 2)), seed=8)
    assert np.abs(M.align_frames(frames).shifts).max() < 0.3


def test_binned_search_reports_full_resolution_pixels():
    """512^2 frames searched at 256^2 (bin 2): shifts still within 0.3 full-resolution pixels."""
    shifts = planted(8, seed=11)
    frames, truth = noisy_movie(shifts, shape=(512, 512), seed=11)
    result = M.align_frames(frames, bin_to=256)
    assert result.binned_shape == (256, 256)
    assert np.abs(result.shifts - (shifts - shifts.mean(axis=0))).max() < 0.3
    assert corr(result.aligned_sum, truth) > corr(frames.sum(axis=0), truth) + 0.1
    assert chi2(result.aligned_sum, truth) < 1.05 and chi2(frames.sum(axis=0), truth) > 1.5


def test_chunks_do_not_change_the_answer(drifting):
    _, frames, _, whole = drifting
    chunked = M.align_frames(frames, chunk_frames=5)  # 5, 5, 2
    np.testing.assert_allclose(chunked.shifts, whole.shifts, atol=1e-6)
    np.testing.assert_allclose(chunked.aligned_sum, whole.aligned_sum, rtol=1e-4, atol=1e-3)


def test_gain_multiplies_every_frame(drifting):
    _, frames, _, whole = drifting
    gain = np.random.default_rng(2).uniform(0.5, 1.5, SHAPE).astype(np.float32)
    counts = frames.astype(np.uint16)
    with_gain = M.align_frames(counts, gain=gain, chunk_frames=4)
    corrected = M.align_frames(counts.astype(np.float32) * gain, chunk_frames=4)
    np.testing.assert_allclose(with_gain.shifts, corrected.shifts, atol=1e-6)
    np.testing.assert_allclose(with_gain.aligned_sum, corrected.aligned_sum, rtol=1e-4, atol=1e-3)
    assert counts.dtype == np.uint16  # the input is not modified


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 frames"):
        M.align_frames(np.ones((1, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"\(F, H, W\)"):
        M.align_frames(np.ones((16, 16), np.float32))
    with pytest.raises(ValueError, match="gain"):
        M.align_frames(np.ones((2, 16, 16), np.float32), gain=np.ones((8, 8), np.float32))


def test_align_frames_cupy_parity(cupy, drifting):
    cp = cupy
    shifts, frames, truth, host = drifting
    result = M.align_frames(cp.asarray(frames), chunk_frames=5)
    assert type(result.aligned_sum) is cp.ndarray and isinstance(result.shifts, np.ndarray)
    np.testing.assert_allclose(result.shifts, host.shifts, atol=0.01)
    np.testing.assert_allclose(result.aligned_sum.get(), host.aligned_sum, rtol=1e-3, atol=1e-2)
    gain = cp.full(SHAPE, 2.0, dtype=cp.float32)
    doubled = M.align_frames(cp.asarray(frames).astype(cp.uint16), gain=gain)
    np.testing.assert_allclose(doubled.aligned_sum.get(), 2 * host.aligned_sum, rtol=1e-3, atol=2e-2)
