"""CTF fitting against a CTF applied by the independently written formula of the generator."""

from __future__ import annotations

import numpy as np

from pytest_cryobench.data.workflow_specimen import specimen_ctf
from pytest_cryobench.kernels.ctf_fit import fit_ctf, tile_spectrum

OPTICS = {"accel_kv": 300.0, "cs_mm": 2.7, "amp_contrast": 0.1}


def test_defocus_astigmatism_and_angle_are_recovered():
    rng = np.random.default_rng(4)
    n, apix = 512, 2.0
    df1, df2, angle = 18600.0, 17400.0, 0.6
    ctf = specimen_ctf((n, n), apix, df1, df2, angle, **{"kv": 300.0, "cs_mm": 2.7, "amp": 0.1})
    image = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(n, n))) * ctf, s=(n, n)) + 0.7 * rng.normal(size=(n, n))
    fit = fit_ctf(image.astype(np.float32), apix, OPTICS)
    assert abs(fit["df1_A"] - df1) < 150 and abs(fit["df2_A"] - df2) < 150
    assert abs((np.degrees(fit["df_angle_rad"] - angle) + 90) % 180 - 90) < 5


def test_tile_spectrum_of_white_noise_is_flat():
    rng = np.random.default_rng(1)
    spectrum = tile_spectrum(rng.normal(size=(256, 256)), 64)
    assert spectrum.shape == (64, 33)
    assert abs(spectrum[5:30, 5:30].mean() / 64 ** 2 - 1) < 0.05
