"""The plain-NumPy reference FSC: its own known answers, and agreement with the kernel."""

from __future__ import annotations

import itertools

import numpy as np

from pytest_cryobench.data import fsc_reference as ref
from pytest_cryobench.kernels import fsc as kernel


def test_shell_counts_are_the_lattice_points_of_each_shell():
    n = 12
    counts = np.zeros(n // 2 + 1)
    freqs = [k if k < (n + 1) // 2 else k - n for k in range(n)]
    for kz, ky, kx in itertools.product(freqs, repeat=3):
        shell = int(np.floor(np.sqrt(kz * kz + ky * ky + kx * kx) + 0.5))
        if shell <= n // 2:
            counts[shell] += 1
    assert np.array_equal(ref.reference_shell_counts(n), counts)


def test_a_plane_wave_correlates_only_in_its_own_shell():
    n = 16
    z, y, x = np.meshgrid(*[np.arange(n)] * 3, indexing="ij")
    wave = np.cos(2 * np.pi * (3 * x + 4 * y) / n)  # |k| = 5
    power = ref.reference_shell_power(wave)
    assert np.flatnonzero(power > 1e-6).tolist() == [5]
    assert ref.reference_fsc(wave, 2 * wave)[5] == 1.0


def test_kernel_curves_agree_with_the_reference():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((20, 20, 20)).astype(np.float32)
    b = (a + rng.standard_normal(a.shape)).astype(np.float32)
    mask = (rng.random(a.shape) > 0.3).astype(np.float32)
    for m in (None, mask):
        assert np.allclose(kernel.fsc_maps(a, b, m), ref.reference_fsc(a, b, m), atol=1e-5)


def test_independent_noise_gives_the_expected_zero_curve():
    rng = np.random.default_rng(4)
    signal = np.zeros((24, 24, 24))
    expected = ref.expected_masked_fsc(signal, None, 1.0)
    assert np.all(expected == 0)
    curve = ref.reference_fsc(rng.standard_normal(signal.shape), rng.standard_normal(signal.shape))
    assert np.all(np.abs(curve[2:]) < 5 / np.sqrt(ref.reference_shell_counts(24)[2:]))
