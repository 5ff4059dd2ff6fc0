"""FSC masks: the soft sphere, the threshold masks (loose 25/40 A, tight 6/12 A), their backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_cryobench.kernels import masks


def radius_grid(n: int) -> np.ndarray:
    c = np.arange(n) - n // 2
    return np.sqrt(c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2)


def gaussian_blob(n: int, half_max_radius: float) -> np.ndarray:
    """A Gaussian centred on n // 2 that is exactly half its maximum at ``half_max_radius`` voxels."""
    s2 = half_max_radius ** 2 / (2 * math.log(2))
    return np.exp(-radius_grid(n) ** 2 / (2 * s2)).astype(np.float32)


def raised_cosine(d, d1, d2):
    t = np.clip((np.asarray(d, dtype=np.float64) - d1) / (d2 - d1), 0, 1)
    return 0.5 * (1 + np.cos(np.pi * t))


# -- spherical --------------------------------------------------------------------------------------

def test_spherical_mask_values_along_a_radius():
    n = 80  # R = 40: flat to 34 (0.85 R), 0.5 at 37, 0 from 40
    m = masks.spherical_mask(n)
    assert m.shape == (n, n, n) and m.dtype == np.float32
    c = n // 2
    assert m[c, c, c] == 1.0
    assert m[0, 0, 0] == 0.0 and m[-1, -1, -1] == 0.0  # corners lie beyond R
    line = m[c, c, c:]  # r = 0 .. 39 along +x
    assert np.all(line[:35] == 1.0)
    assert line[37] == pytest.approx(0.5, abs=1e-6)
    assert np.all(np.diff(line) <= 0)  # monotone along a radius
    np.testing.assert_allclose(line, raised_cosine(np.arange(n - c), 34, 40), atol=1e-6)
    assert m[c, c, 0] == 0.0  # r = 40 = R
    # the same along every axis and symmetric about the centre
    np.testing.assert_array_equal(m[c, c + 1:, c], m[c, c, c + 1:])
    np.testing.assert_array_equal(m[c + 1:, c, c], m[c, c, c + 1:])
    np.testing.assert_array_equal(m[c, c, c - 1:0:-1], m[c, c, c + 1:])


def test_spherical_mask_matches_the_formula_everywhere_and_its_options():
    n = 48
    r = radius_grid(n)
    m = masks.spherical_mask(n, inner=0.5, dtype=np.float64)
    assert m.dtype == np.float64
    np.testing.assert_allclose(m, raised_cosine(r, 12, 24), atol=1e-12)
    hard = masks.spherical_mask(n, inner=1.0)
    np.testing.assert_array_equal(hard, (r <= 24).astype(np.float32))
    with pytest.raises(ValueError):
        masks.spherical_mask(n, inner=1.2)
    with pytest.raises(ValueError):
        masks.soft_sphere(n, 5, 3)


# -- threshold masks --------------------------------------------------------------------------------

def test_threshold_of_a_sphere_is_the_sphere():
    n, r0 = 48, math.sqrt(110.5)  # no voxel lies at r0 exactly (r^2 is an integer)
    vol = gaussian_blob(n, r0)
    binary = masks.threshold_binary(vol)
    np.testing.assert_array_equal(binary, radius_grid(n) ** 2 <= r0 ** 2)
    # a hard sphere of value 3 over a background of 1: half max keeps the sphere
    hard = np.where(radius_grid(n) <= 9, 3.0, 1.0).astype(np.float32)
    np.testing.assert_array_equal(masks.threshold_binary(hard), radius_grid(n) <= 9)
    np.testing.assert_array_equal(masks.threshold_binary(hard, 0.2), np.ones_like(hard, dtype=bool))


@pytest.mark.parametrize("kind, apix, n", [("loose", 2.0, 72), ("tight", 1.0, 48)])
def test_threshold_masks_along_an_axis(kind, apix, n):
    """1 within extend_A of the binary region, 0 from soft_A on, the cosine between, monotone."""
    extend, soft = masks.LOOSE_A if kind == "loose" else masks.TIGHT_A
    r0 = math.sqrt(110.5)  # binary radius 10.51 voxels: on the axis the last binary voxel is x = 10
    vol = gaussian_blob(n, r0)
    m = getattr(masks, f"{kind}_mask")(vol, apix)
    assert m.shape == vol.shape and m.dtype == np.float32
    c = n // 2
    line = m[c, c, c:].astype(np.float64)
    d = np.maximum(np.arange(line.size) - 10, 0) * apix  # distance (A) to the nearest binary voxel
    np.testing.assert_allclose(line, raised_cosine(d, extend, soft), atol=2e-6)
    assert np.all(line[d <= extend] == 1.0)
    assert np.all(line[d >= soft] == 0.0)
    assert (d >= soft).any() and ((d > extend) & (d < soft)).sum() >= 3
    assert np.all(np.diff(line) <= 0)
    # everywhere: a function of the distance alone, non-increasing in it
    dist = masks.distance_A(masks.threshold_binary(vol), apix)
    order = np.argsort(dist.ravel(), kind="stable")
    assert np.all(np.diff(m.ravel()[order]) <= 0)
    np.testing.assert_allclose(m, raised_cosine(dist, extend, soft), atol=2e-6)
    assert np.all(m[masks.threshold_binary(vol)] == 1.0)


def test_threshold_mask_generic_and_errors():
    n = 32
    vol = gaussian_blob(n, 5.3)
    m = masks.threshold_mask(vol, 1.5, 3.0, 9.0, threshold_fraction=0.5, dtype=np.float64)
    assert m.dtype == np.float64 and m.min() == 0.0 and m.max() == 1.0
    with pytest.raises(ValueError, match="positive maximum"):
        masks.threshold_mask(-vol, 1.0, 6.0, 12.0)
    with pytest.raises(ValueError):
        masks.threshold_mask(vol, 1.0, 12.0, 6.0)
    with pytest.raises(ValueError, match="empty"):
        masks.distance_A(np.zeros((4, 4, 4), dtype=bool), 1.0)


def test_distance_is_euclidean_in_angstrom():
    binary = np.zeros((9, 9, 9), dtype=bool)
    binary[4, 4, 4] = True
    d = masks.distance_A(binary, 2.5)
    assert d.dtype == np.float32
    np.testing.assert_allclose(d, radius_grid(9) * 2.5, rtol=1e-6)


# -- backends ---------------------------------------------------------------------------------------

def test_masks_stay_on_the_numpy_backend():
    vol = gaussian_blob(32, 5.3)
    for out in (masks.spherical_mask(32), masks.loose_mask(vol, 2.0), masks.tight_mask(vol, 1.0),
                masks.soft_sphere(32, 4, 8), masks.distance_A(vol > 0.5, 1.0)):
        assert type(out) is np.ndarray


def test_masks_cupy_parity(cupy):
    cp = cupy
    vol = gaussian_blob(48, 8.2)
    gpu = cp.asarray(vol)
    np.testing.assert_allclose(masks.spherical_mask(48, xp=cp).get(), masks.spherical_mask(48), atol=1e-6)
    for fn in (masks.loose_mask, masks.tight_mask):
        out = fn(gpu, 1.5)
        assert type(out) is cp.ndarray
        np.testing.assert_allclose(out.get(), fn(vol, 1.5), atol=1e-5)


@pytest.mark.parametrize("centre", [(32, 32, 32), (3, 60, 30), (0, 0, 63)])
def test_cropped_distance_transform_is_exact_up_to_its_limit(centre):
    """The bounding-box transform must equal the full one wherever the distance is <= max_A,
    also for regions touching the box's faces."""
    from pytest_cryobench.kernels.masks import distance_A

    n = 64
    grid = np.indices((n, n, n)).astype(np.float32)
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)))
    rng = np.random.default_rng(0)
    binary = (r < 6) | (rng.random((n, n, n)) < 2e-5)  # a blob plus a few scattered voxels
    full = distance_A(binary, 1.5)
    cropped = distance_A(binary, 1.5, max_A=40.0)
    near = full <= 40.0
    np.testing.assert_array_equal(cropped[near], full[near])
    assert np.all(cropped[~near] > 40.0)
