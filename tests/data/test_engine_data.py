"""The engine data's own image formation: CTF, group and analytic transforms by independent routes."""

from __future__ import annotations

import numpy as np

from pytest_cryobench.data import engine


def test_documented_ctf_agrees_with_the_kernel_ctf():
    from pytest_cryobench.kernels.ctf import ctf_at, frequency_grid

    n, apix = 48, 2.0
    ky, kx = frequency_grid((n, n), apix, rfft=False)
    df1, df2, angle = np.array([15_000.0, 9_000.0]), np.array([14_700.0, 9_300.0]), np.array([0.7, 2.1])
    kernel = ctf_at(kx[None], ky[None], df1[:, None, None], df2[:, None, None], angle[:, None, None],
                    accel_kv=300.0, cs_mm=2.7, amp_contrast=0.1, dtype=np.float64)
    assert np.abs(engine.documented_ctf(n, apix, df1, df2, angle) - kernel).max() < 1e-3
    # and its own known values: -A at the origin; the first zero of an unastigmatic CTF
    ctf = engine.documented_ctf(n, apix, [20_000.0], [20_000.0], [0.0])
    assert abs(ctf[0, 0, 0] + 0.1) < 1e-12
    lam = engine.wavelength_A(300.0)
    assert abs(lam - 0.019687) < 2e-6


def test_dihedral_group_is_the_kernel_group():
    from pytest_cryobench.kernels.rotations import symmetry_group

    ours, kernel = engine.dihedral_group(7), symmetry_group("D7")
    distance = np.abs(ours[:, None].reshape(14, 1, 9) - kernel.reshape(1, 14, 9)).max(axis=2)
    assert np.all(distance.min(axis=0) < 1e-12) and np.all(distance.min(axis=1) < 1e-12)


def test_analytic_slice_coefficients_are_the_transform_of_the_projections():
    from scipy.spatial.transform import Rotation

    from pytest_cryobench.kernels.projection import fourier_coords

    n = 32
    model = engine.blob_model(n, 1.0, seed=3)
    rotations = Rotation.random(3, random_state=1).as_matrix()
    images = engine.blob_projections(model, rotations, np.zeros((3, 2)), n).astype(np.float64)
    coords = fourier_coords(n, n / 2 - 1)
    spectra = np.fft.rfft2(np.fft.ifftshift(images, axes=(1, 2))).reshape(3, -1)[:, coords.flat]
    expected = engine.blob_slice_coefficients(model, rotations, coords.ky, coords.kx, n)
    assert np.linalg.norm(spectra - expected) / np.linalg.norm(expected) < 1e-3  # float32 images
