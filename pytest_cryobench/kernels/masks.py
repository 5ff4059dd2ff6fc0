"""Real-space masks for FSC: a soft sphere and threshold masks with a cosine edge.

Conventions (cryoSPARC's legacy GSFSC masks, as described on its forum):

* **spherical**: 1 inside ``0.85 R``, a raised-cosine fall-off to 0 at ``R = n / 2``, radii in
  voxels measured from the box centre ``n // 2`` (the voxel that holds the origin of an FFT-centred
  map);
* **loose**: threshold the map at half its maximum, then 1 within 25 A of the thresholded region,
  a cosine fall-off to 0 at 40 A;
* **tight**: the same with 6 A and 12 A.

The threshold masks are ``m(d) = 1`` for ``d <= extend_A``,
``0.5 (1 + cos(pi (d - extend_A) / (soft_A - extend_A)))`` for ``extend_A < d < soft_A`` and
``0`` beyond, where ``d`` is the Euclidean distance in A from a voxel centre to the nearest voxel of
the thresholded (binary) region. Every function takes its array module from its input (or ``xp``),
so NumPy and CuPy share one code path.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, scipy_namespace_for

LOOSE_A = (25.0, 40.0)
"""``(extend_A, soft_A)`` of the loose mask."""
TIGHT_A = (6.0, 12.0)
"""``(extend_A, soft_A)`` of the tight mask."""


def _raised_cosine(t: Any, xp: ModuleType) -> Any:
    """``0.5 (1 + cos(pi t))`` of ``t`` clipped to [0, 1]: exactly 1 at t <= 0 and 0 at t >= 1."""
    t = xp.clip(t, 0, 1)
    edge = 0.5 * (1 + xp.cos(math.pi * t))
    return xp.where(t >= 1, 0, edge).astype(t.dtype, copy=False)


def soft_sphere(n: int, inner_radius: float, outer_radius: float, xp: ModuleType = numpy,
                dtype: Any = numpy.float32) -> Any:
    """A sphere with a raised-cosine edge, centred on voxel ``(n // 2, n // 2, n // 2)``.

    Parameters
    ----------
    n : int
        Box edge, voxels.
    inner_radius, outer_radius : float
        Radii in voxels: 1 for ``r <= inner_radius``, falling as a raised cosine to 0 at
        ``r >= outer_radius``. Equal radii give a hard-edged sphere (1 for ``r <= inner_radius``).
    xp : module
        ``numpy`` or ``cupy``; the mask is created on that backend.
    dtype : dtype
        Floating type of the mask.

    Returns
    -------
    array, shape (n, n, n), ``dtype``
        Values in [0, 1].
    """
    if outer_radius < inner_radius or inner_radius < 0:
        raise ValueError(f"need 0 <= inner_radius <= outer_radius, got {inner_radius}, {outer_radius}")
    # r^2 is an integer on the voxel grid: tabulate the profile once per possible r^2 and look it
    # up, instead of a square root and a cosine per voxel
    c = xp.arange(n, dtype=xp.int32) - (n // 2)
    c2 = c * c
    r2 = (c2[None, :, None] + c2[None, None, :]) + c2[:, None, None]
    radius = xp.sqrt(xp.arange(int(3 * (n // 2) ** 2) + 1, dtype=xp.float64))
    if outer_radius == inner_radius:
        profile = (radius <= inner_radius).astype(dtype)
    else:
        profile = _raised_cosine((radius - inner_radius) / (outer_radius - inner_radius), xp).astype(dtype)
    return xp.take(profile, r2)


def spherical_mask(n: int, xp: ModuleType = numpy, inner: float = 0.85, dtype: Any = numpy.float32) -> Any:
    """The spherical FSC mask: 1 inside ``inner * R``, cosine edge to 0 at ``R = n / 2``.

    Parameters
    ----------
    n : int
        Box edge, voxels.
    xp : module
        ``numpy`` or ``cupy``.
    inner : float
        Start of the soft edge as a fraction of ``R`` (0 <= inner <= 1; 1 gives a hard edge).
    dtype : dtype
        Floating type of the mask.

    Returns
    -------
    array, shape (n, n, n), ``dtype``
        1 at the box centre ``n // 2``, 0.5 at ``r = (1 + inner) R / 2``, 0 at ``r >= R`` (the
        corners).
    """
    if not 0 <= inner <= 1:
        raise ValueError(f"inner must lie in [0, 1], got {inner}")
    radius = n / 2
    return soft_sphere(n, inner * radius, radius, xp=xp, dtype=dtype)


def threshold_binary(volume: Any, threshold_fraction: float = 0.5) -> Any:
    """The binary region ``volume >= threshold_fraction * max(volume)``.

    Parameters
    ----------
    volume : array, shape (nz, ny, nx)
        Density map (NumPy or CuPy).
    threshold_fraction : float
        Fraction of the map's maximum.

    Returns
    -------
    array of bool, same shape and backend as ``volume``

    Raises
    ------
    ValueError
        The map's maximum is not positive (no meaningful threshold).
    """
    peak = float(volume.max())
    if not peak > 0:
        raise ValueError(f"a threshold mask needs a map with a positive maximum, got {peak}")
    return volume >= threshold_fraction * peak


def distance_A(binary: Any, apix: float, max_A: float | None = None) -> Any:
    """Euclidean distance (A) from every voxel centre to the nearest voxel of ``binary``.

    Parameters
    ----------
    binary : array of bool, shape (nz, ny, nx)
        The region; must hold at least one ``True``.
    apix : float
        Voxel size, A.
    max_A : float, optional
        Only distances up to ``max_A`` are needed: the transform then runs on the region's
        bounding box grown by ``max_A``, which holds every region voxel, so each distance up to
        ``max_A`` is exact; voxels outside the box get ``inf``. A compact object in a large box
        costs a fraction of the full transform.

    Returns
    -------
    array of float32, same shape and backend
        0 inside the region. ``scipy.ndimage`` / ``cupyx.scipy.ndimage``
        ``distance_transform_edt(~binary) * apix``; the CPU-heavy step of the threshold masks.
    """
    xp = array_namespace(binary)
    if max_A is None:
        if not bool(binary.any()):
            raise ValueError("the binary region is empty")
        return _edt_A(binary, apix)
    box = _grown_box(binary, max_A, apix)
    out = xp.full(binary.shape, xp.inf, dtype=xp.float32)
    out[box] = _edt_A(binary[box], apix)
    return out


def _edt_A(binary: Any, apix: float) -> Any:
    """``distance_transform_edt(~binary) * apix`` as float32, on ``binary``'s backend."""
    xp = array_namespace(binary)
    return (scipy_namespace_for(xp, "ndimage").distance_transform_edt(~binary) * apix).astype(xp.float32, copy=False)


def _grown_box(binary: Any, max_A: float, apix: float) -> tuple[slice, ...]:
    """The bounding box of ``binary``'s region grown by ``max_A`` (and a voxel), clipped to the map.

    Raises
    ------
    ValueError
        The region is empty.
    """
    xp = array_namespace(binary)
    grow = int(numpy.ceil(max_A / apix)) + 1
    box = []
    for axis in range(binary.ndim):
        others = tuple(a for a in range(binary.ndim) if a != axis)
        present = xp.flatnonzero(binary.any(axis=others))
        if present.size == 0:
            raise ValueError("the binary region is empty")
        lo, hi = int(present[0]), int(present[-1])
        box.append(slice(max(lo - grow, 0), min(hi + grow + 1, binary.shape[axis])))
    return tuple(box)


def soft_edge(distance: Any, extend_A: float, soft_A: float, dtype: Any = numpy.float32) -> Any:
    """The raised-cosine edge of the threshold masks as a function of distance.

    Parameters
    ----------
    distance : array
        Distance from the binary region, A (see :func:`distance_A`).
    extend_A, soft_A : float
        1 for ``d <= extend_A``, ``0.5 (1 + cos(pi (d - extend_A) / (soft_A - extend_A)))``
        between, 0 for ``d >= soft_A``.
    dtype : dtype
        Floating type of the mask.

    Returns
    -------
    array, same shape and backend as ``distance``, ``dtype``
    """
    if not soft_A > extend_A >= 0:
        raise ValueError(f"need 0 <= extend_A < soft_A, got {extend_A}, {soft_A}")
    xp = array_namespace(distance)
    t = (distance.astype(dtype, copy=False) - extend_A) / (soft_A - extend_A)
    return _raised_cosine(t.astype(dtype, copy=False), xp)


def threshold_mask(volume: Any, apix: float, extend_A: float, soft_A: float, threshold_fraction: float = 0.5,
                   dtype: Any = numpy.float32) -> Any:
    """Threshold the map, extend by ``extend_A``, cosine edge out to ``soft_A``.

    Parameters
    ----------
    volume : array, shape (nz, ny, nx)
        Density map (NumPy or CuPy), usually the mean of the two half maps.
    apix : float
        Voxel size, A.
    extend_A, soft_A : float
        Distances from the thresholded region (A) where the edge starts and where it reaches 0.
    threshold_fraction : float
        The binary region is ``volume >= threshold_fraction * max(volume)``.
    dtype : dtype
        Floating type of the mask.

    Returns
    -------
    array, same shape and backend as ``volume``, ``dtype``
        Values in [0, 1]; 1 on the binary region and within ``extend_A`` of it, 0 at ``soft_A``
        and beyond.
    """
    if not soft_A > extend_A >= 0:
        raise ValueError(f"need 0 <= extend_A < soft_A, got {extend_A}, {soft_A}")
    xp = array_namespace(volume)
    binary = threshold_binary(volume, threshold_fraction)
    # every voxel within soft_A of the region lies in its grown bounding box; outside it the mask is 0
    box = _grown_box(binary, soft_A, apix)
    mask = xp.zeros(volume.shape, dtype=dtype)
    mask[box] = soft_edge(_edt_A(binary[box], apix), extend_A, soft_A, dtype=dtype)
    return mask


def loose_mask(volume: Any, apix: float, threshold_fraction: float = 0.5, dtype: Any = numpy.float32) -> Any:
    """cryoSPARC's legacy loose mask: threshold at half max, 1 within 25 A, cosine edge to 40 A.

    See :func:`threshold_mask` for the parameters and the result.
    """
    return threshold_mask(volume, apix, *LOOSE_A, threshold_fraction=threshold_fraction, dtype=dtype)


def tight_mask(volume: Any, apix: float, threshold_fraction: float = 0.5, dtype: Any = numpy.float32) -> Any:
    """cryoSPARC's legacy tight mask: threshold at half max, 1 within 6 A, cosine edge to 12 A.

    See :func:`threshold_mask` for the parameters and the result.
    """
    return threshold_mask(volume, apix, *TIGHT_A, threshold_fraction=threshold_fraction, dtype=dtype)
