"""Ab-initio reconstruction pieces (SGD, Punjani et al. 2017) and aligning a map to another.

The SGD loop itself (pose search and insertion per mini-batch) runs the engine's pass
(:mod:`pytest_cryobench.engine.passes`); the maths here is what is particular to ab-initio:

- :func:`initial_volume`: a random, low-passed, positive blob inside a sphere (no reference);
- :func:`sgd_step`: one step with momentum, ``v <- mu v + eta (R_b - V)``, ``V <- V + v``, where
  ``R_b`` is the mini-batch's regularised reconstruction: ``R_b - V`` is the negative gradient
  of the mini-batch objective preconditioned by ``(W_b + lambda)^-1`` where the batch has data
  (CryoSPARC's ab-initio uses such a diagonal Fourier preconditioner);
- :func:`align_volumes`: the rotation, translation and hand that best superpose a map on a
  reference (an exhaustive rotation grid, both hands, translations by FFT cross-correlation,
  then a local refinement), to compare an ab-initio map, which lives in a frame of its own,
  with the truth.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, scipy_namespace_for, to_host
from pytest_cryobench.kernels.rotations import rotation_grid, rotvec_to_matrix


def fourier_crop(volume: Any, m: int) -> Any:
    """A cube ``(n, n, n)`` resampled to ``(m, m, m)`` by cropping (or zero-padding) its centred spectrum."""
    xp = array_namespace(volume)
    n = volume.shape[0]
    f = xp.fft.fftshift(xp.fft.fftn(xp.fft.ifftshift(volume)))
    out = xp.zeros((m, m, m), dtype=f.dtype)
    a, b = max(0, n // 2 - m // 2), max(0, m // 2 - n // 2)
    w = min(n, m)
    out[b:b + w, b:b + w, b:b + w] = f[a:a + w, a:a + w, a:a + w]
    scale = (m / n) ** 3
    return (xp.fft.fftshift(xp.fft.ifftn(xp.fft.ifftshift(out))).real * scale).astype(xp.float32)


def low_pass_volume(volume: Any, shell: float) -> Any:
    """The volume with every frequency beyond ``shell`` (pixels) removed."""
    xp = array_namespace(volume)
    n = volume.shape[0]
    k = xp.asarray(numpy.fft.fftfreq(n) * n)
    kr = xp.asarray(numpy.fft.rfftfreq(n) * n)
    keep = (k[:, None, None] ** 2 + k[None, :, None] ** 2 + kr[None, None, :] ** 2) <= shell ** 2
    f = xp.fft.rfftn(xp.fft.ifftshift(volume)) * keep
    return xp.fft.fftshift(xp.fft.irfftn(f, s=volume.shape, axes=(0, 1, 2))).astype(xp.float32)


def fsc_weighted(volume: Any, curve: Any) -> Any:
    """The volume with shell ``s`` scaled by ``sqrt(2 FSC / (1 + FSC))`` (0 where FSC <= 0): the
    FSC-based low-pass of gold-standard refinement (Rosenthal & Henderson's ``C_ref``), shells
    ``round(|k|)`` beyond the curve set to zero."""
    xp = array_namespace(volume)
    n = volume.shape[0]
    fsc = numpy.clip(numpy.asarray(to_host(curve), dtype=numpy.float64), 0, 1)
    weight = numpy.sqrt(2 * fsc / (1 + fsc))
    k = numpy.fft.fftfreq(n) * n
    kr = numpy.fft.rfftfreq(n) * n
    shell = numpy.rint(numpy.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kr[None, None, :] ** 2)).astype(int)
    table = numpy.zeros(shell.max() + 1)
    table[:len(weight)] = weight[:shell.max() + 1]
    w = xp.asarray(table[shell].astype(numpy.float32))
    f = xp.fft.rfftn(xp.fft.ifftshift(volume)) * w
    return xp.fft.fftshift(xp.fft.irfftn(f, s=volume.shape, axes=(0, 1, 2))).astype(xp.float32)


def sphere(n: int, radius: float, xp: Any = numpy) -> Any:
    z, y, x = numpy.mgrid[0:n, 0:n, 0:n] - n // 2
    return xp.asarray((numpy.sqrt(x * x + y * y + z * z) <= radius).astype(numpy.float32))


def initial_volume(n: int, seed: int, shell: float, xp: Any = numpy) -> Any:
    """Random positive density in a sphere of radius ``0.35 n``, low-passed to ``shell``."""
    rng = numpy.random.default_rng(seed)
    noise = xp.asarray(rng.normal(size=(n, n, n)).astype(numpy.float32))
    v = low_pass_volume(noise, shell)
    v = xp.maximum(v, 0) * sphere(n, 0.35 * n, xp)
    return (v / (xp.abs(v).max() + 1e-12)).astype(xp.float32)


def sgd_step(volume: Any, batch_map: Any, velocity: Any, rate: float, momentum: float) -> tuple[Any, Any]:
    """``(V, v)`` after one momentum step towards the mini-batch map (see the module notes)."""
    velocity = momentum * velocity + rate * (batch_map - volume)
    return volume + velocity, velocity


def rotate_volume(volume: Any, matrix: numpy.ndarray, order: int = 1) -> Any:
    """``V(R^T x)`` about voxel ``n // 2`` (trilinear; vectors ``(x, y, z)``, arrays ``(z, y, x)``)."""
    xp = array_namespace(volume)
    ndimage = scipy_namespace_for(xp, "ndimage")
    n = volume.shape[0]
    flip = numpy.eye(3)[::-1]                # (x, y, z) <-> (z, y, x)
    m = flip @ numpy.asarray(matrix).T @ flip   # output index -> input index
    centre = numpy.full(3, n // 2, dtype=numpy.float64)
    return ndimage.affine_transform(volume, xp.asarray(m), offset=tuple(centre - m @ centre), order=order,
                                    mode="constant")


def _subvoxel_peak(cc: Any, index: tuple[int, int, int]) -> numpy.ndarray:
    """The peak of a circular correlation near ``index``, refined by a parabola per axis, voxels."""
    c = to_host(cc)
    n = numpy.array(c.shape)
    peak = numpy.array(index, dtype=numpy.float64)
    for axis in range(3):
        lo, hi = list(index), list(index)
        lo[axis] = (index[axis] - 1) % n[axis]
        hi[axis] = (index[axis] + 1) % n[axis]
        a, b, d = c[tuple(lo)], c[index], c[tuple(hi)]
        denom = a - 2 * b + d
        peak[axis] += numpy.clip(0.5 * (a - d) / denom, -0.5, 0.5) if denom < 0 else 0.0
    return numpy.where(peak > n / 2, peak - n, peak)


def shift_volume(volume: Any, shift: numpy.ndarray) -> Any:
    """The volume moved by ``shift`` voxels ``(z, y, x)`` (Fourier phase ramp, circular)."""
    xp = array_namespace(volume)
    n = volume.shape[0]
    k = numpy.fft.fftfreq(n)
    kr = numpy.fft.rfftfreq(n)
    phase = numpy.exp(-2j * numpy.pi * (k[:, None, None] * shift[0] + k[None, :, None] * shift[1]
                                        + kr[None, None, :] * shift[2]))
    f = xp.fft.rfftn(volume) * xp.asarray(phase.astype(numpy.complex64))
    return xp.fft.irfftn(f, s=volume.shape, axes=(0, 1, 2)).astype(xp.float32)


def _best_translation(moving: Any, reference_f: Any) -> tuple[float, tuple[int, int, int]]:
    xp = array_namespace(moving)
    cc = xp.fft.irfftn(xp.fft.rfftn(moving) * xp.conj(reference_f), s=moving.shape, axes=(0, 1, 2))
    i = int(to_host(xp.argmax(cc)))
    return float(to_host(cc.ravel()[i])), tuple(int(v) for v in numpy.unravel_index(i, moving.shape))


@dataclasses.dataclass
class Alignment:
    """Outcome of :func:`align_volumes`: ``aligned`` is ``volume`` (mirrored if ``mirrored``), rotated
    by ``rotation`` (cubic spline) and moved by ``-shift`` voxels; ``score`` its correlation with the
    reference at the search size."""

    aligned: Any
    rotation: numpy.ndarray
    mirrored: bool
    shift: tuple[float, float, float]
    score: float


def align_volumes(volume: Any, reference: Any, *, directions: int = 80, psi_step_deg: float = 20.0,
                  search_box: int = 16) -> Alignment:
    """Superpose ``volume`` on ``reference`` (both ``(n, n, n)``): rotation, hand, translation.

    The search runs on copies Fourier-cropped to ``search_box``; the best pose is refined by
    small rotations (5^3 grids of +-1/2, then +-1/8 of the grid step), then applied at full size.
    """
    xp = array_namespace(volume, reference)
    n = volume.shape[0]
    m = min(search_box, n)
    small_ref = fourier_crop(reference, m)
    ref_f = xp.fft.rfftn(small_ref)
    grid = rotation_grid(directions, psi_step_deg)
    best = (-numpy.inf, None, False)
    for mirrored in (False, True):
        moving = fourier_crop(volume[::-1] if mirrored else volume, m)
        for r in grid.matrices:
            score, _ = _best_translation(rotate_volume(moving, r), ref_f)
            if score > best[0]:
                best = (score, r, mirrored)
    _, r0, mirrored = best
    moving = fourier_crop(volume[::-1] if mirrored else volume, m)
    for span in (numpy.radians(grid.step_deg) / 2, numpy.radians(grid.step_deg) / 8):
        r0 = best[1]
        offsets = numpy.linspace(-span, span, 5)
        for a in offsets:
            for b in offsets:
                for c in offsets:
                    r = rotvec_to_matrix(numpy.array([a, b, c])) @ r0
                    score, _ = _best_translation(rotate_volume(moving, r), ref_f)
                    if score > best[0]:
                        best = (score, r, mirrored)
    score, rotation, mirrored = best
    full = rotate_volume(volume[::-1] if mirrored else volume, rotation, order=3)
    cc = xp.fft.irfftn(xp.fft.rfftn(full) * xp.conj(xp.fft.rfftn(reference)), s=full.shape, axes=(0, 1, 2))
    index = tuple(int(v) for v in numpy.unravel_index(int(to_host(xp.argmax(cc))), full.shape))
    shift = _subvoxel_peak(cc, index)
    return Alignment(shift_volume(full, -shift), rotation, mirrored, tuple(float(v) for v in shift), score)
