"""FSC kernels: shell binning, half-grid weights, identities, designed half maps (known answer),
phase randomisation, noise substitution, the 0.143 resolution rule and the array backend.

Statistics used below: for two independent white-noise maps the FSC of a shell of ``M`` voxels
(full FFT grid) is about normal with standard deviation ``1 / sqrt(M)`` (``M / 2`` independent
complex pairs), so "decorrelated" means ``|FSC| < 4 / sqrt(M)`` (4 sigma; at most 0.1 here).
Two maps with the same (or correlated) amplitudes and independent random phases have twice that
variance (``E|F|^4 = 2 (E|F|^2)^2`` for Gaussian amplitudes): the bound is then ``4 sqrt(2) / sqrt(M)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cryobench.data.synthetic_maps import designed_half_maps
from pytest_cryobench.kernels import fsc as F
from pytest_cryobench.kernels import masks


def full_grid_fsc(v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Reference: complex fftn over the whole grid, shells round(|k|) <= n // 2, float64."""
    n = v1.shape[0]
    k = np.fft.fftfreq(n) * n
    shell = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)).astype(int)
    keep = shell <= n // 2
    a, b = np.fft.fftn(v1.astype(np.float64)), np.fft.fftn(v2.astype(np.float64))
    num = np.bincount(shell[keep], (a * b.conj()).real[keep])
    p1 = np.bincount(shell[keep], (np.abs(a) ** 2)[keep])
    p2 = np.bincount(shell[keep], (np.abs(b) ** 2)[keep])
    return num / np.sqrt(p1 * p2)


def noise_bound(n: int, same_amplitudes: bool = False) -> np.ndarray:
    """4 sigma of the FSC of decorrelated maps per shell, at most 0.1 (see the module notes)."""
    factor = np.sqrt(2) if same_amplitudes else 1.0
    return np.minimum(4 * factor / np.sqrt(F.shell_counts(n)), 0.1)


@pytest.fixture(scope="module")
def designed():
    """n = 96, signal band-limited at shell 40, noise sigma 1: the 0.143 crossing near shell 26."""
    return designed_half_maps(96, 1.5, 40, 1.0, seed=1)


# -- shells -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [8, 9])
def test_shell_index_rounds_the_radius_and_drops_the_corners(n):
    idx = F.shell_index(n)
    assert idx.shape == (n, n, n // 2 + 1) and idx.dtype == np.int64
    k = np.fft.fftfreq(n) * n
    kx = np.arange(n // 2 + 1)
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    expected = np.where(np.rint(r) <= n // 2, np.rint(r), n // 2 + 1)
    np.testing.assert_array_equal(idx, expected)
    assert idx[0, 0, 0] == 0 and idx[0, 0, 1] == 1 and idx[n // 2, n // 2, n // 2] == n // 2 + 1
    assert F.shell_index(n) is idx  # cached


@pytest.mark.parametrize("n", [16, 17])
def test_shell_counts_are_full_grid_counts(n):
    k = np.fft.fftfreq(n) * n
    shell = np.rint(np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)).astype(int)
    full = np.bincount(shell[shell <= n // 2], minlength=n // 2 + 1)
    np.testing.assert_array_equal(F.shell_counts(n), full)
    assert F.shell_counts(n)[:2].tolist() == [1, 18]  # |k| = 1 (6) and sqrt(2) (12)


@pytest.mark.parametrize("n", [40, 33])
def test_shell_matrix_rows_are_chunks_of_one_shell(n):
    """Every half-grid element of shells 0..n//2 is summed once (real and imaginary column), with
    its weight, in rows of at most SHELL_CHUNK values that each belong to one shell."""
    shells = F._shell_matrix(n, np)
    m = shells.matrix
    assert np.diff(m.indptr).max() <= F.SHELL_CHUNK
    assert np.unique(shells.shell_of_row).tolist() == list(range(n // 2 + 1))
    idx = F.shell_index(n).ravel()
    coo = m.tocoo()
    np.testing.assert_array_equal(idx[coo.col // 2], shells.shell_of_row[coo.row])
    assert m.nnz == 2 * np.count_nonzero(idx <= n // 2)
    ones = np.ones(2 * idx.size, dtype=np.float32)
    np.testing.assert_array_equal(shells.sum(ones, n) / 2, F.shell_counts(n))



# -- FSC ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [48, 45])
def test_half_grid_fsc_equals_full_grid_fsc(n):
    """Interior kx planes weighted 2, kx = 0 and Nyquist planes 1: the full-FFT FSC to 1e-6."""
    rng = np.random.default_rng(n)
    v1 = rng.standard_normal((n, n, n))
    v2 = 0.7 * v1 + rng.standard_normal((n, n, n))
    np.testing.assert_allclose(F.fsc_maps(v1, v2), full_grid_fsc(v1, v2), atol=1e-6)
    # single precision maps agree too, to float32 accuracy
    got = F.fsc_maps(v1.astype(np.float32), v2.astype(np.float32))
    np.testing.assert_allclose(got, full_grid_fsc(v1, v2), atol=1e-5)
    # unweighted half-grid sums would not: the weights matter
    f1, f2 = np.fft.rfftn(v1), np.fft.rfftn(v2)
    idx = F.shell_index(n).ravel()
    num = np.bincount(idx, (f1 * f2.conj()).real.ravel())[: n // 2 + 1]
    den = np.sqrt(np.bincount(idx, (np.abs(f1) ** 2).ravel()) * np.bincount(idx, (np.abs(f2) ** 2).ravel()))
    assert np.abs(num / den[: n // 2 + 1] - full_grid_fsc(v1, v2)).max() > 1e-4


def test_fsc_identities(designed):
    v = designed.half_a
    has_power = F.to_host(F.shell_power(np.fft.rfftn(v))) > 0
    assert has_power.all()
    np.testing.assert_allclose(F.fsc_maps(v, v), 1.0, atol=1e-6)
    np.testing.assert_allclose(F.fsc_maps(v, -v), -1.0, atol=1e-6)
    np.testing.assert_allclose(F.fsc_maps(v, 3 * v), 1.0, atol=1e-6)
    # an added constant changes only the mean (shell 0)
    np.testing.assert_allclose(F.fsc_maps(v, 3 * v + 5)[1:], 1.0, atol=1e-6)
    # a shell without power in a map has FSC 0
    f = np.fft.rfftn(v)
    f[F.shell_index(96) > 40] = 0
    curve = F.fsc(f, np.fft.rfftn(designed.half_b))
    assert np.all(curve[41:] == 0.0) and np.all(curve[:20] > 0.5)
    assert np.all(F.fsc(f, f)[41:] == 0.0)
    # symmetric in its arguments
    np.testing.assert_allclose(F.fsc_maps(designed.half_a, designed.half_b),
                               F.fsc_maps(designed.half_b, designed.half_a), atol=1e-12)


def test_fsc_checks_shapes():
    with pytest.raises(ValueError):
        F.fsc(np.zeros((8, 8, 5), complex), np.zeros((8, 8, 4), complex))
    with pytest.raises(ValueError):
        F.fsc(np.zeros((8, 8, 8), complex), np.zeros((8, 8, 8), complex))
    with pytest.raises(ValueError):
        F.fsc_maps(np.zeros((8, 8, 6)), np.zeros((8, 8, 6)))
    with pytest.raises(ValueError):
        F.fsc_maps(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), mask=np.ones((4, 4, 4)))


# -- designed half maps: the known answer --------------------------------------------------------

def test_designed_half_maps_give_the_designed_curve(designed):
    n = 96
    a, b, signal, expected, crossing = designed
    for v in (a, b, signal):
        assert v.shape == (n, n, n) and v.dtype == np.float32
    assert expected.shape == (n // 2 + 1,)
    assert signal.std() == pytest.approx(1.0, rel=1e-4)
    measured = F.fsc_maps(a, b)
    cross = crossing["shell"]
    assert 20 <= cross <= 35 and crossing["crossed"]  # an SNR-limited crossing well inside the band
    # per shell within 0.03 up to the crossing (shell 0, the mean alone, is one random number)
    assert np.abs(measured - expected)[1:cross + 2].max() < 0.03
    # the 0.143 crossing within one shell of the designed one
    got = F.resolution_at(measured, n=n, apix=1.5)
    assert abs(got["shell"] - cross) <= 1
    assert abs(got["shell_interpolated"] - crossing["shell_interpolated"]) <= 1
    assert crossing["resolution_A"] == pytest.approx(n * 1.5 / cross)
    # beyond the band limit (shell 40) only noise: |FSC| < 4 / sqrt(M), and < 0.1
    assert np.all(expected[41:] == 0)
    assert np.all(np.abs(measured[41:]) < noise_bound(n)[41:])


def test_designed_half_maps_band_limit_sets_the_crossing():
    """Little noise: the curve stays high to the hard band limit and crosses right after it."""
    n, band = 64, 24
    a, b, signal, expected, crossing = designed_half_maps(n, 2.0, band, 0.01, seed=3)
    assert crossing["shell"] == band
    power = F.to_host(F.shell_power(np.fft.rfftn(signal.astype(np.float64))))
    assert np.all(power[band + 1:] < 1e-10 * power[1])  # zero power beyond the band (fp rounding)
    measured = F.fsc_maps(a, b)
    assert F.resolution_at(measured, n=n, apix=2.0)["shell"] == band
    assert np.all(np.abs(measured[band + 1:]) < noise_bound(n)[band + 1:])


def test_designed_half_maps_are_deterministic():
    one = designed_half_maps(48, 1.0, 20, 0.5, seed=9)
    two = designed_half_maps(48, 1.0, 20, 0.5, seed=9)
    other = designed_half_maps(48, 1.0, 20, 0.5, seed=10)
    for x, y in zip(one[:4], two[:4], strict=True):
        np.testing.assert_array_equal(x, y)
    assert one.crossing == two.crossing
    assert not np.array_equal(one.half_a, other.half_a)
    # the envelope keeps the signal inside a sphere of 0.3 n
    outside = masks.soft_sphere(48, 0.3 * 48 + 6, 0.3 * 48 + 6) == 0
    assert np.abs(one.signal[outside]).mean() < 0.1 * np.abs(one.signal).mean()
    with pytest.raises(ValueError):
        designed_half_maps(48, 1.0, 25, 0.5, seed=1)


# -- phase randomisation ------------------------------------------------------------------------

def test_randomize_phases_beyond_a_shell(designed):
    n, s = 96, 20
    v = designed.half_a
    f = np.fft.rfftn(v)
    g = F.randomize_phases_beyond(f, s, 5)
    assert g.shape == f.shape and g.dtype == f.dtype == np.complex64
    idx = F.shell_index(n)
    np.testing.assert_array_equal(g[idx < s], f[idx < s])
    np.testing.assert_allclose(np.abs(g), np.abs(f), rtol=1e-5, atol=1e-3)
    assert np.mean(np.angle(g[idx >= s]) == np.angle(f[idx >= s])) < 1e-3
    # the real map that results: the same below s, decorrelated beyond
    w = np.fft.irfftn(g, s=v.shape, axes=(0, 1, 2))
    curve = F.fsc_maps(v, w)
    np.testing.assert_allclose(curve[:s], 1.0, atol=1e-5)
    assert np.all(np.abs(curve[s:]) < noise_bound(n, same_amplitudes=True)[s:])
    # the amplitudes survive the round trip except in the kx = 0 and Nyquist planes, whose
    # Hermitian symmetry irfftn restores
    back = np.fft.rfftn(w)
    np.testing.assert_allclose(np.abs(back[:, :, 1:n // 2]), np.abs(g[:, :, 1:n // 2]), rtol=1e-4, atol=1e-2)
    assert not np.allclose(np.abs(back[:, :, 0]), np.abs(f[:, :, 0]), rtol=1e-3)


def test_randomize_phases_is_deterministic_per_seed(designed):
    f = np.fft.rfftn(designed.half_b)
    one = F.randomize_phases_beyond(f, 10, 42)
    np.testing.assert_array_equal(one, F.randomize_phases_beyond(f, 10, 42))
    np.testing.assert_array_equal(one, F.randomize_phases_beyond(f, 10, np.random.default_rng(42)))
    assert not np.array_equal(one, F.randomize_phases_beyond(f, 10, 43))
    # shell 0 on: every element, the mean included
    everything = F.randomize_phases_beyond(f, 0, 1)
    assert everything[0, 0, 0] != f[0, 0, 0]
    np.testing.assert_allclose(np.abs(everything), np.abs(f), rtol=1e-5, atol=1e-3)


# -- noise substitution ---------------------------------------------------------------------------

def test_noise_substitution_rules(designed):
    a, b = designed.half_a, designed.half_b
    tight = masks.tight_mask((a + b) / 2, 1.5)
    out = F.noise_substituted_fsc(a, b, tight, seed=7)
    assert set(out) == {"unmasked", "randomize_shell", "fsc_t", "fsc_n", "fsc_true"}
    s = out["randomize_shell"]
    unmasked = out["unmasked"]
    assert s == int(np.flatnonzero(unmasked[1:] < 0.143)[0]) + 1
    assert abs(s - (designed.crossing["shell"] + 1)) <= 1
    np.testing.assert_allclose(unmasked, F.fsc_maps(a, b), atol=1e-12)
    np.testing.assert_allclose(out["fsc_t"], F.fsc_maps(a, b, tight), atol=1e-12)
    # below s + 2: FSC_t kept; from s + 2 on: (FSC_t - FSC_n) / (1 - FSC_n)
    np.testing.assert_array_equal(out["fsc_true"][:s + 2], out["fsc_t"][:s + 2])
    t, nn = out["fsc_t"][s + 2:], out["fsc_n"][s + 2:]
    np.testing.assert_allclose(out["fsc_true"][s + 2:], (t - nn) / (1 - nn), atol=1e-12)
    # the unrandomised shells keep their correlation under the mask: FSC_n ~ FSC_t well below s
    np.testing.assert_allclose(out["fsc_n"][1:s - 5], out["fsc_t"][1:s - 5], atol=0.02)
    # the tight mask spreads signal into high shells (mask-induced correlation: FSC_t well above
    # the unmasked FSC there); phase-randomised maps show the same spread, and the correction takes
    # most of it out (what stays is the masked maps' real gain in SNR)
    high = slice(s + 2, None)
    assert out["fsc_t"][high].mean() > 0.08 > 0.02 > abs(unmasked[high].mean())
    assert abs(out["fsc_true"][high].mean()) < out["fsc_t"][high].mean() / 2
    for key in ("unmasked", "fsc_t", "fsc_n", "fsc_true"):
        assert type(out[key]) is np.ndarray and out[key].shape == (49,)
    # deterministic for a seed
    again = F.noise_substituted_fsc(a, b, tight, seed=7)
    for key in ("fsc_n", "fsc_true"):
        np.testing.assert_array_equal(out[key], again[key])


def test_noise_substitution_without_a_mask_changes_nothing(designed):
    """All-ones mask: FSC_t is the unmasked FSC, FSC_n ~ 0 beyond s, the correction ~ identity."""
    a, b = designed.half_a, designed.half_b
    out = F.noise_substituted_fsc(a, b, np.ones_like(a), seed=3)
    s = out["randomize_shell"]
    np.testing.assert_allclose(out["fsc_t"], out["unmasked"], atol=1e-6)
    bound = noise_bound(96, same_amplitudes=True)  # the halves' amplitudes share the signal
    assert np.all(np.abs(out["fsc_n"][s:]) < bound[s:])
    np.testing.assert_allclose(out["fsc_n"][:s], out["unmasked"][:s], atol=1e-6)
    assert np.all(np.abs(out["fsc_true"] - out["unmasked"])[s + 2:] < 2 * bound[s + 2:])


def test_noise_substitution_when_the_curve_never_drops():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((16, 16, 16)).astype(np.float32)
    out = F.noise_substituted_fsc(v, v, np.ones_like(v), seed=1)
    assert out["randomize_shell"] == 16 // 2 + 1
    np.testing.assert_allclose(out["fsc_true"], 1.0, atol=1e-6)


# -- resolution ---------------------------------------------------------------------------------

def test_resolution_at_crafted_curves():
    curve = np.array([1.0, 0.99, 0.9, 0.5, 0.2, 0.1, 0.05, 0.3])  # n = 14
    r = F.resolution_at(curve, n=14, apix=2.0)
    assert r["shell"] == 4 and r["crossed"] and r["threshold"] == 0.143
    assert r["shell_interpolated"] == pytest.approx(4 + (0.2 - 0.143) / (0.2 - 0.1), abs=1e-12)
    assert r["resolution_A"] == pytest.approx(28 / 4)
    assert r["resolution_interpolated_A"] == pytest.approx(28 / r["shell_interpolated"])
    # other thresholds; a value equal to the threshold is not below it
    assert F.resolution_at(curve, 0.5, n=14, apix=2.0)["shell"] == 3
    exact = F.resolution_at(np.array([1.0, 0.9, 0.143, 0.1]), n=6, apix=1.0)
    assert exact["shell"] == 2 and exact["shell_interpolated"] == pytest.approx(2.0)
    # shell 0 (the mean) is ignored; a drop at shell 1 leaves shell 0: infinite resolution
    assert F.resolution_at(np.array([0.0, 0.9, 0.05, 0.0]), n=6, apix=1.0)["shell"] == 1
    first = F.resolution_at(np.array([1.0, 0.1, 0.0, 0.0]), n=6, apix=1.0)
    assert first["shell"] == 0 and first["resolution_A"] == float("inf")
    # never below: the last shell, not crossed
    never = F.resolution_at(np.full(9, 0.9), n=16, apix=1.5)
    assert never["shell"] == 8 and not never["crossed"] and never["resolution_A"] == pytest.approx(3.0)
    assert never["shell_interpolated"] == 8


def test_fsc_result_bundles_curve_and_resolution(designed):
    res = F.fsc_result(designed.half_a, designed.half_b, 1.5)
    assert isinstance(res.curve, np.ndarray) and res.curve.dtype == np.float64 and res.n == 96
    assert res.resolution == F.resolution_at(res.curve, n=96, apix=1.5)
    masked = F.fsc_result(designed.half_a, designed.half_b, 1.5, mask=masks.spherical_mask(96))
    np.testing.assert_allclose(masked.curve, F.fsc_maps(designed.half_a, designed.half_b,
                                                        masks.spherical_mask(96)))


# -- backends -------------------------------------------------------------------------------------

def test_kernels_return_the_input_backend():
    a, b, signal, expected, crossing = designed_half_maps(32, 2.0, 12, 0.5, seed=2)
    assert all(type(x) is np.ndarray for x in (a, b, signal, expected))
    f = np.fft.rfftn(a)
    assert type(F.fsc(f, np.fft.rfftn(b))) is np.ndarray
    assert type(F.fsc_maps(a, b, masks.spherical_mask(32))) is np.ndarray
    assert type(F.randomize_phases_beyond(f, 4, 0)) is np.ndarray
    assert type(F.shell_power(f)) is np.ndarray and type(F.shell_index(32)) is np.ndarray
    assert F.shell_index(32, np) is F.shell_index(32)


def test_fsc_cupy_parity(cupy):
    cp = cupy
    host = designed_half_maps(64, 1.5, 28, 1.0, seed=4)
    a, b = cp.asarray(host.half_a), cp.asarray(host.half_b)
    tight = masks.tight_mask((a + b) / 2, 1.5)
    assert type(tight) is cp.ndarray
    np.testing.assert_array_equal(F.shell_index(64, cp).get(), F.shell_index(64))
    curve = F.fsc_maps(a, b, tight)
    assert type(curve) is cp.ndarray
    np.testing.assert_allclose(curve.get(), F.fsc_maps(host.half_a, host.half_b, tight.get()), atol=1e-5)
    g = F.randomize_phases_beyond(cp.fft.rfftn(a), 10, 3)
    assert type(g) is cp.ndarray
    np.testing.assert_array_equal(g.get(), F.randomize_phases_beyond(cp.fft.rfftn(a), 10, 3).get())
    out = F.noise_substituted_fsc(a, b, tight, seed=7)
    ref = F.noise_substituted_fsc(host.half_a, host.half_b, tight.get(), seed=7)
    assert out["randomize_shell"] == ref["randomize_shell"]
    np.testing.assert_allclose(out["fsc_t"], ref["fsc_t"], atol=1e-5)
    gpu = designed_half_maps(64, 1.5, 28, 1.0, seed=4, xp=cp)
    assert type(gpu.half_a) is cp.ndarray and gpu.expected.shape == (33,)
    assert abs(gpu.crossing["shell"] - host.crossing["shell"]) <= 1
