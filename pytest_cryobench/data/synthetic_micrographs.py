"""Picking test data with a known answer: distinct asymmetric templates, and micrographs with
copies of them planted at known positions and angles.

All random numbers come from host NumPy, so the data are the same on every backend; the
micrograph is made on the backend asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy

from pytest_cryobench.kernels.picking import box_center, rotate_items


def asymmetric_templates(n_templates: int, box: int, seed: int, xp: ModuleType = numpy,
                         n_satellites: int = 6) -> Any:
    """Distinct, asymmetric 2-D templates: a body with protrusions, made of Gaussian blobs.

    Each template is an elongated Gaussian body at the box centre (axes ``0.10`` and ``0.05 box``,
    random orientation, amplitude 1) plus ``n_satellites`` smaller elliptical blobs (axes
    ``0.025-0.08 box``, amplitudes 0.5-1) at distinct distances from the centre (``0.10-0.30 box``,
    shuffled) and at irregular polar angles (gaps of 0.6-1.6 rad), so that no rotation or mirror
    maps a template onto itself or onto another. A soft disk (1 inside ``0.38 box``, cosine to 0 at
    ``0.46 box``) keeps every rotation inside the box and inside a mask of radius ``0.46 box``.
    Scaled to a peak of 1. Random numbers come from host NumPy, so the templates are the same on
    every backend.

    Parameters
    ----------
    n_templates : int
        ``T``.
    box : int
        Box size, pixels.
    seed : int
        Random seed.
    xp : module
        ``numpy`` or ``cupy``.
    n_satellites : int
        Blobs around the body.

    Returns
    -------
    array, shape (T, box, box), float32
        Non-negative templates with maximum 1.
    """
    rng = numpy.random.default_rng([int(seed), 0x7E3A])
    n_t, n_s = int(n_templates), int(n_satellites)
    radii = rng.permuted(numpy.broadcast_to(numpy.linspace(0.10, 0.30, n_s), (n_t, n_s)), axis=1) * box
    polar = rng.uniform(0, 2 * math.pi, (n_t, 1)) + numpy.cumsum(rng.uniform(0.6, 1.6, (n_t, n_s)), axis=1)
    size = rng.uniform(0.025, 0.045, (n_t, n_s)) * box
    zero = numpy.zeros((n_t, 1))
    params = {  # blob 0 is the body
        "y0": numpy.concatenate([zero, radii * numpy.sin(polar)], axis=1),
        "x0": numpy.concatenate([zero, radii * numpy.cos(polar)], axis=1),
        "major": numpy.concatenate([zero + 0.10 * box, size * rng.uniform(1.0, 1.8, (n_t, n_s))], axis=1),
        "minor": numpy.concatenate([zero + 0.05 * box, size], axis=1),
        "orient": rng.uniform(0, math.pi, (n_t, n_s + 1)),
        "amp": numpy.concatenate([zero + 1.0, rng.uniform(0.5, 1.0, (n_t, n_s))], axis=1),
    }
    p = {key: xp.asarray(value)[:, :, None, None] for key, value in params.items()}
    cy, cx = box_center((box, box))
    yy = (xp.arange(box, dtype=xp.float64) - cy)[:, None]
    xx = (xp.arange(box, dtype=xp.float64) - cx)[None, :]
    dy, dx = yy - p["y0"], xx - p["x0"]
    cos, sin = xp.cos(p["orient"]), xp.sin(p["orient"])
    u = (dx * cos + dy * sin) / p["major"]
    v = (-dx * sin + dy * cos) / p["minor"]
    images = (p["amp"] * xp.exp(-0.5 * (u * u + v * v))).sum(axis=1)
    r = xp.sqrt(yy * yy + xx * xx) / box
    taper = xp.where(r <= 0.38, 1.0, xp.where(r >= 0.46, 0.0, 0.5 + 0.5 * xp.cos(math.pi * (r - 0.38) / 0.08)))
    images = images * taper
    images /= images.max(axis=(-2, -1), keepdims=True)
    return images.astype(xp.float32)


def planted_micrograph(shape: Sequence[int], templates: Any, n_particles: int, snr_sigma: float, seed: int,
                       ctf: Any | None = None, xp: ModuleType = numpy) -> tuple[Any, numpy.ndarray,
                                                                                 numpy.ndarray, numpy.ndarray]:
    """A synthetic micrograph with particles at known positions, templates and angles.

    Particles are copies of the templates, rotated by uniformly random angles (bilinear, as in
    :func:`rotate_templates`), centred at random positions on a jittered grid: cells of
    ``1.5 d`` with ``d = max(h, w) + 1``, one particle per chosen cell, offsets that keep any two
    particles at least ``d`` apart (so they never overlap), and at least 5/8 of a box from every
    edge (the whole box and the picker's border of half a box stay inside).
    The clean image is multiplied by the CTF in Fourier space when one is given, then Gaussian
    noise of standard deviation ``snr_sigma * max|templates|`` is added. All random numbers come
    from host NumPy (``default_rng(seed)``): the result is the same on every backend.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)``, pixels.
    templates : array, shape (T, h, w)
        Templates (e.g. :func:`asymmetric_templates`).
    n_particles : int
        ``N``.
    snr_sigma : float
        Noise standard deviation relative to the templates' peak value (before the CTF).
    seed : int
        Random seed.
    ctf : array, shape (H, W // 2 + 1), optional
        CTF on the micrograph's ``rfft2`` grid.
    xp : module
        Backend of the micrograph.

    Returns
    -------
    micrograph : array, shape (H, W), float32
        On ``xp``.
    coords : numpy.ndarray, shape (N, 2), int64
        True particle centres ``(y, x)``, in raster order.
    template_index : numpy.ndarray, shape (N,), int64
        True template of each particle.
    angles_deg : numpy.ndarray, shape (N,), float64
        True in-plane angle of each particle, degrees in [0, 360).

    Raises
    ------
    ValueError
        When ``N`` particles do not fit.
    """
    big_h, big_w = (int(n) for n in shape)
    stack = xp.asarray(templates, dtype=xp.float32)
    if stack.ndim == 2:
        stack = stack[None]
    n_t, h, w = stack.shape
    cy, cx = box_center((h, w))
    distance = max(h, w) + 1
    cell = distance + distance // 2
    margin = (5 * max(h, w)) // 8
    cells_y, cells_x = (big_h - 2 * margin) // cell, (big_w - 2 * margin) // cell
    capacity = max(0, cells_y) * max(0, cells_x)
    if n_particles > capacity:
        raise ValueError(f"{n_particles} particles of {h}x{w} do not fit in {big_h}x{big_w} "
                         f"(at most {capacity} on a {cell}-pixel grid)")
    rng = numpy.random.default_rng([int(seed), 0x91C5])
    cells = numpy.sort(rng.choice(capacity, size=n_particles, replace=False))
    offsets = rng.integers(0, cell - distance + 1, size=(n_particles, 2))
    coords = numpy.stack([margin + (cells // cells_x) * cell, margin + (cells % cells_x) * cell], axis=1)
    coords = (coords + offsets).astype(numpy.int64)
    template_index = rng.integers(0, n_t, size=n_particles).astype(numpy.int64)
    angles = rng.uniform(0.0, 360.0, size=n_particles)
    noise = rng.standard_normal((big_h, big_w), dtype=numpy.float32)

    particles = rotate_items(stack, xp.asarray(template_index), xp.asarray(angles))
    clean = xp.zeros((big_h, big_w), dtype=xp.float32)
    rows = xp.asarray(coords[:, 0] - cy)[:, None, None] + xp.arange(h)[None, :, None]
    cols = xp.asarray(coords[:, 1] - cx)[:, None, None] + xp.arange(w)[None, None, :]
    clean[rows, cols] = particles  # boxes never overlap
    if ctf is not None:
        spectrum = xp.fft.rfft2(clean)
        spectrum *= xp.asarray(ctf, dtype=xp.float32)
        clean = xp.fft.irfft2(spectrum, s=(big_h, big_w)).astype(xp.float32)
    sigma = float(snr_sigma) * float(xp.abs(stack).max())
    micrograph = clean + xp.asarray(noise) * xp.float32(sigma)
    return micrograph.astype(xp.float32), coords, template_index, angles
