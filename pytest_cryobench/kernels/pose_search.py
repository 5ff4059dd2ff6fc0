"""The alignment and reconstruction engine: pose search over a grid, then back-projection.

One batch of particles goes through:

1. ``fft``: ``rfft2`` of the images (origin at pixel ``n // 2``), kept at the search
   coefficients ``coords`` (the half plane up to ``r_search``), shape (B, K).
2. ``ctf``: the CTF of each particle at those coefficients, shape (B, K).
3. ``score``: for every rotation ``r`` of the grid and every shift ``t`` of the shift grid the
   log-likelihood of the particle under white-after-whitening Gaussian noise, up to a constant::

       L[b, t, r] = sum_k w_k Re(X_bk conj(C_bk P_rk) e^{-2 pi i k.t / n}) - 1/2 sum_k w_k C_bk^2 |P_rk|^2

   with ``w_k`` the half-plane weight over the noise power ``sigma^2(|k|)`` (``setup_scales``).
   Both sums are matrix products (one real GEMM of shape (B T, 2K) x (2K, R), one of
   (B, K) x (K, R)): the whole grid for the batch at once, no loop over poses.
4. ``max``: each particle's best (r, t); ``marg``: the posterior ``softmax(L)`` over (r, t) per
   particle, keeping the most probable poses until their cumulative mass reaches 0.999.
5. ``backproject``: the shift-corrected, CTF-weighted coefficients ``C X e^{+2 pi i k.t / n}``
   and ``C^2`` inserted at each kept pose (weighted by its posterior, renormalised over the kept
   poses), and at ``R S_g`` for every operator ``S_g`` of the symmetry group.

Projections of the reference at every grid rotation (``project``) are made once per pass; the
reconstruction (``reconstruct``) divides data by weights, inverse transforms and removes the
gridding kernel. Every function takes its array module from its inputs, so NumPy and CuPy share
the code.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, bin_sums
from pytest_cryobench.kernels.ctf import ctf_at

MARG_MASS = 0.999
"""Cumulative posterior mass of the poses a particle is inserted at under ``marg``."""


class ShiftGrid(NamedTuple):
    """Integer in-plane shifts searched for every particle.

    Attributes
    ----------
    shifts : numpy.ndarray of float64, shape (T, 2)
        ``(sx, sy)`` in pixels: the particle's centre sits at ``n // 2 + s``.
    step_px : float
        Grid spacing, pixels.
    """

    shifts: numpy.ndarray
    step_px: float


def shift_grid(extent_px: int, step_px: int = 1) -> ShiftGrid:
    """All shifts ``(sx, sy)`` with ``|sx|, |sy| <= extent_px`` on a grid of ``step_px``.

    Returns
    -------
    ShiftGrid
        ``(2 * extent_px // step_px + 1) ** 2`` shifts, ``(0, 0)`` among them, x fastest.
    """
    if extent_px < 0 or step_px < 1:
        raise ValueError(f"need extent_px >= 0 and step_px >= 1, got {extent_px}, {step_px}")
    axis = numpy.arange(-extent_px, extent_px + 1, step_px, dtype=numpy.float64)
    sy, sx = numpy.meshgrid(axis, axis, indexing="ij")
    return ShiftGrid(numpy.stack([sx.ravel(), sy.ravel()], axis=1), float(step_px))


def shift_phases(coords: Any, shifts: Any, n: int, xp: Any) -> Any:
    """``exp(+2 pi i (kx sx + ky sy) / n)`` for every shift and coefficient.

    Multiplying an image's coefficients by this undoes a shift of ``(sx, sy)`` pixels (a shift
    by ``s`` multiplies them by ``exp(-2 pi i k.s / n)``).

    Parameters
    ----------
    coords : FourierCoords
        The coefficients (``kx``, ``ky`` in pixel units of an ``n`` box).
    shifts : array, shape (T, 2)
        ``(sx, sy)``, pixels.
    n : int
        Box edge, pixels.
    xp : module

    Returns
    -------
    array of complex64, shape (T, K), on ``xp``
    """
    kx = xp.asarray(coords.kx, dtype=xp.float64)
    ky = xp.asarray(coords.ky, dtype=xp.float64)
    s = xp.asarray(shifts, dtype=xp.float64)
    angle = (2.0 * numpy.pi / n) * (s[:, 0:1] * kx[None, :] + s[:, 1:2] * ky[None, :])
    return (xp.cos(angle) + 1j * xp.sin(angle)).astype(xp.complex64)


def image_coefficients(images: Any, coords: Any) -> Any:
    """The ``rfft2`` of centred images at the search coefficients.

    Parameters
    ----------
    images : real array, shape (B, n, n)
        Particles, origin at pixel ``(n // 2, n // 2)``.
    coords : FourierCoords

    Returns
    -------
    array of complex64, shape (B, K), on the images' backend
        ``rfft2(ifftshift(image))`` (unnormalised) at ``coords.flat``.
    """
    xp = array_namespace(images)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected a stack of square images (B, n, n), got shape {images.shape}")
    spectra = xp.fft.rfft2(xp.fft.ifftshift(images.astype(xp.float32, copy=False), axes=(1, 2)))
    flat = xp.asarray(coords.flat)
    return xp.take(spectra.reshape(images.shape[0], -1), flat, axis=1).astype(xp.complex64, copy=False)


@dataclasses.dataclass(frozen=True)
class CtfParams:
    """CTF parameters of a batch of particles (cryoSPARC's ``ctf/*`` fields).

    Attributes
    ----------
    df1_A, df2_A, df_angle_rad : numpy.ndarray of float, shape (B,)
    accel_kv, cs_mm, amp_contrast : float
        Shared by the batch (one optics group).
    """

    df1_A: numpy.ndarray
    df2_A: numpy.ndarray
    df_angle_rad: numpy.ndarray
    accel_kv: float = 300.0
    cs_mm: float = 2.7
    amp_contrast: float = 0.1

    def __getitem__(self, index: Any) -> CtfParams:
        return dataclasses.replace(self, df1_A=self.df1_A[index], df2_A=self.df2_A[index],
                                   df_angle_rad=self.df_angle_rad[index])

    def __len__(self) -> int:
        return len(self.df1_A)


def ctf_coefficients(params: CtfParams, coords: Any, apix: float, xp: Any) -> Any:
    """The CTF of each particle at the coefficients, float32, shape (B, K), on ``xp``."""
    scale = 1.0 / (coords.n * apix)
    kx = xp.asarray(coords.kx, dtype=xp.float64)[None, :] * scale
    ky = xp.asarray(coords.ky, dtype=xp.float64)[None, :] * scale
    column = lambda values: xp.asarray(numpy.asarray(values, dtype=numpy.float64))[:, None]  # noqa: E731
    return ctf_at(kx, ky, column(params.df1_A), column(params.df2_A), column(params.df_angle_rad),
                  accel_kv=params.accel_kv, cs_mm=params.cs_mm, amp_contrast=params.amp_contrast)


def noise_weights(coefficients: Any, coords: Any) -> Any:
    """Half-plane weights over the noise power, estimated from a batch of particles.

    The power ``sigma^2(s)`` of each integer shell ``s = round(|k|)`` is the mean ``|X|^2`` of the
    batch there (at cryo-EM SNR the images are mostly noise); the weight of a coefficient is its
    half-plane weight (1 or 2) over that power.

    Parameters
    ----------
    coefficients : complex array, shape (B, K)
        :func:`image_coefficients` of a batch.
    coords : FourierCoords

    Returns
    -------
    array of float32, shape (K,), on the coefficients' backend
    """
    xp = array_namespace(coefficients)
    shell = xp.asarray(numpy.rint(coords.radius).astype(numpy.int64))
    power = (coefficients.real ** 2 + coefficients.imag ** 2).mean(axis=0).astype(xp.float64)
    shells = int(numpy.rint(coords.radius).max()) + 1 if coords.radius.size else 0
    sums = bin_sums(shell, power, shells)
    counts = bin_sums(shell, None, shells)
    sigma2 = sums / xp.maximum(counts, 1)
    sigma2 = xp.where(sigma2 > 0, sigma2, 1.0)
    return (xp.asarray(coords.weight, dtype=xp.float64) / sigma2[shell]).astype(xp.float32)


class ProjectionBank(NamedTuple):
    """The reference's central slices at every grid rotation, laid out for the score GEMMs.

    Attributes
    ----------
    stacked : float32 array, shape (2K, R)
        Real parts over imaginary parts, one column per rotation.
    power : float32 array, shape (K, R)
        ``|P_rk|^2``.
    """

    stacked: Any
    power: Any

    @property
    def rotations(self) -> int:
        return int(self.stacked.shape[1])


def projection_bank(projections: Any) -> ProjectionBank:
    """:class:`ProjectionBank` of central slices ``(R, K)`` complex64."""
    xp = array_namespace(projections)
    stacked = xp.ascontiguousarray(xp.concatenate([projections.real, projections.imag], axis=1).T)
    power = xp.ascontiguousarray((projections.real ** 2 + projections.imag ** 2).T)
    return ProjectionBank(stacked.astype(xp.float32, copy=False), power.astype(xp.float32, copy=False))


def score_poses(coefficients: Any, ctf: Any, bank: ProjectionBank, weights: Any, phases: Any) -> Any:
    """Log-likelihood of every particle at every rotation and shift of the grid.

    Parameters
    ----------
    coefficients : complex64 array, shape (B, K)
        The particles' coefficients (:func:`image_coefficients`).
    ctf : float32 array, shape (B, K)
        Their CTFs.
    bank : ProjectionBank
        The reference's central slices at the grid's R rotations.
    weights : float32 array, shape (K,)
        :func:`noise_weights`.
    phases : complex64 array, shape (T, K)
        :func:`shift_phases` of the shift grid.

    Returns
    -------
    float32 array, shape (B, T, R)
        ``L[b, t, r]`` of the module docstring.
    """
    xp = array_namespace(coefficients, ctf)
    b, k = coefficients.shape
    t = phases.shape[0]
    cw = ctf * weights[None, :]
    y = (coefficients * cw)[:, None, :] * phases[None, :, :]  # (B, T, K): X C w e^{+2 pi i k.t/n}
    y_real = xp.concatenate([y.real, y.imag], axis=2).reshape(b * t, 2 * k)
    del y
    cross = (y_real @ bank.stacked).reshape(b, t, bank.rotations)
    del y_real
    norm = (ctf * cw) @ bank.power  # (B, R)
    cross -= 0.5 * norm[:, None, :]
    return cross


class MaxAssignment(NamedTuple):
    """Each particle's best pose: ``rotation`` and ``shift`` indices (B,) and its ``score`` (B,)."""

    rotation: Any
    shift: Any
    score: Any


def assign_max(scores: Any) -> MaxAssignment:
    """The best (rotation, shift) of each particle from :func:`score_poses`' (B, T, R) scores."""
    xp = array_namespace(scores)
    b, t, r = scores.shape
    flat = scores.reshape(b, t * r)
    best = xp.argmax(flat, axis=1)
    return MaxAssignment(best % r, best // r, xp.take_along_axis(flat, best[:, None], axis=1)[:, 0])


class MargAssignment(NamedTuple):
    """The significant poses of each particle.

    Attributes
    ----------
    particle, rotation, shift : int64 arrays, shape (M,)
        One row per kept pose: batch index of the particle, rotation and shift indices.
    weight : float32 array, shape (M,)
        Posterior of the pose renormalised over the particle's kept poses (they sum to 1 per
        particle).
    total : float64 array, shape (B,)
        Sum of the full posterior of each particle (1 up to rounding).
    kept_mass : float64 array, shape (B,)
        Posterior mass of the kept poses (``>= MARG_MASS`` up to rounding).
    kept : int64 array, shape (B,)
        Number of poses kept per particle.
    best_rotation, best_shift : int64 arrays, shape (B,)
        The posterior's peak.
    """

    particle: Any
    rotation: Any
    shift: Any
    weight: Any
    total: Any
    kept_mass: Any
    kept: Any
    best_rotation: Any
    best_shift: Any


def assign_marg(scores: Any, mass: float = MARG_MASS) -> MargAssignment:
    """Posterior over poses and the smallest set of poses holding ``mass`` of it, per particle.

    Parameters
    ----------
    scores : float32 array, shape (B, T, R)
        Log-likelihoods (:func:`score_poses`); a flat prior over the grid.
    mass : float
        Cumulative posterior mass to keep, in (0, 1].

    Returns
    -------
    MargAssignment
    """
    xp = array_namespace(scores)
    if not 0 < mass <= 1:
        raise ValueError(f"mass must lie in (0, 1], got {mass}")
    b, t, r = scores.shape
    flat = scores.reshape(b, t * r).astype(xp.float64)
    flat = flat - flat.max(axis=1, keepdims=True)
    posterior = xp.exp(flat)
    posterior /= posterior.sum(axis=1, keepdims=True)
    total = posterior.sum(axis=1)
    order = xp.argsort(-posterior, axis=1)
    ranked = xp.take_along_axis(posterior, order, axis=1)
    before = xp.cumsum(ranked, axis=1) - ranked  # mass of the better poses
    keep = before < mass  # the pose that crosses the mass is kept too
    kept = keep.sum(axis=1)
    particle, rank = xp.nonzero(keep)
    pose = order[particle, rank]
    weight = ranked[particle, rank]
    kept_mass = bin_sums(particle, weight, b)
    weight = (weight / kept_mass[particle]).astype(xp.float32)
    return MargAssignment(particle, pose % r, pose // r, weight, total, kept_mass, kept.astype(xp.int64),
                          order[:, 0] % r, order[:, 0] // r)


def plan_batch(n: int, k: int, t: int, r: int, g: int, budget_bytes: float, cap: int, marg: bool = False) -> int:
    """How many particles one batch may hold so that its working arrays fit ``budget_bytes``.

    Counts the per-particle arrays of a batch: the image and its transform (``12 n^2``), the
    coefficients and CTF (``12 K``), the shifted copies for the GEMM (``24 T K``), the scores
    (``4 T R``, plus ``24 T R`` for ``marg``'s float64 posterior and its sort), and the insertion
    values and coordinates for ``g`` symmetry operators (``~96 g K``).

    Parameters
    ----------
    n, k, t, r, g : int
        Box, coefficients, shifts, rotations, symmetry operators.
    budget_bytes : float
        Memory for the batch (after the fixed arrays).
    cap : int
        Largest batch wanted (so that a pass has several batches).

    Returns
    -------
    int
        At least 1.
    """
    return int(max(1, min(cap, budget_bytes // batch_bytes_per_particle(n, k, t, r, g, marg))))


def batch_bytes_per_particle(n: int, k: int, t: int, r: int, g: int, marg: bool = False) -> int:
    """Device bytes one particle of a batch takes (see :func:`plan_batch` for what is counted)."""
    per = 12 * n * n + 12 * k + 24 * t * k + 4 * t * r + 96 * g * k
    if marg:
        per += 24 * t * r
    return per
