"""Ab-initio pieces: Fourier cropping, the FSC filter, the SGD step, aligning a rotated mirror."""

from __future__ import annotations

import numpy as np

from pytest_cryobench.kernels.abinitio import (
    align_volumes,
    fourier_crop,
    fsc_weighted,
    initial_volume,
    rotate_volume,
    sgd_step,
)
from pytest_cryobench.kernels.fsc import fsc_maps
from pytest_cryobench.kernels.rotations import rotvec_to_matrix


def _blobs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:n, 0:n, 0:n] - n // 2
    v = np.zeros((n, n, n))
    for c in rng.uniform(-5, 5, (8, 3)):
        v += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / 4)
    return v.astype(np.float32)


def test_crop_to_the_same_size_is_the_identity_and_fsc_one_keeps_the_map():
    v = _blobs()
    assert np.allclose(fourier_crop(v, 24), v, atol=1e-5)
    assert np.allclose(fsc_weighted(v, np.ones(13)), v, atol=1e-3)  # shells beyond 12 (corners) go
    assert np.abs(fsc_weighted(v, np.zeros(13))).max() < 1e-6


def test_sgd_step_moves_towards_the_batch_map():
    v, target = np.zeros(3), np.ones(3)
    v1, vel = sgd_step(v, target, np.zeros(3), 0.5, 0.0)
    assert np.allclose(v1, 0.5) and np.allclose(vel, 0.5)
    v2, _ = sgd_step(v1, target, vel, 0.5, 0.5)
    assert np.allclose(v2, 0.5 + 0.25 + 0.25)


def test_a_rotated_mirror_is_aligned_back():
    truth = _blobs()
    moved = rotate_volume(truth, rotvec_to_matrix(np.array([0.4, -0.7, 1.1])), order=3)[::-1].copy()
    result = align_volumes(moved, truth)
    assert result.mirrored
    assert fsc_maps(result.aligned, truth)[1:8].min() > 0.9
    assert initial_volume(16, 0, 3.0).min() >= 0
