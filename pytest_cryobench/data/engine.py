"""Data of the engine cases: a D7-symmetric volume and particles projected from it at known poses.

Layout (CryoSPARC's ``gpu_engine_test/``, plus the clean volume)::

    gpu_engine_test/truth_volume.mrc           the volume the particles were made from (ours)
    gpu_engine_test/abinit_volume.mrc          the search reference: the truth low-passed
    gpu_engine_test/J1/extract/NNN_particles.mrc   particle stacks (float32)
    gpu_engine_test/abinit_particles.cs        one row per particle: blob/*, alignments3D/*, ctf/*

The volume is a sum of 3-D Gaussian blobs: a few placed at random in the box, each repeated by the
14 operators of D7 (7-fold about z, two-fold about x; see :mod:`..kernels.rotations`), so the
volume is exactly D7-symmetric. A particle with pose ``R`` is the projection along z of
``V(R^T x)``: each blob centred at ``c`` projects to a 2-D Gaussian at ``(R c)_xy``, computed
analytically (one batched matrix product, ``gy^T diag(a) gx``, per chunk of particles) and moved by
the particle's shift ``s``, so the image's centre is at pixel ``n // 2 + s``. Then the CTF (per
particle defocus) is applied in Fourier space and white Gaussian noise added: noise of standard
deviation ``sigma`` with ``sigma^2 = var(clean CTF-modulated images) / SNR``; every
:data:`HIGH_SNR_STRIDE`-th particle gets ``HIGH_SNR_GAIN`` times the SNR (the "high-SNR
particles" of the marginalisation check).

The image formation shares no code with the search: the projections are analytic line integrals
in real space, the CTF is written here from its documented formula (:func:`documented_ctf`, with
its own wavelength formula and full-grid frequencies), and the D7 group is built here from its two
generators written out (:func:`dihedral_group`), not from the kernel's ``symmetry_group``; so a
convention error in the engine's projection, CTF or symmetry shows up in the checks.

Poses are drawn from the profile's search grid (rotation and shift indices), so a correct search
finds them exactly. The ``.cs`` file holds them as cryoSPARC fields: ``alignments3D/pose`` the
axis-angle vector of ``R`` (radians), ``alignments3D/shift`` ``(sx, sy)`` pixels.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.cs import BLOB_BLOCK, CTF_BLOCK, full_block_columns, make_dataset, write_cs
from pytest_cryobench.data.maps import write_map
from pytest_cryobench.data.provision import Component
from pytest_cryobench.profiles import Profile

ENGINE_DIR = "gpu_engine_test"
TRUTH_VOLUME = f"{ENGINE_DIR}/truth_volume.mrc"
REFERENCE_VOLUME = f"{ENGINE_DIR}/abinit_volume.mrc"
PARTICLES_CS = f"{ENGINE_DIR}/abinit_particles.cs"
EXTRACT_DIR = f"{ENGINE_DIR}/J1/extract"
SYMMETRY = "D7"
BLOB_SEEDS = 6
"""Blobs per asymmetric unit (the volume has 14 times as many)."""
HIGH_SNR_STRIDE = 4
HIGH_SNR_GAIN = 16.0
CTF = {"accel_kv": 300.0, "cs_mm": 2.7, "amp_contrast": 0.1}
DEFOCUS_RANGE_A = (10_000.0, 25_000.0)
ASTIGMATISM_A = 300.0
GENERATOR_VERSION = 2  # 2: own CTF and D7 group; the blob model in the truth


def particle_file_name(index: int) -> str:
    return f"{EXTRACT_DIR}/{index:03d}_particles.mrc"


def dihedral_group(fold: int) -> np.ndarray:
    """The ``2 * fold`` rotations of the dihedral group ``D<fold>``, written out, float64 (G, 3, 3).

    ``Rz(2 pi k / fold)`` for ``k = 0 .. fold - 1`` (turns about ``z``), then ``Rz(2 pi k / fold) Rx(pi)``
    (half turns about horizontal axes at azimuth ``pi k / fold``, the first about ``x``). Written
    here from the definition, so the data do not depend on the kernel's group construction.
    """
    out = []
    for flip in (False, True):
        for k in range(fold):
            a = 2 * math.pi * k / fold
            c, s = math.cos(a), math.sin(a)
            turn = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            out.append(turn @ np.diag([1.0, -1.0, -1.0]) if flip else turn)
    return np.array(out)


def blob_model(n: int, apix: float, seed: int) -> dict[str, np.ndarray]:
    """Centres (voxels from the box centre), widths and amplitudes of the volume's blobs.

    Returns
    -------
    dict
        ``centres`` (J, 3) float64 ``(x, y, z)``; ``sigma`` (J,) voxels; ``amplitude`` (J,);
        ``J = 14 * BLOB_SEEDS``, the D7 images of each seed blob consecutive.
    """
    rng = np.random.default_rng(seed)
    group = dihedral_group(int(SYMMETRY[1:]))
    # seeds inside a cylinder that keeps every symmetry copy well inside the box
    radius = rng.uniform(0.08, 0.26, BLOB_SEEDS) * n
    phi = rng.uniform(0, 2 * math.pi, BLOB_SEEDS)
    z = rng.uniform(0.03, 0.2, BLOB_SEEDS) * n
    seeds = np.stack([radius * np.cos(phi), radius * np.sin(phi), z], axis=1)
    sigma = rng.uniform(1.5, 2.5, BLOB_SEEDS)  # voxels: detail up to about a quarter of Nyquist... and beyond
    amplitude = rng.uniform(0.6, 1.0, BLOB_SEEDS)
    centres = np.einsum("gij,sj->sgi", group, seeds).reshape(-1, 3)
    return {"centres": centres, "sigma": np.repeat(sigma, len(group)),
            "amplitude": np.repeat(amplitude, len(group))}


def _gaussians(coords: np.ndarray, centres: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``exp(-(coords - c)^2 / (2 sigma^2))``, shape (..., J, n) for centres (..., J)."""
    d = coords[None, :] - centres[..., None]
    return np.exp(-0.5 * (d / sigma[..., None]) ** 2)


def blob_volume(model: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The blob model sampled on an ``n^3`` grid, float32, (z, y, x), origin at voxel ``n // 2``."""
    axis = np.arange(n, dtype=np.float64) - n // 2
    c, s = model["centres"], model["sigma"]
    gx, gy, gz = (_gaussians(axis, c[:, i], s) for i in range(3))
    return np.einsum("j,jz,jy,jx->zyx", model["amplitude"], gz, gy, gx, optimize=True).astype(np.float32)


def blob_projections(model: dict[str, np.ndarray], rotations: np.ndarray, shifts: np.ndarray,
                     n: int) -> np.ndarray:
    """Analytic projections of the blob model at poses, moved by shifts.

    Parameters
    ----------
    model : dict
        :func:`blob_model`.
    rotations : array, shape (B, 3, 3)
        Poses (projection along z of ``V(R^T x)``).
    shifts : array, shape (B, 2)
        ``(sx, sy)``, pixels.
    n : int
        Box, pixels.

    Returns
    -------
    float32 array, shape (B, n, n), (y, x), origin at pixel ``n // 2``
        ``sum_j a_j sqrt(2 pi) sigma_j exp(-|p - (R c_j)_xy - s|^2 / (2 sigma_j^2))``: the line
        integral of each blob along z (in voxel units).
    """
    axis = np.arange(n, dtype=np.float64) - n // 2
    moved = np.einsum("bij,kj->bki", rotations, model["centres"])  # (B, J, 3)
    sigma = np.broadcast_to(model["sigma"], moved.shape[:2])
    gx = _gaussians(axis, moved[..., 0] + shifts[:, 0:1], sigma)  # (B, J, n)
    gy = _gaussians(axis, moved[..., 1] + shifts[:, 1:2], sigma)
    weight = model["amplitude"] * math.sqrt(2 * math.pi) * model["sigma"]  # (J,)
    return np.matmul(np.swapaxes(gy, 1, 2) * weight, gx).astype(np.float32)


def wavelength_A(accel_kv: float) -> float:
    """Relativistic electron wavelength, Å: ``12.2643 / sqrt(V (1 + 0.978466e-6 V))``, ``V`` in volts."""
    volts = accel_kv * 1e3
    return 12.2643247 / math.sqrt(volts * (1.0 + 0.978466e-6 * volts))


def documented_ctf(n: int, apix: float, df1: np.ndarray, df2: np.ndarray, angle: np.ndarray,
                   accel_kv: float = CTF["accel_kv"], cs_mm: float = CTF["cs_mm"],
                   amp_contrast: float = CTF["amp_contrast"]) -> np.ndarray:
    """The CTF on the full ``fft2`` grid of ``n x n`` images, from its documented formula.

    ``Δf(θ) = (df1 + df2)/2 + (df1 - df2)/2 cos(2(θ - angle))`` (``θ = atan2(ky, kx)``, ``df1`` along
    ``angle``), ``χ = π λ Δf s² - (π/2) Cs λ³ s⁴``, ``CTF = -(sqrt(1 - A²) sin χ + A cos χ)``;
    frequencies ``ky`` (rows), ``kx`` (columns) ``= fftfreq(n, apix)`` in cycles/Å.

    Parameters
    ----------
    n : int
        Image edge, pixels.
    apix : float
        Pixel size, Å.
    df1, df2, angle : arrays, shape (B,)
        Defocus (Å, positive underfocus) and astigmatism angle (rad) per image.

    Returns
    -------
    numpy.ndarray of float64, shape (B, n, n)
    """
    freq = np.fft.fftfreq(n, d=apix)
    ky, kx = freq[:, None], freq[None, :]
    s2 = kx * kx + ky * ky
    theta = np.arctan2(ky, kx)
    lam = wavelength_A(accel_kv)
    cs = cs_mm * 1e7
    df1, df2, angle = (np.asarray(v, dtype=np.float64)[:, None, None] for v in (df1, df2, angle))
    defocus = 0.5 * (df1 + df2) + 0.5 * (df1 - df2) * np.cos(2.0 * (theta[None] - angle))
    chi = math.pi * lam * defocus * s2[None] - 0.5 * math.pi * cs * lam**3 * s2[None] ** 2
    return -(math.sqrt(1.0 - amp_contrast**2) * np.sin(chi) + amp_contrast * np.cos(chi))


def apply_ctf(images: np.ndarray, df1: np.ndarray, df2: np.ndarray, angle: np.ndarray, apix: float) -> np.ndarray:
    """Images convolved with their CTFs (:func:`documented_ctf`, origin at pixel ``n // 2``), float32."""
    n = images.shape[-1]
    spectra = np.fft.fft2(np.fft.ifftshift(images, axes=(1, 2)))
    ctf = documented_ctf(n, apix, df1, df2, angle)
    return np.fft.fftshift(np.fft.ifft2(spectra * ctf).real, axes=(1, 2)).astype(np.float32)


def blob_slice_coefficients(model: dict[str, np.ndarray], rotations: np.ndarray, ky: np.ndarray,
                            kx: np.ndarray, n: int) -> np.ndarray:
    """Analytic Fourier coefficients of the blob projections at poses (no shift, no CTF).

    The continuous transform of a blob's line integral ``a sqrt(2 pi) sigma exp(-|p - c|^2 / (2 sigma^2))``
    is ``a (2 pi)^{3/2} sigma^3 exp(-2 pi^2 sigma^2 |k / n|^2) exp(-2 pi i k . c / n)``; blobs at
    least 1.5 px wide make the DFT of the sampled image equal it to float32 precision.

    Parameters
    ----------
    model : dict
        :func:`blob_model`.
    rotations : array, shape (B, 3, 3)
    ky, kx : int arrays, shape (K,)
        Frequencies, cycles per box (the ``rfft2(ifftshift(image))`` convention).
    n : int

    Returns
    -------
    numpy.ndarray of complex128, shape (B, K)
    """
    moved = np.einsum("bij,kj->bki", rotations, model["centres"])  # (B, J, 3)
    sigma = np.asarray(model["sigma"], dtype=np.float64)
    k2 = (np.asarray(kx, dtype=np.float64) ** 2 + np.asarray(ky, dtype=np.float64) ** 2) / n**2
    envelope = (model["amplitude"] * (2 * math.pi) ** 1.5 * sigma**3)[:, None] * np.exp(
        -2 * math.pi**2 * sigma[:, None] ** 2 * k2[None, :])  # (J, K)
    phase = np.exp(-2j * math.pi * (moved[..., 0:1] * kx[None, None, :] + moved[..., 1:2] * ky[None, None, :]) / n)
    return np.einsum("jk,bjk->bk", envelope, phase)


def low_pass(volume: np.ndarray, radius: float) -> np.ndarray:
    """``volume`` with a raised-cosine low-pass from ``radius`` to ``radius + 4`` (pixel units)."""
    n = volume.shape[0]
    k = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2)
    t = np.clip((r - radius) / 4.0, 0, 1)
    spectrum = np.fft.rfftn(np.fft.ifftshift(volume)) * (0.5 * (1 + np.cos(np.pi * t)))
    return np.fft.fftshift(np.fft.irfftn(spectrum, s=volume.shape, axes=(0, 1, 2))).astype(np.float32)


def particle_plan(profile: Profile, seed: int) -> dict[str, np.ndarray]:
    """Every particle's true pose and shift (grid indices), defocus and noise class.

    Returns
    -------
    dict of arrays, each of length ``profile.engine.particles``
        ``rotation`` and ``shift`` (int64 grid indices), ``matrix`` (P, 3, 3), ``shift_px``
        (P, 2), ``df1_A``, ``df2_A``, ``df_angle_rad``, ``high_snr`` (bool).
    """
    from pytest_cryobench.kernels.pose_search import shift_grid
    from pytest_cryobench.kernels.rotations import rotation_grid

    e = profile.engine
    grid = rotation_grid(e.directions, e.psi_step_deg)
    shifts = shift_grid(e.shift_extent_px)
    rng = np.random.default_rng(seed + 17)
    p = e.particles
    rotation = rng.integers(0, len(grid.matrices), p)
    shift = rng.integers(0, len(shifts.shifts), p)
    defocus = rng.uniform(*DEFOCUS_RANGE_A, p)
    return {"rotation": rotation, "shift": shift, "matrix": grid.matrices[rotation],
            "shift_px": shifts.shifts[shift], "df1_A": defocus + ASTIGMATISM_A / 2,
            "df2_A": defocus - ASTIGMATISM_A / 2, "df_angle_rad": rng.uniform(0, math.pi, p),
            "high_snr": np.arange(p) % HIGH_SNR_STRIDE == 0}


def engine_component(profile: Profile, seed: int) -> Component:
    """The engine's data set (known answer: every particle's pose, shift and CTF; the volume)."""
    from pytest_cryobench.kernels.rotations import matrix_to_rotvec

    e = profile.engine
    n, apix = e.box, e.apix
    per_file = -(-e.particles // e.files)
    files = (TRUTH_VOLUME, REFERENCE_VOLUME, *[particle_file_name(i) for i in range(e.files)], PARTICLES_CS)
    made: dict[str, Any] = {}

    def model() -> dict[str, np.ndarray]:
        if "model" not in made:
            made["model"] = blob_model(n, apix, seed)
        return made["model"]

    def plan() -> dict[str, np.ndarray]:
        if "plan" not in made:
            made["plan"] = particle_plan(profile, seed)
        return made["plan"]

    def noise_sigma() -> float:
        """From the first chunk of clean images, so every file uses the same sigma."""
        if "sigma" not in made:
            pl = plan()
            head = slice(0, min(256, e.particles))
            clean = apply_ctf(blob_projections(model(), pl["matrix"][head], pl["shift_px"][head], n),
                              pl["df1_A"][head], pl["df2_A"][head], pl["df_angle_rad"][head], apix)
            made["sigma"] = float(np.sqrt(clean.var(axis=(1, 2)).mean() / e.snr))
        return made["sigma"]

    def truth_common() -> dict[str, Any]:
        return {"box": n, "apix": apix, "symmetry": SYMMETRY, "snr": e.snr, "high_snr_stride": HIGH_SNR_STRIDE,
                "high_snr_gain": HIGH_SNR_GAIN, "noise_sigma": noise_sigma(), "directions": e.directions,
                "psi_step_deg": e.psi_step_deg, "shift_extent_px": e.shift_extent_px,
                "fsc05_resolution_A": n * apix / e.fsc05_shell, "fsc05_shell": e.fsc05_shell,
                "blobs": {key: value.tolist() for key, value in model().items()}}

    def generate(name: str, tmp: Path, progress) -> dict[str, Any]:
        if name == TRUTH_VOLUME:
            write_map(tmp, blob_volume(model(), n), apix)
            truth = truth_common()
        elif name == REFERENCE_VOLUME:
            write_map(tmp, low_pass(blob_volume(model(), n), e.r_search + 2), apix)
            truth = {"low_pass_shell": e.r_search + 2}
        elif name == PARTICLES_CS:
            pl = plan()
            p = e.particles
            write_cs(tmp, make_dataset(full_block_columns(p, (BLOB_BLOCK, CTF_BLOCK), {  # CryoSPARC's fields
                "blob/path": np.array([particle_file_name(i // per_file)[len(ENGINE_DIR) + 1:] for i in range(p)]),
                "blob/idx": (np.arange(p) % per_file).astype(np.uint32),
                "blob/shape": np.array([n, n], dtype=np.uint32),
                "blob/psize_A": apix,
                "ctf/accel_kv": CTF["accel_kv"], "ctf/cs_mm": CTF["cs_mm"], "ctf/amp_contrast": CTF["amp_contrast"],
                "ctf/df1_A": pl["df1_A"], "ctf/df2_A": pl["df2_A"], "ctf/df_angle_rad": pl["df_angle_rad"],
                "alignments3D/pose": matrix_to_rotvec(pl["matrix"]).astype(np.float32),
                "alignments3D/shift": pl["shift_px"].astype(np.float32),
            }), uid_seed=seed))
            truth = truth_common()
            made.clear()
        else:
            index = int(Path(name).name.split("_")[0])
            lo, hi = index * per_file, min((index + 1) * per_file, e.particles)
            _write_particles(tmp, lo, hi, model(), plan(), noise_sigma(), n, apix, seed + 1000 + index)
            truth = {"first_particle": lo, "particles": hi - lo}
        progress(1, 1)
        return truth

    estimated = 4 * n * n * e.particles + 2 * 4 * n**3 + e.particles * 256 + (1 << 20)
    return Component(name=ENGINE_DIR, version=GENERATOR_VERSION,
                     params={"box": n, "apix": apix, "particles": e.particles, "files": e.files,
                             "directions": e.directions, "psi_step_deg": e.psi_step_deg,
                             "shift_extent_px": e.shift_extent_px, "snr": e.snr, "r_search": e.r_search,
                             "blob_seeds": BLOB_SEEDS, "symmetry": SYMMETRY, "ctf": CTF,
                             "defocus_range_A": list(DEFOCUS_RANGE_A), "high_snr_stride": HIGH_SNR_STRIDE,
                             "high_snr_gain": HIGH_SNR_GAIN},
                     files=files, estimated_bytes=estimated, generate=generate)


def _write_particles(path: Path, lo: int, hi: int, model: dict[str, np.ndarray], plan: dict[str, np.ndarray],
                     sigma: float, n: int, apix: float, seed: int, chunk: int = 256) -> None:
    """Particles ``lo .. hi - 1`` into one MRC stack, made a chunk at a time (into a memory map
    whose blocks are reserved first: a full disk is ``OSError(ENOSPC)``, not a ``SIGBUS``)."""
    import mrcfile

    from pytest_cryobench.measure.fsutil import preallocate

    rng = np.random.default_rng(seed)
    with mrcfile.new_mmap(path, shape=(hi - lo, n, n), mrc_mode=2, overwrite=True) as mrc:
        preallocate(path, start=os.stat(path).st_size - mrc.data.nbytes)
        mrc.voxel_size = apix
        for start in range(lo, hi, chunk):
            part = slice(start, min(start + chunk, hi))
            clean = apply_ctf(blob_projections(model, plan["matrix"][part], plan["shift_px"][part], n),
                              plan["df1_A"][part], plan["df2_A"][part], plan["df_angle_rad"][part], apix)
            noise = np.where(plan["high_snr"][part], sigma / math.sqrt(HIGH_SNR_GAIN), sigma)
            clean += rng.standard_normal(clean.shape, dtype=np.float32) * noise[:, None, None].astype(np.float32)
            mrc.data[part.start - lo: part.stop - lo] = clean
