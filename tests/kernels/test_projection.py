"""Fourier-slice projection and back-projection, checked against physics rather than against the code.

Known answers used below:

* identity pose, no gridding correction: the central slice samples the padded grid on its nodes, so
  it must equal ``rfft2(ifftshift(vol.sum(axis=0)))`` to float32 rounding;
* a sum of 3D Gaussians projects, at pose ``R`` (``V_R(x) = V(R^T x)``), to the sum of 2D Gaussians
  of amplitude ``a sqrt(2 pi) sigma`` centred on the ``(x, y)`` of the rotated centres ``R c``; with
  ``sigma >= 2`` px the sampled volume is band-limited to rounding, so the remaining difference is
  the interpolation error of the slice (the thresholds are those of ``docs/design.md``, projection: trilinear, pad 2,
  gridding < 3 %; Keys cubic, pad 2 < 0.5 %);
* quarter turns permute voxels exactly: at such a pose every sample lands on a grid node, so the
  projection equals the projection of the voxel-permuted volume to rounding;
* back-projecting noise-free slices at about ``3 n^2`` random poses with the true poses gives the
  volume back (FSC > 0.9 up to ``0.8 r_max``, a few percent in real space).

Each convention test fails when ``R`` is used instead of ``R^T`` (shown explicitly below).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pytest_cryobench.kernels import projection as P
from pytest_cryobench.kernels import rotations as Rm
from pytest_cryobench.kernels.fsc import fsc_maps


def blob_volume(n: int, count: int = 20, sigma=(2.0, 3.0), radius_frac: float = 0.2, seed: int = 0):
    """``count`` 3D Gaussians with centres in the ball of radius ``radius_frac * n`` about voxel n // 2.

    Returns the float32 volume ``(z, y, x)`` and the parameters (centres ``(x, y, z)``, sigmas,
    amplitudes).
    """
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal((count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    centres = direction * radius_frac * n * rng.uniform(0, 1, (count, 1)) ** (1 / 3)
    sigmas = rng.uniform(*sigma, count)
    amplitudes = rng.uniform(0.5, 1.5, count)
    x = np.arange(n, dtype=np.float64) - n // 2
    vol = np.zeros((n, n, n))
    for c, s, a in zip(centres, sigmas, amplitudes, strict=True):  # a loop over 20 blobs, each a whole-volume expression
        g = [np.exp(-(x - ci) ** 2 / (2 * s * s)) for ci in c]  # separable: x, y, z profiles
        vol += a * g[2][:, None, None] * g[1][None, :, None] * g[0][None, None, :]
    return vol.astype(np.float32), (centres, sigmas, amplitudes)


def analytic_projections(n: int, params, rotations: np.ndarray) -> np.ndarray:
    """The exact line integrals along z of ``V_R`` for the Gaussian blobs, (R, n, n) float64."""
    centres, sigmas, amplitudes = params
    x = np.arange(n, dtype=np.float64) - n // 2
    out = np.zeros((len(rotations), n, n))
    for i, rot in enumerate(rotations):
        moved = centres @ rot.T  # R c
        for c, s, a in zip(moved, sigmas, amplitudes, strict=True):
            gx, gy = np.exp(-(x - c[0]) ** 2 / (2 * s * s)), np.exp(-(x - c[1]) ** 2 / (2 * s * s))
            out[i] += a * math.sqrt(2 * math.pi) * s * gy[:, None] * gx[None, :]
    return out


def rel_l2(a, b) -> float:
    a = np.asarray(a)
    a = a.astype(np.complex128) if np.iscomplexobj(a) else a.astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def permuted_volume(vol: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """``V_R(x) = V(R^T x)`` for a signed permutation ``R``, exactly, by moving voxels (periodic)."""
    n = vol.shape[0]
    idx = np.arange(n) - n // 2
    z, y, x = np.meshgrid(idx, idx, idx, indexing="ij")
    pos = np.stack([x, y, z], axis=-1)                      # (x, y, z) of each output voxel
    src = (pos @ np.rint(rot)).astype(np.int64)             # (R^T x)_j = sum_i R_ij x_i
    src = (src + n // 2) % n
    return vol[src[..., 2], src[..., 1], src[..., 0]]


def projection_transform(image_stack: np.ndarray, coords: P.FourierCoords) -> np.ndarray:
    """``rfft2(ifftshift(image))`` at ``coords``, (R, K) complex128."""
    ft = np.fft.rfft2(np.fft.ifftshift(image_stack.astype(np.float64), axes=(-2, -1)))
    return ft.reshape(ft.shape[0], -1)[:, coords.flat]


@pytest.fixture(scope="module")
def blobs48():
    return blob_volume(48)


# -- coordinates --------------------------------------------------------------------------------

def test_fourier_coords_half_plane():
    n, r_max = 32, 11.5
    c = P.fourier_coords(n, r_max)
    k = c.flat.size
    assert c.ky.shape == c.kx.shape == c.weight.shape == c.radius.shape == (k,) and c.n == n
    assert c.flat.dtype == np.int64 and c.weight.dtype == np.float32 and c.radius.dtype == np.float32
    assert (c.kx >= 0).all() and (np.diff(c.flat) > 0).all()
    np.testing.assert_array_equal(c.flat, (c.ky % n) * (n // 2 + 1) + c.kx)
    np.testing.assert_allclose(c.radius, np.hypot(c.kx, c.ky), rtol=1e-6)
    assert c.radius.max() <= r_max
    np.testing.assert_array_equal(c.weight, np.where(c.kx == 0, 1, 2))
    # every lattice point of the full disc is a coefficient or the mate of one
    full = [(kx, ky) for kx in range(-n // 2, n // 2) for ky in range(-n // 2, n // 2) if kx * kx + ky * ky <= r_max ** 2]
    assert c.weight.sum() == len(full)
    # the weighted half-plane sum of |F|^2 equals the full-plane sum over the disc
    img = np.random.default_rng(0).standard_normal((n, n))
    half = np.fft.rfft2(img).ravel()[c.flat]
    f = np.fft.fft2(img)
    kk = np.fft.fftfreq(n, 1 / n)
    disc = kk[:, None] ** 2 + kk[None, :] ** 2 <= r_max ** 2
    np.testing.assert_allclose((c.weight * np.abs(half) ** 2).sum(), (np.abs(f) ** 2)[disc].sum(), rtol=1e-10)


@pytest.mark.parametrize("n, r_max, message", [(31, 5, "even"), (32, 16, r"r_max must lie in \[0, n/2\)"),
                                               (32, -1, "r_max"), (0, 1, "even")])
def test_fourier_coords_rejects(n, r_max, message):
    with pytest.raises(ValueError, match=message):
        P.fourier_coords(n, r_max)


def test_kernel_transforms():
    f = np.linspace(0, 0.5, 11)
    np.testing.assert_allclose(P.kernel_transform("linear", f), np.sinc(f) ** 2)
    d = np.linspace(-2, 2, 400001)
    integrand = P.keys_kernel(d)[None] * np.cos(2 * np.pi * f[:, None] * d[None])
    brute = (integrand[:, 1:] + integrand[:, :-1]).sum(axis=1) * (d[1] - d[0]) / 2  # trapezoid rule
    np.testing.assert_allclose(P.kernel_transform("cubic", f), brute, atol=1e-9)
    assert P.kernel_transform("cubic", 0.0) == pytest.approx(1.0, abs=1e-14)
    # the tap weights of both kernels sum to 1 and reproduce the kernel
    t = np.linspace(0, 1, 7, endpoint=False)
    for kind in P.INTERPOLATIONS:
        floor, w, first = P._tap_weights(t + 3.0, kind, np)
        np.testing.assert_array_equal(floor, 3)
        np.testing.assert_allclose(sum(w), 1.0, atol=1e-12)
    np.testing.assert_allclose(w, [P.keys_kernel(t - j) for j in (-1, 0, 1, 2)], atol=1e-12)


# -- projection ---------------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", P.INTERPOLATIONS)
def test_identity_pose_is_the_sum_along_z(blobs48, interpolation):
    vol = blobs48[0] + np.random.default_rng(1).standard_normal(blobs48[0].shape).astype(np.float32)
    coords = P.fourier_coords(48, 23.5)
    prepared = P.prepare_volume(vol, pad=2, interpolation=interpolation, gridding=False)
    assert prepared.grid.shape == (96, 96, 96) and prepared.grid.dtype == np.complex64
    got = P.extract_slices(prepared, np.eye(3)[None], coords)
    assert got.shape == (1, coords.flat.size) and got.dtype == np.complex64
    expected = projection_transform(vol.astype(np.float64).sum(axis=0)[None], coords)
    err = rel_l2(got, expected)
    assert err < 1e-5, f"identity slice vs rfft2 of the z-sum: relative L2 {err:.2e}"


def test_projection_matches_analytic_gaussians(blobs48):
    vol, params = blobs48
    n = vol.shape[0]
    rots = Rotation.random(4, random_state=7).as_matrix()
    truth = analytic_projections(n, params, rots)
    err = {}
    for interpolation, gridding in [("linear", False), ("linear", True), ("cubic", True)]:
        prepared = P.prepare_volume(vol, pad=2, interpolation=interpolation, gridding=gridding)
        err[interpolation, gridding] = rel_l2(P.project_images(prepared, rots), truth)
    report = ", ".join(f"{k[0]}{' + gridding' if k[1] else ''}: {v:.3%}" for k, v in err.items())
    assert err["linear", True] < 0.03, report
    assert err["cubic", True] < 0.005, report
    assert err["cubic", True] < err["linear", True] < err["linear", False], report


def test_swapped_convention_fails_against_the_analytic_projection(blobs48):
    vol, params = blobs48
    rots = Rotation.random(4, random_state=7).as_matrix()
    truth = analytic_projections(vol.shape[0], params, rots)
    prepared = P.prepare_volume(vol, pad=2, interpolation="cubic")
    right = rel_l2(P.project_images(prepared, rots), truth)
    wrong = rel_l2(P.project_images(prepared, np.swapaxes(rots, 1, 2)), truth)  # R instead of R^T
    assert right < 0.005 and wrong > 0.3, f"right convention {right:.3%}, swapped {wrong:.1%}"


QUARTER_TURNS = {
    "z90": Rm.rot_z(math.pi / 2),
    "x90": Rm.rot_x(math.pi / 2),
    "y90": Rm.rotvec_to_matrix([0, math.pi / 2, 0]),
    "composite": Rm.rot_z(math.pi / 2) @ Rm.rot_x(-math.pi / 2) @ Rm.rotvec_to_matrix([0, math.pi, 0]),
}


@pytest.mark.parametrize("name", QUARTER_TURNS)
def test_quarter_turn_poses_permute_voxels(blobs48, name):
    vol = blobs48[0]
    rot = np.rint(QUARTER_TURNS[name])
    coords = P.fourier_coords(48, 23.5)
    prepared = P.prepare_volume(vol, pad=2, interpolation="linear", gridding=False)
    expected = projection_transform(permuted_volume(vol, rot).astype(np.float64).sum(axis=0)[None], coords)
    err = rel_l2(P.extract_slices(prepared, rot[None], coords), expected)
    assert err < 1e-5, f"{name}: slice vs the permuted volume's projection, relative L2 {err:.2e}"
    wrong = rel_l2(P.extract_slices(prepared, rot.T[None], coords), expected)  # none of them is symmetric
    assert wrong > 0.3, f"{name}: R instead of R^T still matches ({wrong:.2e})"


def test_quarter_turn_about_z_rotates_the_image(blobs48):
    vol = blobs48[0]
    n = vol.shape[0]
    prepared = P.prepare_volume(vol, pad=2, interpolation="cubic", gridding=False)
    rz = Rm.rot_z(math.pi / 2)
    flat, turned, turned_back = P.project_images(prepared, np.stack([np.eye(3), rz, rz.T]))
    # V_R(x) = V(R^T x): the image at (x', y') shows the old image at R^T (x', y') = (y', -x')
    iy, ix = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    expected = flat[(n - ix) % n, iy]
    err = rel_l2(turned, expected)
    assert err < 1e-4, f"quarter turn about z vs the turned image: relative L2 {err:.2e}"
    assert rel_l2(turned_back, expected) > 0.3  # the other sense of rotation
    # and the identity projection is the volume summed along z (band-limited blobs)
    assert rel_l2(flat, vol.astype(np.float64).sum(axis=0)) < 1e-4


def test_extraction_is_chunk_invariant_and_zero_outside_the_grid(blobs48):
    vol = blobs48[0]
    rots = Rotation.random(7, random_state=3).as_matrix()
    coords = P.fourier_coords(48, 23.99)  # reaches the grid's edge: taps outside count as 0
    for interpolation in P.INTERPOLATIONS:
        prepared = P.prepare_volume(vol, interpolation=interpolation)
        whole = P.extract_slices(prepared, rots, coords)
        pieces = P.extract_slices(prepared, rots, coords, chunk_bytes=1)
        np.testing.assert_array_equal(whole, pieces)
        assert np.isfinite(whole).all()
    assert P.extract_slices(prepared, np.zeros((0, 3, 3)), coords).shape == (0, coords.flat.size)


# -- back-projection ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reconstruction():
    """n = 32, 3 n^2 noise-free cubic slices of narrow blobs (signal up to Nyquist) at random poses."""
    n = 32
    vol, _ = blob_volume(n, sigma=(1.0, 1.5), seed=2)
    r_max = n / 2 - 1
    coords = P.fourier_coords(n, r_max)
    rots = Rotation.random(3 * n * n, random_state=11).as_matrix()
    slices = P.extract_slices(P.prepare_volume(vol, pad=2, interpolation="cubic"), rots, coords)
    bp = P.Backprojector(n, 2, r_max, np)
    bp.insert(slices, np.ones(slices.shape, np.float32), rots, coords)
    return vol, coords, rots, slices, bp


def test_reconstruction_from_true_poses(reconstruction):
    vol, coords, rots, slices, bp = reconstruction
    r_max = 15
    assert bp.n_inserted == len(rots)
    rec = bp.reconstruct()
    assert rec.shape == vol.shape and rec.dtype == np.float32
    curve = np.asarray(fsc_maps(rec, vol))
    last = int(0.8 * r_max)
    assert curve[1:last + 1].min() > 0.9, f"FSC up to shell {last}: {np.round(curve[:last + 1], 3)}"
    # real space, without the regulariser's damping (1e-3 of the origin's weight, 3072, is about a
    # quarter of the weight of the outer shells here): a few percent, the right overall scale
    sharp = bp.reconstruct(regulariser=1e-6)
    err, scale = rel_l2(sharp, vol), float((sharp * vol).sum() / (vol * vol).sum())
    assert err < 0.05 and 0.97 < scale < 1.03, f"real-space relative L2 {err:.2%}, least-squares scale {scale:.3f}"
    assert err < rel_l2(bp.reconstruct(regulariser=1e-6, gridding=False), vol)  # the gridding correction helps
    assert rel_l2(rec, vol) < 0.1


def test_reconstruction_with_swapped_convention_fails(reconstruction):
    vol, coords, rots, slices, _ = reconstruction
    bp = P.Backprojector(32, 2, 15, np)
    bp.insert(slices, None, np.swapaxes(rots, 1, 2), coords)  # R instead of R^T
    curve = np.asarray(fsc_maps(bp.reconstruct(), vol))
    assert curve[1:13].min() < 0.7, f"swapped convention still reconstructs: {np.round(curve[:13], 3)}"


def test_accumulated_grid_is_hermitian(reconstruction):
    *_, bp = reconstruction
    data, weight = bp.data, bp.weight
    assert data.shape == weight.shape == (bp.size,) * 3 and data.dtype == np.complex64
    np.testing.assert_array_equal(data[::-1, ::-1, ::-1], np.conj(data))
    np.testing.assert_array_equal(weight[::-1, ::-1, ::-1], weight)
    assert weight.min() >= 0 and weight[bp.half, bp.half, bp.half] > 0


def test_single_identity_insertion_lands_on_nodes():
    """At the identity pose each full-plane coefficient k lands on node pad * k once, its mate at -pad * k."""
    n, pad, r_max = 16, 2, 5.0
    coords = P.fourier_coords(n, r_max)
    image = np.random.default_rng(4).standard_normal((n, n))
    values = np.fft.rfft2(np.fft.ifftshift(image)).ravel()[coords.flat][None]
    bp = P.Backprojector(n, pad, r_max, np, dtype=np.complex128)
    bp.insert(values, None, np.eye(3)[None], coords)
    h = bp.half
    data, weight = bp.data, bp.weight
    iy, ix = h + pad * coords.ky, h + pad * coords.kx
    np.testing.assert_allclose(weight[h, iy, ix], 1.0, atol=1e-12)
    np.testing.assert_allclose(weight[h, 2 * h - iy, 2 * h - ix], 1.0, atol=1e-12)
    assert weight.sum() == pytest.approx(coords.weight.sum())  # nothing else
    np.testing.assert_allclose(data[h, iy, ix], values[0], atol=1e-9)
    np.testing.assert_allclose(data[h, 2 * h - iy, 2 * h - ix], np.conj(values[0]), atol=1e-9)


def test_insert_weights_and_chunks(reconstruction):
    vol, coords, rots, slices, _ = reconstruction
    sub, vals = rots[:40], slices[:40]
    ctf2 = np.random.default_rng(5).uniform(0.1, 1, vals.shape).astype(np.float32)
    w = np.random.default_rng(6).uniform(0, 1, 40)
    a = P.Backprojector(32, 2, 15, np, dtype=np.complex128)
    a.insert(vals * ctf2, ctf2, sub, coords, weights=w)
    b = P.Backprojector(32, 2, 15, np, dtype=np.complex128, chunk_bytes=1)
    for i in range(40):  # per image, weights folded into the values
        b.insert(vals[i:i + 1] * ctf2[i] * w[i], ctf2[i:i + 1] * w[i], sub[i:i + 1], coords)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(a.weight, b.weight, rtol=1e-9, atol=1e-9)


# -- bad input ----------------------------------------------------------------------------------

def test_bad_input_is_rejected():
    vol = np.zeros((16, 16, 16), np.float32)
    with pytest.raises(ValueError, match="cube"):
        P.prepare_volume(np.zeros((16, 16, 8), np.float32))
    with pytest.raises(ValueError, match="even"):
        P.prepare_volume(np.zeros((15, 15, 15), np.float32))
    with pytest.raises(ValueError, match="interpolation"):
        P.prepare_volume(vol, interpolation="quintic")
    with pytest.raises(ValueError, match="pad"):
        P.prepare_volume(vol, pad=0)
    prepared = P.prepare_volume(vol)
    coords = P.fourier_coords(16, 7)
    for bad in (np.eye(3), np.zeros((4, 3, 4)), np.zeros((4, 9))):
        with pytest.raises(ValueError, match=r"rotations must have shape \(R, 3, 3\)"):
            P.extract_slices(prepared, bad, coords)
    with pytest.raises(ValueError, match="coords are for n = 32"):
        P.extract_slices(prepared, np.eye(3)[None], P.fourier_coords(32, 7))
    with pytest.raises(ValueError, match="r_max"):
        P.Backprojector(16, 2, 8.0)
    with pytest.raises(ValueError, match="even"):
        P.Backprojector(15, 2, 5.0)
    bp = P.Backprojector(16, 2, 7.0)
    values = np.zeros((3, coords.flat.size), np.complex64)
    with pytest.raises(ValueError, match="expected 3 rotations"):
        bp.insert(values, None, np.zeros((2, 3, 3)), coords)
    with pytest.raises(ValueError, match=r"rotations must have shape \(R, 3, 3\)"):
        bp.insert(values, None, np.zeros((3, 3)), coords)
    with pytest.raises(ValueError, match="values must have shape"):
        bp.insert(values[:, :-1], None, np.zeros((3, 3, 3)), coords)
    with pytest.raises(ValueError, match="ctf2 must have the shape"):
        bp.insert(values, np.ones((3, 2)), np.zeros((3, 3, 3)), coords)
    with pytest.raises(ValueError, match="weights must have shape"):
        bp.insert(values, None, np.zeros((3, 3, 3)), coords, weights=np.ones(2))
    with pytest.raises(ValueError, match="beyond r_max"):
        P.Backprojector(16, 2, 5.0).insert(values, None, np.zeros((3, 3, 3)), coords)
