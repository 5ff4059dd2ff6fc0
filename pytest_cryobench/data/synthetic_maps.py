"""Half maps with a known answer: a designed FSC curve (:func:`designed_half_maps`) and two
regions band-limited at different resolutions (:func:`two_region_half_maps`).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy

from pytest_cryobench.kernels.array_api import to_host
from pytest_cryobench.kernels.fsc import FSC_THRESHOLD, half_grid_radius, resolution_at, shell_index, shell_power
from pytest_cryobench.kernels.masks import soft_sphere
from pytest_cryobench.kernels.nu_filter import shell_radius

# -- designed FSC -------------------------------------------------------------------------------

class DesignedHalfMaps(NamedTuple):
    """Half maps with a known FSC (see :func:`designed_half_maps`).

    Attributes
    ----------
    half_a, half_b : arrays of float32, shape (n, n, n)
        ``signal + noise_sigma * N_a`` and ``signal + noise_sigma * N_b``, independent white noise.
    signal : array of float32, shape (n, n, n)
        The common signal, unit standard deviation over the box.
    expected : numpy.ndarray of float64, shape (n // 2 + 1,)
        Expected FSC per shell, ``P_S / (P_S + noise_sigma^2 n^3)`` (host).
    crossing : dict
        :func:`resolution_at` of ``expected`` at 0.143.
    """

    half_a: Any
    half_b: Any
    signal: Any
    expected: numpy.ndarray
    crossing: dict[str, Any]


def designed_half_maps(n: int, apix: float, band_shell: int, noise_sigma: float, seed: int,
                       xp: ModuleType = numpy, *, decay_shell: float | None = None,
                       envelope_radius: float | None = 0.3) -> DesignedHalfMaps:
    """Two half maps of one signal with independent noise, and the FSC they should give.

    The signal is white Gaussian noise times a soft spherical envelope (a "particle" of radius
    ``envelope_radius * n`` voxels, edge from ``0.8`` of that radius), filtered by the radial
    amplitude ``exp(-|k|^2 / (2 decay_shell^2))`` and cut hard after ``band_shell`` (zero power in
    shells ``> band_shell``), then scaled to unit standard deviation. Each half adds its own white
    noise of standard deviation ``noise_sigma``. With ``P_S`` the empirical mean ``|S(k)|^2`` of the
    shell (unnormalised rfftn units), the expected FSC is ``P_S / (P_S + noise_sigma^2 n^3)``: the
    noise has ``E|N(k)|^2 = noise_sigma^2 n^3`` and is independent of the signal and between halves.
    Measured curves scatter around it by about ``(1 - FSC^2) / sqrt(M)`` for the ``M`` voxels of a
    shell.

    Parameters
    ----------
    n : int
        Box edge, voxels.
    apix : float
        Voxel size, A (for the crossing's resolution in A).
    band_shell : int
        Last shell with signal power.
    noise_sigma : float
        Noise standard deviation relative to the signal's (signal RMS = 1).
    seed : int
        Seed of ``xp.random.default_rng``; draws are the signal, then noise a, then noise b. The
        same seed gives the same maps on one backend.
    xp : module
        ``numpy`` or ``cupy``; the maps are made there.
    decay_shell : float, optional
        Gaussian fall-off of the signal amplitude, shells; ``band_shell / 4`` by default.
    envelope_radius : float or None
        Outer radius of the envelope as a fraction of ``n``; ``None`` fills the box.

    Returns
    -------
    DesignedHalfMaps
        ``(half_a, half_b, signal, expected, crossing)``.
    """
    if not 0 < band_shell <= n // 2:
        raise ValueError(f"band_shell must lie in 1..{n // 2}, got {band_shell}")
    decay = band_shell / 4 if decay_shell is None else float(decay_shell)
    rng = xp.random.default_rng(int(seed))
    shape = (n, n, n)
    signal = rng.standard_normal(shape, dtype=xp.float32)
    if envelope_radius is not None:
        outer = envelope_radius * n
        signal *= soft_sphere(n, 0.8 * outer, outer, xp=xp, dtype=xp.float32)
    spectrum = xp.fft.rfftn(signal)
    radius = half_grid_radius(n, xp)
    gain = xp.exp(radius * radius * (-0.5 / (decay * decay)))
    gain = xp.where(shell_index(n, xp) <= band_shell, gain, 0).astype(xp.float32)
    spectrum *= gain
    del radius, gain
    signal = xp.fft.irfftn(spectrum, s=shape, axes=(0, 1, 2)).astype(xp.float32, copy=False)
    scale = 1.0 / float(signal.std())
    signal *= scale
    power = to_host(shell_power(spectrum)) * scale * scale
    del spectrum
    noise_power = float(noise_sigma) ** 2 * float(n) ** 3
    with numpy.errstate(divide="ignore", invalid="ignore"):
        expected = numpy.where(power > 0, power / (power + noise_power), 0.0)
    half_a = signal + float(noise_sigma) * rng.standard_normal(shape, dtype=xp.float32)
    half_b = signal + float(noise_sigma) * rng.standard_normal(shape, dtype=xp.float32)
    crossing = resolution_at(expected, FSC_THRESHOLD, n=n, apix=apix)
    return DesignedHalfMaps(half_a, half_b, signal, expected, crossing)


# -- two regions of different resolution ---------------------------------------------------------

def two_region_half_maps(n: int, apix: float, res_region1_A: float, res_region2_A: float,
                         noise_sigma: float = 0.5, seed: int = 0, xp: ModuleType = numpy,
                         edge_vox: float = 4.0) -> tuple[Any, Any, dict[str, Any]]:
    """Two half maps of a volume whose two regions are band-limited at different resolutions.

    The box is split along x into two periodic slabs of width n/2 (region 1 centred at
    ``x = n/4``, region 2 at ``x = 3n/4``), blended by raised-cosine edges ``edge_vox`` wide. Each
    slab holds its own white Gaussian field (unit variance per voxel, so unit power per Fourier
    component), hard low-passed at its band limit (shells ``s <= n * apix / r``), so inside a
    region the signal spectrum is flat up to the band limit and zero beyond. Each half adds its
    own white noise of standard deviation ``noise_sigma`` per voxel: the per-component
    signal-to-noise ratio of a half below the band limit is ``1 / noise_sigma**2`` (4 for the
    default), so the matched-CV optimum is the band limit itself.

    Deterministic for a given ``seed`` (NumPy's PCG64, generated on the host in float64 and moved
    to ``xp`` as float32, so both backends receive the same numbers).

    Parameters
    ----------
    n : int
        Box size, voxels.
    apix : float
        Voxel size, Å.
    res_region1_A, res_region2_A : float
        Band limits of regions 1 and 2, Å (pick values on the candidate grid).
    noise_sigma : float
        Noise standard deviation per voxel, per half map (signal units).
    seed : int
        Random seed.
    xp : module
        Backend of the returned maps.
    edge_vox : float
        Width of the blend between the slabs, voxels.

    Returns
    -------
    half_a, half_b : array, shape (n, n, n), float32
        On ``xp``.
    truth : dict
        ``region1_mask``, ``region2_mask`` (numpy bool (n, n, n): the slabs, x within n/4 of the
        centre), ``region1_core``, ``region2_core`` (numpy bool: x within n/8 of the centre),
        ``band_limits_A`` (r1, r2), ``signal`` (numpy float32 (n, n, n), noise-free),
        ``noise_sigma``, ``snr_per_component``.
    """
    rng = numpy.random.default_rng(seed)
    shape = (n, n, n)
    axes = (0, 1, 2)
    radius = shell_radius(n, numpy)

    def band_limited(res_A: float) -> numpy.ndarray:
        white = rng.standard_normal(shape)
        spec = numpy.fft.rfftn(white, axes=axes)
        spec *= radius <= n * float(apix) / float(res_A)
        return numpy.fft.irfftn(spec, s=shape, axes=axes)

    s1 = band_limited(res_region1_A)
    s2 = band_limited(res_region2_A)
    x = numpy.arange(n, dtype=numpy.float64)
    # periodic distance to the centre of region 1 (x = n/4)
    d1 = numpy.abs((x - n / 4.0 + n / 2.0) % n - n / 2.0)
    e = max(float(edge_vox), 1e-9)
    t = numpy.clip((d1 - (n / 4.0 - e / 2.0)) / e, 0.0, 1.0)
    m1 = 0.5 * (1.0 + numpy.cos(numpy.pi * t))  # 1 inside region 1, 0 inside region 2
    signal = m1[None, None, :] * s1 + (1.0 - m1)[None, None, :] * s2
    half_a = signal + float(noise_sigma) * rng.standard_normal(shape)
    half_b = signal + float(noise_sigma) * rng.standard_normal(shape)

    in1 = d1 < n / 4.0
    core1 = d1 < n / 8.0
    d2 = numpy.abs((x - 3.0 * n / 4.0 + n / 2.0) % n - n / 2.0)
    core2 = d2 < n / 8.0

    def full(mask_x: numpy.ndarray) -> numpy.ndarray:
        return numpy.broadcast_to(mask_x[None, None, :], shape).copy()

    truth = {
        "region1_mask": full(in1),
        "region2_mask": full(~in1),
        "region1_core": full(core1),
        "region2_core": full(core2),
        "band_limits_A": (float(res_region1_A), float(res_region2_A)),
        "signal": signal.astype(numpy.float32),
        "noise_sigma": float(noise_sigma),
        "snr_per_component": 1.0 / float(noise_sigma) ** 2 if noise_sigma > 0 else math.inf,
    }
    return (xp.asarray(half_a.astype(numpy.float32)), xp.asarray(half_b.astype(numpy.float32)), truth)
