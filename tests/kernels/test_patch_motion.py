"""Patch motion against planted shifts, and the dose-weighting formula."""

from __future__ import annotations

import numpy as np

from pytest_cryobench.kernels.patch_motion import (
    critical_exposure,
    dose_weights,
    fit_planes,
    patch_motion,
    smooth_track,
)


def _moving_movie(shifts, size=192, dose=30.0, seed=0):
    rng = np.random.default_rng(seed)
    f = np.fft.rfft2(rng.normal(size=(size, size)))
    k = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None])
    f *= np.exp(-(k / 0.08) ** 2)
    ky, kx = np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None]
    frames = []
    for sy, sx in shifts:  # the specimen at x + s
        image = np.fft.irfft2(f * np.exp(-2j * np.pi * (ky * sy + kx * sx)), s=(size, size))
        frames.append(rng.poisson(dose * np.clip(1 + 0.5 * image / image.std(), 0, None)))
    return np.array(frames, dtype=np.uint8)


def test_planted_whole_frame_drift_is_recovered():
    t = np.arange(6) - 2.5
    shifts = np.column_stack([0.8 * t, -0.5 * t + 0.1 * t ** 2])
    shifts -= shifts.mean(axis=0)
    movie = _moving_movie(shifts)
    result = patch_motion(movie, np.ones(movie.shape[1:], np.float32), 2, 1.0, 1.0)
    assert np.abs(result.shifts - shifts).max() < 0.25
    assert np.abs(result.patch_shifts - shifts[None]).max() < 0.5  # no local motion planted
    assert result.summed.shape == movie.shape[1:] and np.isfinite(result.dose_weighted).all()


def test_critical_exposure_and_weights():
    assert np.isclose(critical_exposure(np.array(0.1)), 0.245 * 10 ** 1.665 + 2.81)
    w = dose_weights(np, (32, 32), 1.0, 2.0, 5)
    assert w.shape == (5, 32, 17) and np.all(np.diff(w, axis=0) <= 0) and np.all((w > 0) & (w <= 1))


def test_smoothing_and_planes_reproduce_exact_models():
    f = np.arange(8.0)
    track = np.column_stack([0.1 * f ** 2, 2 - f])
    assert np.allclose(smooth_track(track), track)
    uv = np.array([[-0.25, -0.25], [-0.25, 0.25], [0.25, -0.25], [0.25, 0.25]])
    planes = np.array([[[1.0, 2.0, -1.0], [0.0, 0.5, 0.5]]])  # (F=1, axis, 3)
    residual = np.einsum("pk,fak->pfa", np.column_stack([np.ones(4), uv]), planes)
    assert np.allclose(fit_planes(uv, residual), planes)
