"""2D classification: expectation-maximisation over classes, in-plane rotations and shifts.

The maximum-likelihood model of Scheres et al. (2005) and RELION's/CryoSPARC's 2D classification,
simplified: particle ``X_i`` is class ``k``'s average rotated by ``a`` and shifted by ``t`` plus
white Gaussian noise of variance ``sigma^2``. Images are phase-flipped beforehand (their CTF
signs undone), so class averages need no CTF weighting.

Per iteration (``docs/design.md``, workflow):

1. **Rotate** every class average by every search angle (bilinear, about pixel ``n // 2``).
2. **Score** every shift ``t`` within ``shift_extent``: ``cc(t) = sum_x X(x + t) R(x)``; the
   log-likelihood is ``(cc - |R|^2 / 2) / sigma^2``.
3. **Posterior** per particle by a softmax over (class, angle, shift).
4. **Maximise**: each class average is the posterior-weighted mean of the particles moved back,
   ``sum_t w(t) X(x + t)`` per (class, angle), rotated by ``-a`` and summed over angles; then
   masked and low-passed. ``sigma^2`` is re-estimated from the
   residual of the best poses.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, scipy_namespace_for, to_host


@dataclasses.dataclass
class Classes2D:
    """Outcome of :func:`classify_2d`.

    Attributes
    ----------
    averages : float32 array, shape (K, n, n)
        Class averages (input's backend).
    assignment, angle_index : int64 arrays, shape (P,)
        Most probable class and rotation per particle (host).
    shift : int64 array, shape (P, 2)
        Most probable ``(dy, dx)`` per particle (host).
    angles_deg : float64 array, shape (A,)
    sigma2 : float
        Final noise variance.
    """

    averages: Any
    assignment: numpy.ndarray
    angle_index: numpy.ndarray
    shift: numpy.ndarray
    angles_deg: numpy.ndarray
    sigma2: float


def rotate_stack(stack: Any, angle_deg: float) -> Any:
    """Each image of ``(B, n, n)`` rotated by ``angle_deg`` about pixel ``n // 2`` (bilinear)."""
    xp = array_namespace(stack)
    ndimage = scipy_namespace_for(xp, "ndimage")
    n = stack.shape[-1]
    c, s = numpy.cos(numpy.radians(angle_deg)), numpy.sin(numpy.radians(angle_deg))
    matrix = numpy.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    centre = numpy.array([0, n // 2, n // 2])
    offset = centre - matrix @ centre
    return ndimage.affine_transform(stack, xp.asarray(matrix), offset=tuple(offset), order=1, mode="constant")


def shift_images(stack: Any, shifts_xy: Any) -> Any:
    """Images ``(B, n, n)`` moved by ``shifts_xy`` ``(B, 2)`` pixels ``(sx, sy)`` (Fourier phase
    ramps, circular): what sat at ``n // 2 + s`` moves to ``n // 2 + 2 s``; pass ``-s`` to recentre."""
    xp = array_namespace(stack)
    n = stack.shape[-1]
    ky = xp.asarray(numpy.fft.fftfreq(n))[None, :, None]
    kx = xp.asarray(numpy.fft.rfftfreq(n))[None, None, :]
    s = xp.asarray(numpy.asarray(shifts_xy, dtype=numpy.float64))
    ramp = xp.exp(-2j * numpy.pi * (kx * s[:, 0, None, None] + ky * s[:, 1, None, None]))
    return xp.fft.irfft2(xp.fft.rfft2(stack) * ramp, s=(n, n)).astype(xp.float32)


def low_pass_stack(stack: Any, radius: float) -> Any:
    """Images with every frequency beyond ``radius`` (pixels of the ``n`` grid) set to zero."""
    xp = array_namespace(stack)
    n = stack.shape[-1]
    ky = xp.asarray(numpy.fft.fftfreq(n) * n)[:, None]
    kx = xp.asarray(numpy.fft.rfftfreq(n) * n)[None, :]
    keep = (ky ** 2 + kx ** 2) <= radius ** 2
    return xp.fft.irfft2(xp.fft.rfft2(stack) * keep, s=(n, n)).astype(xp.float32)


def shifted_copies(images: Any, extent: int) -> tuple[Any, numpy.ndarray]:
    """``X(x + t)`` for every shift ``t = (dy, dx)``, ``|dy|, |dx| <= extent``: ``(P, T, n, n)``
    (circular), and the shifts ``(T, 2)``."""
    xp = array_namespace(images)
    d = numpy.arange(-extent, extent + 1)
    shifts = numpy.stack(numpy.meshgrid(d, d, indexing="ij"), axis=-1).reshape(-1, 2)
    return xp.stack([xp.roll(images, (-int(dy), -int(dx)), axis=(1, 2)) for dy, dx in shifts], axis=1), shifts


def classify_2d(images: Any, n_classes: int, *, iterations: int = 8, angle_step_deg: float = 10.0,
                shift_extent: int = 2, low_pass_radius: float | None = None, seed: int = 0,
                batch: int = 64) -> Classes2D:
    """EM 2D classification of phase-flipped particles ``(P, n, n)`` into ``n_classes`` classes.

    The first class averages are single particles drawn at random (``seed``), low-passed. The
    correlations ``sum_x X(x + t) R(x)`` and the weighted sums ``sum_t w(t) X(x + t)`` are
    matrix products with the shifted copies of the particles (:func:`shifted_copies`).
    """
    xp = array_namespace(images)
    p, n, _ = images.shape
    radius = low_pass_radius if low_pass_radius is not None else n / 4
    yy, xx = numpy.mgrid[0:n, 0:n] - n // 2
    mask = xp.asarray((numpy.hypot(yy, xx) <= n / 2 - 1).astype(numpy.float32))
    images = images.astype(xp.float32)
    rng = numpy.random.default_rng(seed)
    averages = low_pass_stack(images[xp.asarray(rng.choice(p, n_classes, replace=False))], radius) * mask
    angles = numpy.arange(0.0, 360.0, angle_step_deg)
    copies, shifts = shifted_copies(images, shift_extent)  # (P, T, n, n)
    n_shifts = len(shifts)
    flat_copies = copies.reshape(p, n_shifts, n * n)
    norms = (images ** 2).sum(axis=(1, 2))
    sigma2 = float(to_host(images.var()))
    best = numpy.zeros((p, 2), dtype=numpy.int64)
    for _ in range(iterations):
        refs = xp.stack([rotate_stack(averages, a) for a in angles], axis=1).reshape(-1, n * n)  # (K*A, n*n)
        ref_norm = (refs ** 2).sum(axis=1)
        accum = xp.zeros_like(refs)
        weight_sum = xp.zeros(refs.shape[0], dtype=xp.float64)
        residual = 0.0
        for lo in range(0, p, batch):
            block = flat_copies[lo:lo + batch]                              # (B, T, n*n)
            cc = xp.einsum("btx,kx->bkt", block, refs)                       # (B, KA, T)
            score = cc - 0.5 * ref_norm[None, :, None]
            flat = score.reshape(score.shape[0], -1) / sigma2
            flat = flat - flat.max(axis=1, keepdims=True)
            w = xp.exp(flat)
            w = (w / w.sum(axis=1, keepdims=True)).reshape(cc.shape)
            top = to_host(xp.argmax(score.reshape(score.shape[0], -1), axis=1))
            ka, t = numpy.divmod(top, n_shifts)
            best[lo:lo + batch] = numpy.column_stack([ka, t])
            accum += xp.einsum("bkt,btx->kx", w, block)
            weight_sum += w.sum(axis=(0, 2))
            best_score = score.reshape(score.shape[0], -1)[xp.arange(score.shape[0]), xp.asarray(top)]
            residual += float(to_host((norms[lo:lo + batch] - 2 * best_score).sum()))
        back = accum.reshape(n_classes, len(angles), n, n)
        totals = weight_sum.reshape(n_classes, len(angles)).sum(axis=1)
        summed = sum(rotate_stack(back[:, a], -angles[a]) for a in range(len(angles)))
        empty = to_host(totals) < 1e-6
        averages = xp.where(xp.asarray(empty)[:, None, None], averages,
                            summed / xp.maximum(totals, 1e-6)[:, None, None].astype(xp.float32))
        averages = low_pass_stack(averages.astype(xp.float32), radius) * mask
        sigma2 = max(residual / (p * n * n), 1e-12)
    cls, ang = numpy.divmod(best[:, 0], len(angles))
    shift = -shifts[best[:, 1]]  # X(x + t) matches the class: the particle sits at -t
    return Classes2D(averages, cls, ang, shift, angles, sigma2)
