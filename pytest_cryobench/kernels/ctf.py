"""Contrast transfer function (CTF) of a transmission electron microscope, on FFT grids.

One code path for NumPy and CuPy: the grid is built with the ``xp`` module that is passed in.

Conventions
-----------
Frequencies are in cycles per Ångström: ``ky = fftfreq(H, d=apix)`` along rows (axis 0) and
``kx = rfftfreq(W, d=apix)`` (or ``fftfreq``) along columns (axis 1), ``s = sqrt(kx² + ky²)`` and
``θ = atan2(ky, kx)`` (measured from the column axis towards the row axis).

Defocus is positive for underfocus, in Å. The astigmatic defocus along direction ``θ`` is ::

    Δf(θ) = (df1 + df2)/2 + (df1 - df2)/2 · cos(2(θ - df_angle))

so ``df1`` is the defocus along ``θ = df_angle`` and ``df2`` along the perpendicular direction
(cryoSPARC's ``ctf/df1_A``, ``ctf/df2_A``, ``ctf/df_angle_rad``).

The phase aberration and the CTF are ::

    χ(s, θ) = π λ Δf(θ) s² - (π/2) Cs λ³ s⁴ + φ
    CTF     = -( sqrt(1 - A²) sin χ + A cos χ ) = -sin(χ + arcsin A)

with ``λ`` the relativistic electron wavelength (Å), ``Cs`` the spherical aberration (Å), ``A`` the
amplitude contrast and ``φ`` an extra phase shift (phase plate, rad). With this sign convention
``CTF(0) = -sin(φ + arcsin A)``, i.e. ``-A`` without a phase plate: an underfocused image of a
positive-density particle has negative low-resolution contrast (the same convention as RELION,
cryoSPARC and cryoDRGN). An optional B-factor envelope ``exp(-B s²/4)`` multiplies the result.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace

# CODATA 2018 exact / recommended SI values.
PLANCK_J_S = 6.62607015e-34
ELECTRON_MASS_KG = 9.1093837015e-31
ELEMENTARY_CHARGE_C = 1.602176634e-19
SPEED_OF_LIGHT_M_S = 299_792_458.0


def electron_wavelength_A(accel_kv: float) -> float:
    """Relativistic electron wavelength, in Å, for an accelerating voltage in kV.

    ``λ = h / sqrt(2 m₀ e V (1 + e V / (2 m₀ c²)))``; 0.019687 Å at 300 kV, 0.025079 Å at 200 kV.

    Parameters
    ----------
    accel_kv : float
        Accelerating voltage, kV (must be > 0).

    Returns
    -------
    float
        Wavelength, Å.
    """
    if not accel_kv > 0:
        raise ValueError(f"accelerating voltage must be positive, got {accel_kv} kV")
    volts = accel_kv * 1e3
    energy = ELEMENTARY_CHARGE_C * volts
    rest = ELECTRON_MASS_KG * SPEED_OF_LIGHT_M_S ** 2
    momentum = math.sqrt(2.0 * ELECTRON_MASS_KG * energy * (1.0 + energy / (2.0 * rest)))
    return PLANCK_J_S / momentum * 1e10


def frequency_grid(shape: tuple[int, int], apix: float, xp: ModuleType = numpy,
                   rfft: bool = True) -> tuple[Any, Any]:
    """Spatial-frequency coordinates of an FFT grid, cycles/Å, as broadcastable 2-D arrays.

    Parameters
    ----------
    shape : (int, int)
        Real-space image shape ``(H, W)``, pixels.
    apix : float
        Pixel size, Å/pixel.
    xp : module
        ``numpy`` or ``cupy``.
    rfft : bool
        ``True``: the ``rfft2`` half grid ``(H, W//2 + 1)``; ``False``: the full ``fft2`` grid.

    Returns
    -------
    ky : array, shape (H, 1), float64
        Row frequencies (``fftfreq(H, apix)``).
    kx : array, shape (1, W//2 + 1) or (1, W), float64
        Column frequencies (``rfftfreq`` or ``fftfreq``).
    """
    height, width = (int(n) for n in shape)
    if height < 1 or width < 1:
        raise ValueError(f"bad image shape {shape}")
    if not apix > 0:
        raise ValueError(f"pixel size must be positive, got {apix}")
    ky = xp.fft.fftfreq(height, d=apix)[:, None]
    kx = (xp.fft.rfftfreq(width, d=apix) if rfft else xp.fft.fftfreq(width, d=apix))[None, :]
    return ky, kx


def ctf_2d(shape: tuple[int, int], apix: float, df1_A: float, df2_A: float, df_angle_rad: float,
           accel_kv: float = 300.0, cs_mm: float = 2.7, amp_contrast: float = 0.1,
           phase_shift_rad: float = 0.0, xp: ModuleType = numpy, rfft: bool = True,
           bfactor_A2: float = 0.0, dtype: Any = "float32") -> Any:
    """The CTF sampled on the FFT grid of an ``(H, W)`` image.

    See the module docstring for the formula, units and sign convention
    (``CTF = -sin(χ + arcsin A)``, ``CTF(0) = -A`` without phase shift).

    Parameters
    ----------
    shape : (int, int)
        Real-space image shape ``(H, W)``, pixels.
    apix : float
        Pixel size, Å/pixel.
    df1_A, df2_A : float
        Defocus along ``df_angle_rad`` and perpendicular to it, Å (positive = underfocus).
    df_angle_rad : float
        Astigmatism angle, radians, from the column (x) axis towards the row (y) axis.
    accel_kv : float
        Accelerating voltage, kV.
    cs_mm : float
        Spherical aberration, mm.
    amp_contrast : float
        Amplitude contrast ``A`` in [0, 1).
    phase_shift_rad : float
        Additional phase shift ``φ`` (phase plate), radians.
    xp : module
        ``numpy`` or ``cupy``: where the result lives.
    rfft : bool
        ``True`` (default): the ``rfft2`` grid, shape ``(H, W//2 + 1)``; ``False``: the full
        ``fft2`` grid ``(H, W)``. Both have the zero frequency at ``[0, 0]`` (not shifted).
    bfactor_A2 : float
        B-factor envelope ``exp(-B s²/4)``, Å² (0: none).
    dtype : dtype
        Result dtype (computed in float64, then cast).

    Returns
    -------
    array, shape (H, W//2 + 1) or (H, W)
        CTF values in [-1, 1], on ``xp``.
    """
    ky, kx = frequency_grid(shape, apix, xp=xp, rfft=rfft)
    return ctf_at(kx, ky, df1_A, df2_A, df_angle_rad, accel_kv=accel_kv, cs_mm=cs_mm, amp_contrast=amp_contrast,
                  phase_shift_rad=phase_shift_rad, bfactor_A2=bfactor_A2, dtype=dtype)


def ctf_at(kx: Any, ky: Any, df1_A: Any, df2_A: Any, df_angle_rad: Any, accel_kv: float = 300.0,
           cs_mm: float = 2.7, amp_contrast: float = 0.1, phase_shift_rad: float = 0.0,
           bfactor_A2: float = 0.0, dtype: Any = "float32") -> Any:
    """The CTF at arbitrary spatial frequencies, broadcasting over frequencies and defoci.

    Parameters
    ----------
    kx, ky : arrays, broadcastable
        Spatial frequency components, cycles/Å (``kx`` along image columns, ``ky`` along rows).
    df1_A, df2_A, df_angle_rad : float or arrays broadcastable with ``kx``
        Defocus (Å) and astigmatism angle (rad), e.g. one per particle as shape ``(B, 1)``
        against frequencies of shape ``(1, K)``.
    accel_kv, cs_mm, amp_contrast, phase_shift_rad, bfactor_A2
        As in :func:`ctf_2d` (scalars).
    dtype : dtype
        Result dtype.

    Returns
    -------
    array, the broadcast shape, on the backend of ``kx``
        See the module docstring for the formula.
    """
    if not 0.0 <= amp_contrast < 1.0:
        raise ValueError(f"amplitude contrast must be in [0, 1), got {amp_contrast}")
    xp = array_namespace(kx)
    wavelength = electron_wavelength_A(accel_kv)
    cs_A = cs_mm * 1e7
    s2 = ky * ky + kx * kx
    theta = xp.arctan2(ky, kx)
    defocus = 0.5 * (df1_A + df2_A) + 0.5 * (df1_A - df2_A) * xp.cos(2.0 * (theta - df_angle_rad))
    chi = (math.pi * wavelength) * defocus * s2 - (0.5 * math.pi * cs_A * wavelength ** 3) * (s2 * s2)
    chi += phase_shift_rad + math.asin(amp_contrast)
    ctf = -xp.sin(chi)
    if bfactor_A2:
        ctf *= xp.exp(-0.25 * bfactor_A2 * s2)
    return ctf.astype(dtype, copy=False)


def first_zero_A_inv(df_A: float, accel_kv: float = 300.0, cs_mm: float = 2.7,
                     amp_contrast: float = 0.1, phase_shift_rad: float = 0.0) -> float:
    """Spatial frequency (cycles/Å) of the first CTF zero for an unastigmatic defocus.

    Solves ``χ(s) + arcsin A = π`` for ``s²`` in closed form (a quadratic in ``s²``; the root on
    the branch that starts at ``s = 0``).

    Parameters
    ----------
    df_A : float
        Defocus, Å (> 0, underfocus).
    accel_kv, cs_mm, amp_contrast, phase_shift_rad
        As in :func:`ctf_2d`.

    Returns
    -------
    float
        Frequency of the first zero, 1/Å.
    """
    wavelength = electron_wavelength_A(accel_kv)
    a = 0.5 * math.pi * cs_mm * 1e7 * wavelength ** 3
    b = math.pi * wavelength * df_A
    c = math.pi - phase_shift_rad - math.asin(amp_contrast)
    # a u² - b u + c = 0 with u = s²; smallest positive root (u = c/b when Cs = 0).
    disc = b * b - 4.0 * a * c
    if disc < 0:
        raise ValueError("no CTF zero on the first branch for these parameters")
    u = 2.0 * c / (b + math.sqrt(disc))
    return math.sqrt(u)
