"""The CTF on FFT grids: wavelength, sign convention, zeros where the formula puts them, astigmatism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from pytest_cryobench.kernels.ctf import ctf_2d, electron_wavelength_A, first_zero_A_inv, frequency_grid


def wavelength_textbook(kv):
    """The usual closed form, λ = 12.2643 / sqrt(V (1 + 0.978466e-6 V)) Å, V in volts."""
    volts = kv * 1e3
    return 12.2643247 / math.sqrt(volts * (1 + 0.978466e-6 * volts))


def first_zero_by_root_finding(df, kv=300.0, cs_mm=2.7, amp=0.1, phase=0.0):
    """Solve χ(s) + arcsin A = π for s (1/Å) numerically, from the formula written out here."""
    lam = wavelength_textbook(kv)
    cs = cs_mm * 1e7

    def f(s):
        return math.pi * lam * df * s * s - 0.5 * math.pi * cs * lam ** 3 * s ** 4 + phase + math.asin(amp) - math.pi

    return brentq(f, 1e-9, 2.0 / math.sqrt(lam * df), xtol=1e-14)


def first_upward_zero_index(profile):
    """Index of the first grid point where the CTF profile (negative at s = 0) reaches >= 0."""
    assert profile[0] < 0
    return int(np.argmax(profile >= 0))


@pytest.mark.parametrize("kv, expected", [(300, 0.01969), (200, 0.02508), (120, 0.03349)])
def test_wavelength(kv, expected):
    assert electron_wavelength_A(kv) == pytest.approx(expected, abs=1e-5)
    assert electron_wavelength_A(kv) == pytest.approx(wavelength_textbook(kv), rel=1e-5)


def test_wavelength_rejects_nonpositive_voltage():
    with pytest.raises(ValueError):
        electron_wavelength_A(0)


@pytest.mark.parametrize("amp", [0.0, 0.07, 0.1, 0.3])
def test_zero_frequency_is_minus_amplitude_contrast(amp):
    ctf = ctf_2d((64, 64), 1.0, 15000, 12000, 0.4, amp_contrast=amp)
    assert ctf[0, 0] == pytest.approx(-amp, abs=1e-7)


@pytest.mark.parametrize("phase", [0.0, math.pi / 2, 1.0])
def test_zero_frequency_with_phase_shift(phase):
    amp = 0.1
    ctf = ctf_2d((32, 32), 1.0, 5000, 5000, 0.0, amp_contrast=amp, phase_shift_rad=phase)
    assert ctf[0, 0] == pytest.approx(-math.sin(phase + math.asin(amp)), abs=1e-7)


def test_low_frequencies_are_negative_for_underfocus():
    # The sign convention: CTF = -sin(chi + asin A), so contrast starts negative and gets stronger.
    ctf = ctf_2d((512, 512), 1.0, 20000, 20000, 0.0)
    assert ctf[0, 0] < 0 and ctf[0, 3] < ctf[0, 0]


@pytest.mark.parametrize("df", [8000.0, 15000.0, 30000.0])
@pytest.mark.parametrize("kv, cs", [(300, 2.7), (200, 2.0)])
def test_first_zero_where_the_formula_puts_it(df, kv, cs):
    n, apix = 512, 1.0
    expected = first_zero_by_root_finding(df, kv=kv, cs_mm=cs)
    # rel 1e-5: the textbook wavelength above is a 6-digit approximation of the CODATA one.
    assert first_zero_A_inv(df, accel_kv=kv, cs_mm=cs) == pytest.approx(expected, rel=1e-5)
    ctf = ctf_2d((n, n), apix, df, df, 0.0, accel_kv=kv, cs_mm=cs)
    step = 1.0 / (n * apix)
    along_x = ctf[0, :]                      # kx axis of the rfft grid
    along_y = ctf[: n // 2, 0]               # ky axis
    for profile in (along_x, along_y):
        i = first_upward_zero_index(profile)
        assert profile[i - 1] < 0 <= profile[i]
        assert abs(i * step - expected) <= step


def test_first_zero_with_phase_plate_comes_earlier():
    no_plate = first_zero_by_root_finding(10000.0)
    plate = first_zero_by_root_finding(10000.0, phase=math.pi / 2)
    assert plate < no_plate
    assert first_zero_A_inv(10000.0, phase_shift_rad=math.pi / 2) == pytest.approx(plate, rel=1e-5)


def test_astigmatism_rotates_with_angle():
    n = 256
    zero_deg = ctf_2d((n, n), 1.5, 20000, 12000, 0.0, rfft=False)
    ninety_deg = ctf_2d((n, n), 1.5, 20000, 12000, math.pi / 2, rfft=False)
    # On a square grid, transposing swaps kx and ky: theta -> 90 deg - theta.
    np.testing.assert_allclose(ninety_deg, zero_deg.T, atol=2e-6)
    # Swapping df1 and df2 is the same as turning the astigmatism by 90 degrees.
    swapped = ctf_2d((n, n), 1.5, 12000, 20000, math.pi / 2, rfft=False)
    np.testing.assert_allclose(swapped, zero_deg, atol=2e-6)


def test_df1_lies_along_the_angle():
    n, apix, df1, df2 = 512, 1.0, 24000.0, 12000.0
    ctf = ctf_2d((n, n), apix, df1, df2, math.pi / 4, rfft=False)
    idx = np.arange(n // 2)
    diagonal = ctf[idx, idx]                 # theta = 45 deg: defocus df1
    anti_diagonal = ctf[(-idx) % n, idx]     # theta = -45 deg: defocus df2
    step = math.sqrt(2) / (n * apix)
    for profile, df in ((diagonal, df1), (anti_diagonal, df2)):
        i = first_upward_zero_index(profile)
        assert abs(i * step - first_zero_by_root_finding(df)) <= step
    # The larger defocus has its first zero at the lower frequency.
    assert first_upward_zero_index(diagonal) < first_upward_zero_index(anti_diagonal)


@pytest.mark.parametrize("shape", [(64, 64), (48, 80), (50, 37)])
def test_rfft_grid_is_left_half_of_full_grid(shape):
    half = ctf_2d(shape, 1.2, 16000, 14000, 0.7)
    full = ctf_2d(shape, 1.2, 16000, 14000, 0.7, rfft=False)
    assert half.shape == (shape[0], shape[1] // 2 + 1)
    assert full.shape == shape
    assert half.dtype == np.float32
    if shape[1] % 2:
        np.testing.assert_allclose(half, full[:, : shape[1] // 2 + 1], atol=1e-7)
    else:
        # rfftfreq puts +Nyquist in the last column, fftfreq -Nyquist; CTF(k) = CTF(-k) maps one to the other.
        np.testing.assert_allclose(half[:, :-1], full[:, : shape[1] // 2], atol=1e-7)
        # (The corner (-Nyquist, Nyquist) has no partner on the full grid: left out.)
        rows = np.array([i for i in range(shape[0]) if 2 * i != shape[0]])
        np.testing.assert_allclose(half[rows, -1], full[(-rows) % shape[0], shape[1] // 2], atol=1e-7)
    assert np.all(np.abs(full) <= 1.0)


def test_frequency_grid_units():
    ky, kx = frequency_grid((100, 100), 2.0)
    assert ky.shape == (100, 1) and kx.shape == (1, 51)
    assert kx[0, -1] == pytest.approx(0.25)  # Nyquist = 1 / (2 apix)
    assert ky[1, 0] == pytest.approx(1 / 200)


def test_bfactor_envelope_damps():
    plain = ctf_2d((128, 128), 1.0, 15000, 15000, 0.0)
    damped = ctf_2d((128, 128), 1.0, 15000, 15000, 0.0, bfactor_A2=200.0)
    assert np.all(np.abs(damped) <= np.abs(plain) + 1e-7)
    assert damped[0, 0] == pytest.approx(plain[0, 0])
    assert abs(damped[0, 60]) < 0.5 * abs(plain[0, 60]) or abs(plain[0, 60]) < 1e-3


def test_rejects_bad_amplitude_contrast():
    with pytest.raises(ValueError):
        ctf_2d((8, 8), 1.0, 1000, 1000, 0.0, amp_contrast=1.0)
