"""Rotations: axis-angle conversion against SciPy, the pose grid, geodesic angles and the C/D
point groups (RELION's axes: n-fold about z, two-fold about x)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pytest_cryobench.kernels import rotations as R


def random_rotations(count: int, seed: int) -> np.ndarray:
    return Rotation.random(count, random_state=seed).as_matrix()


def assert_proper_rotations(m: np.ndarray) -> None:
    eye = np.broadcast_to(np.eye(3), m.shape)
    np.testing.assert_allclose(np.swapaxes(m, -1, -2) @ m, eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


# -- conversions --------------------------------------------------------------------------------

def test_rotvec_round_trip_and_scipy_agreement():
    rng = np.random.default_rng(0)
    axis = rng.standard_normal((4, 5, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    rotvec = axis * rng.uniform(0, math.pi * 0.999, (4, 5, 1))
    m = R.rotvec_to_matrix(rotvec)
    assert m.shape == (4, 5, 3, 3) and m.dtype == np.float64
    assert_proper_rotations(m)
    np.testing.assert_allclose(m.reshape(-1, 3, 3), Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix(), atol=1e-14)
    np.testing.assert_allclose(R.matrix_to_rotvec(m), rotvec, atol=1e-10)
    # the right-handed convention on column vectors: a quarter turn about z takes x to y
    np.testing.assert_allclose(R.rotvec_to_matrix([0, 0, math.pi / 2]) @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    assert R.rotvec_to_matrix(np.zeros(3)).shape == (3, 3)


def test_conversions_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"rotvec must have shape \(\.\.\., 3\)"):
        R.rotvec_to_matrix(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"matrices must have shape \(\.\.\., 3, 3\)"):
        R.matrix_to_rotvec(np.zeros((4, 3)))


# -- grid ---------------------------------------------------------------------------------------

def test_rotation_grid_size_orthonormality_and_step():
    grid = R.rotation_grid(200, 15.0)
    assert grid.matrices.shape == (200 * 24, 3, 3) and grid.psi_deg.size == 24
    assert_proper_rotations(grid.matrices)
    assert grid.step_deg == pytest.approx(max(15.0, math.degrees(math.sqrt(4 * math.pi / 200))))
    assert R.rotation_grid(20, 5.0).step_deg == pytest.approx(math.degrees(math.sqrt(4 * math.pi / 20)))
    assert R.rotation_grid(100000, 30.0).step_deg == 30.0
    d = grid.directions
    assert d.shape == (200, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-14)
    gaps = np.linalg.norm(d[:, None] - d[None], axis=-1) + 10 * np.eye(200)
    assert gaps.min() > 0.1  # distinct (and near-uniform: the typical spacing is 0.25)
    assert abs(d.mean(axis=0)).max() < 0.02  # the whole sphere


def test_rotation_grid_views_along_its_directions_with_direction_major_order():
    grid = R.rotation_grid(50, 90.0)
    n_psi = 4
    m = grid.matrices.reshape(50, n_psi, 3, 3)
    # R^T z = d for every psi; R = Rz(psi) @ A(d)
    view = np.swapaxes(m, -1, -2) @ np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(view, np.repeat(grid.directions[:, None], n_psi, axis=1), atol=1e-14)
    rel = m[:, 1] @ np.swapaxes(m[:, 0], -1, -2)  # Rz(90)
    np.testing.assert_allclose(rel, np.broadcast_to(R.rot_z(math.pi / 2), rel.shape), atol=1e-14)
    distinct = grid.matrices.reshape(-1, 9)
    assert np.unique(np.round(distinct, 8), axis=0).shape[0] == distinct.shape[0]


def test_align_to_z_is_defined_at_both_poles():
    d = np.array([[0, 0, 1.0], [0, 0, -1.0], [1.0, 0, 0], [0.3, -0.4, -0.866]])
    a = R.align_to_z(d)
    assert_proper_rotations(a)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(a @ d[..., None], np.broadcast_to([[0.0], [0.0], [1.0]], (4, 3, 1)), atol=1e-14)
    np.testing.assert_allclose(a[0], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(a[1], R.rot_x(math.pi), atol=1e-15)


@pytest.mark.parametrize("args", [(0, 10.0), (10, 0.0), (10, -5.0), (10, 400.0), (2.5, 10.0)])
def test_rotation_grid_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        R.rotation_grid(*args)


# -- angles -------------------------------------------------------------------------------------

def test_geodesic_angle_known_values_and_broadcasting():
    a = random_rotations(6, seed=1)
    np.testing.assert_allclose(R.geodesic_angle_deg(a, a), 0.0, atol=1e-6)
    angles = np.array([1e-7, 0.5, 30.0, 90.0, 179.0, 180.0])
    axis = np.array([0.6, 0.0, 0.8])
    b = a @ R.rotvec_to_matrix(np.radians(angles)[:, None] * axis)
    np.testing.assert_allclose(R.geodesic_angle_deg(a, b), angles, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(R.geodesic_angle_deg(b, a), angles, rtol=1e-9, atol=1e-9)
    table = R.geodesic_angle_deg(a[:, None], a[None, :])
    assert table.shape == (6, 6)
    np.testing.assert_allclose(table, table.T, atol=1e-9)
    ref = np.degrees((Rotation.from_matrix(a[:, None].repeat(6, 1).reshape(-1, 3, 3)).inv()
                      * Rotation.from_matrix(a[None].repeat(6, 0).reshape(-1, 3, 3))).magnitude())
    np.testing.assert_allclose(table.ravel(), ref, atol=1e-8)


# -- symmetry -----------------------------------------------------------------------------------

def test_d7_group():
    g = R.symmetry_group("D7")
    assert g.shape == (14, 3, 3)
    assert_proper_rotations(g)
    np.testing.assert_array_equal(g[0], np.eye(3))
    flat = g.reshape(14, 9)
    assert np.min(np.abs(flat[:, None] - flat[None]).max(axis=-1) + 10 * np.eye(14)) > 0.1  # distinct
    # closed under multiplication: every product is an element
    products = (g[:, None] @ g[None]).reshape(-1, 1, 9)
    assert np.abs(products - flat[None]).max(axis=-1).min(axis=1).max() < 1e-9
    traces = np.trace(g, axis1=1, axis2=2)
    assert np.sum(np.isclose(traces, -1.0)) == 7  # the seven two-folds
    for member in (R.rot_z(2 * math.pi / 7), R.rot_x(math.pi)):
        assert np.abs(flat - member.reshape(1, 9)).max(axis=1).min() < 1e-12
    # ordering: rotations about z by increasing angle, then the half turns (x first)
    np.testing.assert_allclose(g[:7], R.rot_z(2 * math.pi * np.arange(7) / 7), atol=1e-12)
    np.testing.assert_allclose(g[7], R.rot_x(math.pi), atol=1e-12)
    # (1/14) sum_k S_k v is invariant under every S_k
    v = np.array([0.3, -1.2, 0.7])
    mean = (g @ v).mean(axis=0)
    np.testing.assert_allclose(g @ mean, np.broadcast_to(mean, (14, 3)), atol=1e-12)


@pytest.mark.parametrize("name, size", [("C1", 1), ("C4", 4), ("D2", 4), ("d1", 2), ("c7", 7), ("D7", 14)])
def test_group_sizes(name, size):
    g = R.symmetry_group(name)
    assert g.shape == (size, 3, 3)
    assert_proper_rotations(g)
    np.testing.assert_array_equal(g[0], np.eye(3))


@pytest.mark.parametrize("name", ["O", "I1", "T", "C0", "D0", "C-2", "Cx", "", "C 4 4"])
def test_unknown_groups_raise(name):
    with pytest.raises(ValueError, match="symmetry group"):
        R.symmetry_group(name)


def test_symmetric_angle_factors_out_the_group():
    g = R.symmetry_group("D7")
    true = random_rotations(14, seed=3)
    equivalent = true @ g                        # R_true @ S_k, one k per pose
    np.testing.assert_allclose(R.symmetric_angle_deg(equivalent, true, g), 0.0, atol=1e-6)
    assert R.geodesic_angle_deg(equivalent[1:], true[1:]).min() > 10  # without the group they differ
    off = equivalent @ R.rot_x(np.radians(2.0))
    np.testing.assert_allclose(R.symmetric_angle_deg(off, true, g), 2.0, atol=1e-9)
    # with C1 it is the plain geodesic angle
    np.testing.assert_allclose(R.symmetric_angle_deg(off, true, R.symmetry_group("C1")),
                               R.geodesic_angle_deg(off, true), atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        R.symmetric_angle_deg(true[0], true[0], g)
