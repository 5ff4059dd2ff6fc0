"""Rotations on the host: axis-angle conversion, the pose grid, geodesic angles, point groups.

Conventions
-----------
Matrices
    A rotation ``R`` is a (3, 3) float64 matrix acting on column vectors ``(x, y, z)``:
    ``x' = R @ x``. Batches are ``(..., 3, 3)``.
Poses
    A particle with pose ``R`` is the projection along ``z`` of the rotated volume
    ``V_R(x) = V(R^T x)``: the density at ``y`` in the volume's frame appears at ``R y``. By the
    Fourier-slice theorem its 2D transform at ``(kx, ky)`` is the volume's 3D transform at
    ``R^T (kx, ky, 0)`` (see :mod:`pytest_cryobench.kernels.projection`); the view axis ``z`` of
    the image looks along ``d = R^T z`` in the volume's frame.
Axis-angle (cryoSPARC's ``alignments3D/pose``)
    The rotation vector ``w = theta * a`` (radians, unit axis ``a``) of ``R`` in this convention:
    ``R = exp([w]_x)`` (Rodrigues), a right-handed rotation by ``theta`` about ``a``, as in
    ``scipy.spatial.transform.Rotation.from_rotvec(w).as_matrix()``. This is the convention of the
    data this package generates (cryoDRGN's ``parse_pose_csparc`` transposes after the expmap
    because its own matrices are the inverse ones).
Symmetry
    A volume with point group ``{S_k}`` satisfies ``V(S_k y) = V(y)``. Then ``V_{R S_k}(x) =
    V(S_k^T R^T x) = V(R^T x)``: poses ``R`` and ``R @ S_k`` give identical projections, which is
    what :func:`symmetric_angle_deg` factors out. ``Cn`` is the n-fold about ``z``; ``Dn`` adds the
    two-fold about ``x`` (RELION's ``src/symmetries.cpp``).

Everything here is host-side NumPy (float64); callers move matrices to the device with
``xp.asarray``.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import numpy
from scipy.spatial.transform import Rotation

GROUP_TOLERANCE = 1e-6
"""Two group elements are the same when no matrix entry differs by more than this."""


def _check_last(a: numpy.ndarray, shape: tuple[int, ...], name: str) -> None:
    if a.ndim < len(shape) or a.shape[a.ndim - len(shape):] != shape:
        dims = ", ".join(str(s) for s in shape)
        raise ValueError(f"{name} must have shape (..., {dims}); got {a.shape}")


# -- conversions --------------------------------------------------------------------------------

def rotvec_to_matrix(rotvec: Any) -> numpy.ndarray:
    """Rotation matrices from axis-angle vectors.

    Parameters
    ----------
    rotvec : array_like, shape (..., 3)
        ``theta * axis``, radians (cryoSPARC's ``alignments3D/pose``).

    Returns
    -------
    numpy.ndarray of float64, shape (..., 3, 3)
        ``R`` acting on column vectors (module conventions).
    """
    w = numpy.asarray(rotvec, dtype=numpy.float64)
    _check_last(w, (3,), "rotvec")
    lead = w.shape[:-1]
    return Rotation.from_rotvec(w.reshape(-1, 3)).as_matrix().reshape(*lead, 3, 3)


def matrix_to_rotvec(matrices: Any) -> numpy.ndarray:
    """Axis-angle vectors of rotation matrices (the inverse of :func:`rotvec_to_matrix`).

    Parameters
    ----------
    matrices : array_like, shape (..., 3, 3)
        Proper rotations (a slightly non-orthogonal input is projected onto the nearest rotation).

    Returns
    -------
    numpy.ndarray of float64, shape (..., 3)
        ``theta * axis`` with ``0 <= theta <= pi``, radians.
    """
    r = numpy.asarray(matrices, dtype=numpy.float64)
    _check_last(r, (3, 3), "matrices")
    lead = r.shape[:-2]
    return Rotation.from_matrix(r.reshape(-1, 3, 3)).as_rotvec().reshape(*lead, 3)


def rot_z(angle_rad: Any) -> numpy.ndarray:
    """Rotations by ``angle_rad`` (radians, right-handed) about ``z``, shape (..., 3, 3)."""
    a = numpy.asarray(angle_rad, dtype=numpy.float64)
    c, s = numpy.cos(a), numpy.sin(a)
    out = numpy.zeros(a.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 1] = c, -s
    out[..., 1, 0], out[..., 1, 1] = s, c
    out[..., 2, 2] = 1.0
    return out


def rot_x(angle_rad: Any) -> numpy.ndarray:
    """Rotations by ``angle_rad`` (radians, right-handed) about ``x``, shape (..., 3, 3)."""
    a = numpy.asarray(angle_rad, dtype=numpy.float64)
    c, s = numpy.cos(a), numpy.sin(a)
    out = numpy.zeros(a.shape + (3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1], out[..., 1, 2] = c, -s
    out[..., 2, 1], out[..., 2, 2] = s, c
    return out


# -- the pose grid ------------------------------------------------------------------------------

class RotationGrid(NamedTuple):
    """A deterministic grid of poses (see :func:`rotation_grid`).

    Attributes
    ----------
    matrices : numpy.ndarray of float64, shape (n_directions * n_psi, 3, 3)
        ``R = Rz(psi) @ A(d)``, direction-major: index ``i_dir * n_psi + i_psi``.
    step_deg : float
        The grid's angular step, degrees: ``max(psi_step_deg, degrees(sqrt(4 pi / n_directions)))``.
    directions : numpy.ndarray of float64, shape (n_directions, 3)
        Unit viewing directions ``d = R^T z`` (Fibonacci lattice), ``(x, y, z)``.
    psi_deg : numpy.ndarray of float64, shape (n_psi,)
        In-plane angles, ``arange(0, 360, psi_step_deg)``.
    """

    matrices: numpy.ndarray
    step_deg: float
    directions: numpy.ndarray
    psi_deg: numpy.ndarray


def fibonacci_directions(n: int) -> numpy.ndarray:
    """``n`` near-uniform unit vectors on the sphere (Fibonacci lattice), shape (n, 3), float64.

    ``z_i = 1 - (2 i + 1) / n`` and azimuth ``i * pi * (3 - sqrt(5))`` (the golden angle), so
    no point sits on a pole and all are distinct.
    """
    if n < 1:
        raise ValueError(f"need at least one direction, got {n}")
    i = numpy.arange(n, dtype=numpy.float64)
    z = 1.0 - (2.0 * i + 1.0) / n
    rho = numpy.sqrt(numpy.clip(1.0 - z * z, 0.0, None))
    phi = i * (math.pi * (3.0 - math.sqrt(5.0)))
    return numpy.stack([rho * numpy.cos(phi), rho * numpy.sin(phi), z], axis=-1)


def align_to_z(directions: Any) -> numpy.ndarray:
    """``A(d)``: the rotation taking each unit vector ``d`` to ``+z`` along the great circle.

    Parameters
    ----------
    directions : array_like, shape (..., 3)
        Unit vectors ``(x, y, z)`` (normalised here).

    Returns
    -------
    numpy.ndarray of float64, shape (..., 3, 3)
        The rotation about the axis ``d x z / |d x z|`` by ``angle(d, z)``; the identity for
        ``d = +z`` and the half turn about ``x`` for ``d = -z`` (where the great circle is not
        unique), so ``A(d) @ d = z`` everywhere.
    """
    d = numpy.asarray(directions, dtype=numpy.float64)
    _check_last(d, (3,), "directions")
    d = d / numpy.linalg.norm(d, axis=-1, keepdims=True)
    cross = numpy.stack([d[..., 1], -d[..., 0], numpy.zeros_like(d[..., 0])], axis=-1)  # d x z
    sin = numpy.linalg.norm(cross, axis=-1)
    angle = numpy.arctan2(sin, d[..., 2])
    degenerate = sin < 1e-12
    axis = numpy.where(degenerate[..., None], numpy.array([1.0, 0.0, 0.0]),
                       cross / numpy.where(degenerate, 1.0, sin)[..., None])
    angle = numpy.where(degenerate, numpy.where(d[..., 2] > 0, 0.0, math.pi), angle)
    return rotvec_to_matrix(axis * angle[..., None])


def rotation_grid(n_directions: int, psi_step_deg: float) -> RotationGrid:
    """Poses from ``n_directions`` viewing directions times in-plane angles.

    Parameters
    ----------
    n_directions : int
        Viewing directions ``d`` over the whole sphere, from a Fibonacci lattice (deterministic).
    psi_step_deg : float
        In-plane step, degrees: ``psi`` runs over ``arange(0, 360, psi_step_deg)``.

    Returns
    -------
    RotationGrid
        ``R = Rz(psi) @ A(d)`` with ``A(d)`` from :func:`align_to_z`, so ``R^T z = d``: the pose
        views the volume along ``d`` with in-plane angle ``psi``. Direction-major order
        (``i_dir * n_psi + i_psi``).
    """
    if int(n_directions) != n_directions or n_directions < 1:
        raise ValueError(f"n_directions must be a positive integer, got {n_directions!r}")
    if not 0 < psi_step_deg <= 360:
        raise ValueError(f"psi_step_deg must lie in (0, 360], got {psi_step_deg!r}")
    directions = fibonacci_directions(int(n_directions))
    psi_deg = numpy.arange(0.0, 360.0, float(psi_step_deg))
    a = align_to_z(directions)                                   # (D, 3, 3)
    rz = rot_z(numpy.radians(psi_deg))                            # (P, 3, 3)
    matrices = numpy.matmul(rz[None, :, :, :], a[:, None, :, :]).reshape(-1, 3, 3)
    spacing = math.degrees(math.sqrt(4.0 * math.pi / n_directions))
    return RotationGrid(matrices, max(float(psi_step_deg), spacing), directions, psi_deg)


# -- angles -------------------------------------------------------------------------------------

def geodesic_angle_deg(r1: Any, r2: Any) -> numpy.ndarray:
    """Angle of the relative rotation ``R1^T R2``, degrees, in [0, 180].

    Parameters
    ----------
    r1, r2 : array_like, shape (..., 3, 3)
        Rotations; the leading dimensions broadcast.

    Returns
    -------
    numpy.ndarray of float64, shape (...)
        ``arccos((trace(R1^T R2) - 1) / 2)`` with the argument clipped to [-1, 1], evaluated as
        ``arctan2(|M - M^T|_F / (2 sqrt 2), (trace M - 1) / 2)`` for ``M = R1^T R2``, which equals
        it for rotations and keeps full precision near 0 (where the arccos loses half the digits).
    """
    a = numpy.asarray(r1, dtype=numpy.float64)
    b = numpy.asarray(r2, dtype=numpy.float64)
    _check_last(a, (3, 3), "r1")
    _check_last(b, (3, 3), "r2")
    m = numpy.matmul(numpy.swapaxes(a, -1, -2), b)
    cos = numpy.clip((numpy.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    sin = numpy.linalg.norm(m - numpy.swapaxes(m, -1, -2), axis=(-2, -1)) / (2.0 * math.sqrt(2.0))
    return numpy.degrees(numpy.arctan2(numpy.clip(sin, 0.0, 1.0), cos))


# -- symmetry -----------------------------------------------------------------------------------

_GROUP_NAME = re.compile(r"^\s*([CcDd])\s*(-?\d+)\s*$")


def _close(generators: list[numpy.ndarray]) -> list[numpy.ndarray]:
    """The group generated by ``generators``: multiply until no new element (tolerance compare)."""
    elements = [numpy.eye(3)]
    frontier = [numpy.eye(3)]
    while frontier:
        fresh = []
        for e in frontier:
            for g in generators:
                candidate = g @ e
                known = numpy.stack(elements)
                if not (numpy.abs(known - candidate).max(axis=(1, 2)) <= GROUP_TOLERANCE).any():
                    elements.append(candidate)
                    fresh.append(candidate)
        frontier = fresh
    return elements


def _group_order_key(s: numpy.ndarray) -> tuple[int, float]:
    """Sort key: rotations about ``z`` by angle in [0, 2 pi), then half turns by axis azimuth."""
    if s[2, 2] > 0:  # fixes z: Rz(alpha)
        return 0, float(numpy.mod(numpy.arctan2(s[1, 0], s[0, 0]), 2 * math.pi))
    # a half turn about a horizontal axis at azimuth beta: [[cos 2b, sin 2b], [sin 2b, -cos 2b]]
    return 1, float(numpy.mod(numpy.arctan2(s[1, 0], s[0, 0]), 2 * math.pi))


def symmetry_group(name: str) -> numpy.ndarray:
    """The rotations of a cyclic or dihedral point group (RELION's axes).

    Parameters
    ----------
    name : str
        ``"C1"`` (identity only), ``"Cn"`` (n-fold about ``z``) or ``"Dn"`` (n-fold about ``z``
        and a two-fold about ``x``), ``n >= 1``; case-insensitive.

    Returns
    -------
    numpy.ndarray of float64, shape (G, 3, 3)
        The closure of the generators under multiplication (``G = n`` for ``Cn``, ``2 n`` for
        ``Dn``), rounded to the exact entries where they are 0 or +-1. Order: the identity, then
        the rotations about ``z`` by increasing angle ``2 pi k / n``, then (``Dn``) the half turns
        about horizontal axes by increasing azimuth of the axis, starting with ``x``.

    Raises
    ------
    ValueError
        An unknown name (only ``Cn`` and ``Dn`` are supported) or ``n < 1``.
    """
    match = _GROUP_NAME.match(str(name))
    if match is None:
        raise ValueError(f"unknown symmetry group {name!r}: expected 'Cn' or 'Dn' with an integer n >= 1 "
                         "(e.g. 'C1', 'C4', 'D7')")
    kind, order = match.group(1).upper(), int(match.group(2))
    if order < 1:
        raise ValueError(f"symmetry group {name!r}: the order n must be >= 1, got {order}")
    generators = [rot_z(2 * math.pi / order)]
    if kind == "D":
        generators.append(rot_x(math.pi))
    elements = sorted(_close(generators), key=_group_order_key)
    group = numpy.stack(elements)
    snapped = numpy.rint(group)
    near = numpy.abs(group - snapped) < 1e-12
    return numpy.where(near, snapped, group) + 0.0  # + 0.0 turns -0.0 into 0.0


def symmetric_angle_deg(r_found: Any, r_true: Any, group: Any) -> numpy.ndarray:
    """The pose error up to symmetry: ``min_k angle(R_found, R_true @ S_k)``, degrees.

    Parameters
    ----------
    r_found, r_true : array_like, shape (N, 3, 3)
        Estimated and true poses.
    group : array_like, shape (G, 3, 3)
        The volume's point group (:func:`symmetry_group`); poses ``R`` and ``R @ S_k`` give the
        same projection of a symmetric volume (module notes).

    Returns
    -------
    numpy.ndarray of float64, shape (N,)
    """
    found = numpy.asarray(r_found, dtype=numpy.float64)
    true = numpy.asarray(r_true, dtype=numpy.float64)
    sym = numpy.asarray(group, dtype=numpy.float64)
    for a, name in ((found, "r_found"), (true, "r_true"), (sym, "group")):
        if a.ndim != 3 or a.shape[1:] != (3, 3):
            raise ValueError(f"{name} must have shape (N, 3, 3); got {a.shape}")
    if found.shape != true.shape:
        raise ValueError(f"r_found and r_true differ in shape: {found.shape} vs {true.shape}")
    equivalent = numpy.matmul(true[:, None], sym[None])           # (N, G, 3, 3)
    return geodesic_angle_deg(found[:, None], equivalent).min(axis=1)
