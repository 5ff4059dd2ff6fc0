"""The workflow's specimen, written independently of the kernels it checks.

A C1 volume of Gaussian blobs whose particle images are computed analytically in Fourier space
(band-limited at a designed resolution, so the refinement's resolution limit is known), and a
CTF written from the documented formula (``docs/design.md``, workflow) without the kernels'
code, so that a convention error in :mod:`pytest_cryobench.kernels.ctf` or in the fitting shows.

Conventions: images ``(y, x)`` with the origin at pixel ``n // 2``; poses ``R`` act on column
vectors ``(x, y, z)`` and a particle is the projection along ``z`` of ``V(R^T x)``; frequencies in
cycles per Å; defocus positive for underfocus; ``df1`` along ``df_angle`` (from the x axis towards
y), ``df2`` perpendicular to it.
"""

from __future__ import annotations

import math

import numpy as np


def blob_volume_model(n_blobs: int, radius_A: float, sigma_A: float, seed: int) -> dict[str, np.ndarray]:
    """Centres (Å, from the origin), widths (Å) and amplitudes of an asymmetric blob volume.

    The blobs fill an ellipsoid of semi-axes ``radius_A * (1, 0.7, 0.45)`` unevenly (a denser
    lobe on +x, +y), so the volume has no symmetry and a definite hand.
    """
    rng = np.random.default_rng(seed)
    semi = radius_A * np.array([1.0, 0.7, 0.45])
    centres = []
    while len(centres) < n_blobs:
        p = rng.uniform(-1, 1, 3)
        if p @ p <= 1 and (p[0] + p[1] > -0.6 or rng.random() < 0.3):
            centres.append(p * semi)
    amplitude = rng.uniform(0.6, 1.4, n_blobs)
    return {"centres": np.array(centres), "sigma": np.full(n_blobs, sigma_A), "amplitude": amplitude}


def particle_spectra(model: dict[str, np.ndarray], rotations: np.ndarray, offsets_px: np.ndarray, n: int,
                     apix: float, band_A: float) -> np.ndarray:
    """``rfft2`` (origin at pixel ``n // 2``, i.e. of ``ifftshift(image)``) of particle images.

    The continuous Fourier transform of each projected Gaussian,
    ``a sqrt(2 pi) s * 2 pi s^2 exp(-2 pi^2 s^2 |k|^2) exp(-2 pi i k.(R c)_xy)``, zero beyond
    ``1 / band_A``, times the shift ``offsets_px`` ``(x, y)`` pixels, per unit pixel area.

    Returns
    -------
    complex128 array, shape (B, n, n // 2 + 1)
    """
    ky = np.fft.fftfreq(n, d=apix)[:, None]
    kx = np.fft.rfftfreq(n, d=apix)[None, :]
    k2 = kx ** 2 + ky ** 2
    band = k2 <= (1.0 / band_A) ** 2
    moved = np.einsum("bij,kj->bki", rotations, model["centres"])  # (B, J, 3) Å
    s = model["sigma"]
    weight = model["amplitude"] * math.sqrt(2 * math.pi) * s * 2 * math.pi * s ** 2 / apix ** 3  # per px^2
    out = np.zeros((len(rotations), n, n // 2 + 1), dtype=np.complex128)
    for j in range(len(s)):
        envelope = weight[j] * np.exp(-2 * math.pi ** 2 * s[j] ** 2 * k2) * band
        px = moved[:, j, 0] + offsets_px[:, 0] * apix
        py = moved[:, j, 1] + offsets_px[:, 1] * apix
        out += envelope[None] * np.exp(-2j * math.pi * (kx[None] * px[:, None, None] + ky[None] * py[:, None, None]))
    return out


def particle_images(model: dict[str, np.ndarray], rotations: np.ndarray, offsets_px: np.ndarray, n: int,
                    apix: float, band_A: float) -> np.ndarray:
    """Real-space particle images ``(B, n, n)`` float64 of :func:`particle_spectra`."""
    spectra = particle_spectra(model, rotations, offsets_px, n, apix, band_A)
    return np.fft.fftshift(np.fft.irfft2(spectra, s=(n, n)), axes=(-2, -1))


def truth_volume(model: dict[str, np.ndarray], n: int, apix: float, band_A: float) -> np.ndarray:
    """The volume ``(z, y, x)`` on an ``n^3`` grid (origin at voxel ``n // 2``), band-limited at
    ``band_A`` like the particles, in the same units (density per voxel)."""
    kz = np.fft.fftfreq(n, d=apix)[:, None, None]
    ky = np.fft.fftfreq(n, d=apix)[None, :, None]
    kx = np.fft.rfftfreq(n, d=apix)[None, None, :]
    k2 = kx ** 2 + ky ** 2 + kz ** 2
    spectrum = np.zeros((n, n, n // 2 + 1), dtype=np.complex128)
    for c, s, a in zip(model["centres"], model["sigma"], model["amplitude"], strict=True):
        g = a * (2 * math.pi * s ** 2) ** 1.5 / apix ** 3 * np.exp(-2 * math.pi ** 2 * s ** 2 * k2)
        spectrum += g * np.exp(-2j * math.pi * (kx * c[0] + ky * c[1] + kz * c[2]))
    spectrum *= k2 <= (1.0 / band_A) ** 2
    return np.fft.fftshift(np.fft.irfftn(spectrum, s=(n, n, n), axes=(0, 1, 2))).astype(np.float32)


def wavelength_A(kv: float) -> float:
    """Relativistic electron wavelength, Å: ``12.2643 / sqrt(V (1 + 0.978466e-6 V))``, V in volts."""
    volts = kv * 1e3
    return 12.2643247 / math.sqrt(volts * (1 + 0.978466e-6 * volts))


def specimen_ctf(shape: tuple[int, int], apix: float, df1_A: float, df2_A: float, angle_rad: float,
                 kv: float, cs_mm: float, amp: float) -> np.ndarray:
    """The CTF on the ``rfft2`` grid of an ``(H, W)`` image, from the formula (float64).

    ``chi = pi lam dz(theta) s^2 - pi/2 Cs lam^3 s^4``, ``CTF = -(sqrt(1 - A^2) sin chi + A cos chi)``
    with ``dz(theta) = df2 + (df1 - df2) cos^2(theta - angle)`` (the same function as the mean
    plus half-difference form, written another way).
    """
    lam = wavelength_A(kv)
    ky = np.fft.fftfreq(shape[0], d=apix)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=apix)[None, :]
    s2 = kx ** 2 + ky ** 2
    theta = np.arctan2(ky, kx)
    dz = df2_A + (df1_A - df2_A) * np.cos(theta - angle_rad) ** 2
    chi = math.pi * lam * dz * s2 - 0.5 * math.pi * cs_mm * 1e7 * lam ** 3 * s2 ** 2
    return -(math.sqrt(1 - amp ** 2) * np.sin(chi) + amp * np.cos(chi))
