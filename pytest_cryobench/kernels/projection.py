"""Fourier-slice projection and back-projection (RELION's projector / backprojector, simplified).

Conventions
-----------
Volumes
    Real arrays indexed ``(z, y, x)``, shape ``(n, n, n)``, ``n`` even, with the origin at voxel
    ``n // 2`` on each axis. Vectors are written ``(x, y, z)``: component ``x`` goes with the last
    array axis and ``z`` with the first.
Images
    Real arrays ``(y, x)``, shape ``(n, n)``, origin at pixel ``(n // 2, n // 2)``. Their transform
    is ``xp.fft.rfft2(xp.fft.ifftshift(image))`` (unnormalised), shape ``(n, n // 2 + 1)``: row
    ``ky`` in ``fftfreq`` order (negative ``ky`` wrap to the end), column ``kx = 0 .. n / 2``, so a
    shift of the image by ``t`` pixels multiplies coefficient ``k`` by ``exp(-2 pi i k.t / n)``.
Poses
    A rotation ``R`` acts on column vectors (:mod:`pytest_cryobench.kernels.rotations`). The
    particle with pose ``R`` is the projection along ``z`` of ``V_R(x) = V(R^T x)``; by the
    Fourier-slice theorem its transform at the 2D frequency ``(kx, ky)`` (pixel units) is the
    volume's 3D transform at ``R^T (kx, ky, 0)``.
Padded Fourier grid (:func:`prepare_volume`, :class:`Backprojector`)
    The volume is zero-padded (centred) to ``N = pad * n`` and transformed with
    ``fftshift(fftn(ifftshift(padded)))`` (unnormalised) into a full complex cube whose zero
    frequency sits at index ``N // 2``. Padded frequency ``u = pad * k`` holds the ``n``-grid
    transform at ``k``, so samples at non-integer ``k`` are interpolated on a grid ``pad`` times
    finer than the image's own.
Gridding correction
    Interpolating the transform with a kernel ``h`` (in padded-frequency units) multiplies the
    map in real space by ``H(x / N)``, ``H`` the continuous Fourier transform of ``h`` and ``x``
    the distance from the origin in voxels, separably per axis. Projection divides the volume by
    it beforehand (trilinear: ``H(f) = sinc^2(f)``; Keys cubic: ``H`` by quadrature);
    reconstruction divides the map by the trilinear ``sinc^2`` afterwards.

Every function takes its array module from its inputs (:func:`~pytest_cryobench.kernels.array_api.array_namespace`),
so NumPy and CuPy run the same code; the work is vectorised over poses and coefficients (the only
Python loops run over interpolation taps and over chunks of poses that bound the temporaries).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, bin_sums

INTERPOLATIONS = ("linear", "cubic")
"""Interpolation kernels of :func:`prepare_volume` / :func:`extract_slices`."""

KEYS_A = -0.5
"""The Keys cubic's parameter (Catmull-Rom)."""

CHUNK_BYTES = 256 * 2**20
"""Default budget for the temporaries of one chunk of poses."""

_EXTRACT_BYTES_PER_SAMPLE = 160
"""Rough peak temporaries per (pose, coefficient) of :func:`extract_slices`."""

_INSERT_BYTES_PER_SAMPLE = 240
"""Rough peak temporaries per (image, coefficient) of :meth:`Backprojector.insert` (measured: 228),
besides one float64 bincount result over the accumulation cube."""


# -- coordinates --------------------------------------------------------------------------------

class FourierCoords(NamedTuple):
    """The rfft2 coefficients of an ``n x n`` image within a radius (see :func:`fourier_coords`).

    Attributes
    ----------
    ky, kx : numpy.ndarray of int64, shape (K,)
        Frequencies in pixel units: ``kx >= 0``, ``ky`` signed.
    flat : numpy.ndarray of int64, shape (K,)
        Index into the flattened ``(n, n // 2 + 1)`` rfft2 array: ``(ky mod n) * (n // 2 + 1) + kx``;
        ascending.
    weight : numpy.ndarray of float32, shape (K,)
        1 for ``kx = 0``, 2 otherwise: a half-plane sum weighted by it equals the full-plane sum of
        a Hermitian quantity such as ``Re(a conj b)`` or ``|a|^2``.
    radius : numpy.ndarray of float32, shape (K,)
        ``sqrt(kx^2 + ky^2)``, pixels.
    n : int
        Image edge, pixels.
    """

    ky: numpy.ndarray
    kx: numpy.ndarray
    flat: numpy.ndarray
    weight: numpy.ndarray
    radius: numpy.ndarray
    n: int


def _check_n(n: Any) -> int:
    if int(n) != n or n < 2 or int(n) % 2:
        raise ValueError(f"the box edge n must be an even integer >= 2, got {n!r}")
    return int(n)


def _check_r_max(r_max: Any, n: int) -> float:
    r = float(r_max)
    if not 0 <= r < n / 2:
        raise ValueError(f"r_max must lie in [0, n/2) = [0, {n / 2:g}) pixels (the Nyquist column is "
                         f"excluded); got {r_max!r}")
    return r


def fourier_coords(n: int, r_max: float) -> FourierCoords:
    """The half-plane rfft2 coefficients with ``|k| <= r_max``.

    Parameters
    ----------
    n : int
        Image edge, pixels (even).
    r_max : float
        Radius in pixel units, ``0 <= r_max < n / 2`` (so ``|kx|, |ky| < n / 2``: the Nyquist row
        and column are excluded and every ``-k`` of a ``kx = 0`` coefficient is in the set too).

    Returns
    -------
    FourierCoords
        Host NumPy arrays in ascending ``flat`` order; move them with ``xp.asarray``.
    """
    n = _check_n(n)
    r = _check_r_max(r_max, n)
    ky = numpy.fft.fftfreq(n, d=1.0 / n).round().astype(numpy.int64)   # fftfreq order = flat order
    kx = numpy.arange(n // 2 + 1, dtype=numpy.int64)
    KY, KX = numpy.meshgrid(ky, kx, indexing="ij")
    keep = (KX * KX + KY * KY).astype(numpy.float64) <= r * r
    rows, cols = numpy.nonzero(keep)                                      # row-major: flat ascending
    ky_k, kx_k = ky[rows], kx[cols]
    flat = rows.astype(numpy.int64) * (n // 2 + 1) + cols
    weight = numpy.where(kx_k == 0, 1, 2).astype(numpy.float32)
    radius = numpy.sqrt((kx_k * kx_k + ky_k * ky_k).astype(numpy.float64)).astype(numpy.float32)
    return FourierCoords(ky_k, kx_k, flat, weight, radius, n)


# -- interpolation kernels ----------------------------------------------------------------------

def _keys_inner(d: Any) -> Any:
    """The Keys kernel on ``0 <= d <= 1``."""
    a = KEYS_A
    return ((a + 2) * d - (a + 3)) * d * d + 1


def _keys_outer(d: Any) -> Any:
    """The Keys kernel on ``1 <= d <= 2``."""
    a = KEYS_A
    return a * (((d - 5) * d + 8) * d - 4)


def keys_kernel(d: Any) -> Any:
    """The Keys cubic convolution kernel (``a = -0.5``) at distances ``d`` (any sign), NumPy."""
    d = numpy.abs(numpy.asarray(d, dtype=numpy.float64))
    return numpy.where(d <= 1, _keys_inner(d), numpy.where(d < 2, _keys_outer(d), 0.0))


def kernel_transform(interpolation: str, f: Any) -> numpy.ndarray:
    """Continuous Fourier transform ``H(f)`` of an interpolation kernel (unit sample spacing).

    Parameters
    ----------
    interpolation : {"linear", "cubic"}
        Triangle kernel (``H = sinc^2``) or the Keys cubic (``a = -0.5``, support ``|d| < 2``),
        whose transform ``2 int_0^2 h(d) cos(2 pi f d) dd`` is integrated by Gauss-Legendre
        quadrature on each polynomial piece (exact to rounding: the integrand is smooth there).
    f : array_like
        Frequencies in cycles per sample (for the gridding correction ``x / N``).

    Returns
    -------
    numpy.ndarray of float64, the shape of ``f``
    """
    f = numpy.asarray(f, dtype=numpy.float64)
    if interpolation == "linear":
        return numpy.sinc(f) ** 2
    if interpolation != "cubic":
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    nodes, w = numpy.polynomial.legendre.leggauss(24)
    t = 0.5 * (nodes + 1.0)                                          # on [0, 1]
    pieces = [(t, _keys_inner(t)), (t + 1.0, _keys_outer(t + 1.0))]
    total = numpy.zeros(f.shape)
    for d, h in pieces:
        total = total + numpy.cos(2 * math.pi * f[..., None] * d) @ (0.5 * w * h)
    return 2.0 * total


def _gridding_profile(n: int, big_n: int, interpolation: str) -> numpy.ndarray:
    """``H((i - n // 2) / big_n)`` for ``i = 0 .. n - 1``, float64."""
    x = numpy.arange(n, dtype=numpy.float64) - n // 2
    return kernel_transform(interpolation, x / big_n)


def _separable(profile: numpy.ndarray, xp: ModuleType, dtype: Any) -> Any:
    """The outer product ``p[z] p[y] p[x]`` as an ``(n, n, n)`` array on ``xp``."""
    p = xp.asarray(profile, dtype=dtype)
    return p[:, None, None] * p[None, :, None] * p[None, None, :]


# -- projection ---------------------------------------------------------------------------------

class PreparedVolume(NamedTuple):
    """A volume's padded, gridding-corrected 3D transform (see :func:`prepare_volume`).

    Attributes
    ----------
    grid : complex64 array, shape (pad * n,) * 3, on the volume's backend
        ``fftshift(fftn(ifftshift(padded)))``, axes ``(z, y, x)``, zero frequency at index
        ``pad * n // 2``.
    n : int
        Edge of the original volume, voxels.
    pad : int
        Padding factor.
    interpolation : str
        ``"linear"`` or ``"cubic"``: the kernel :func:`extract_slices` uses.
    gridding : bool
        Whether the gridding pre-correction was applied.
    """

    grid: Any
    n: int
    pad: int
    interpolation: str
    gridding: bool


def _check_volume(volume: Any) -> int:
    if volume.ndim != 3 or not volume.shape[0] == volume.shape[1] == volume.shape[2]:
        raise ValueError(f"the volume must be a cube (n, n, n); got shape {volume.shape}")
    n = int(volume.shape[0])
    if n < 2 or n % 2:
        raise ValueError(f"the volume's edge n must be even, got {n}")
    return n


def _check_pad(pad: Any) -> int:
    if int(pad) != pad or pad < 1:
        raise ValueError(f"pad must be a positive integer, got {pad!r}")
    return int(pad)


def prepare_volume(volume: Any, pad: int = 2, interpolation: str = "linear", gridding: bool = True) -> PreparedVolume:
    """Pad, pre-correct and transform a volume for :func:`extract_slices`.

    Parameters
    ----------
    volume : real array, shape (n, n, n)
        ``(z, y, x)``, ``n`` even, origin at voxel ``n // 2`` (NumPy or CuPy; the grid stays on
        that backend).
    pad : int
        Padding factor: the transform is sampled on a grid ``pad`` times finer than ``1 / n``.
    interpolation : {"linear", "cubic"}
        Trilinear (8 taps) or tricubic Keys (``a = -0.5``, 64 taps).
    gridding : bool
        Divide the volume by the interpolation kernel's transform ``H(x / N)`` along each axis
        (``sinc^2`` for trilinear) before the FFT, which undoes the kernel's real-space apodisation.

    Returns
    -------
    PreparedVolume
        ``grid`` is complex64 of shape ``(N, N, N)``, ``N = pad * n``, about ``8 N^3`` bytes
        (128 MiB at ``n = 128``, ``pad = 2``); the peak during the call is about three times that.
        With ``gridding=False`` the sample at padded index ``N // 2 + pad * k`` is exactly the
        unnormalised ``n``-grid transform of the volume at ``k``.
    """
    xp = array_namespace(volume)
    n = _check_volume(volume)
    pad = _check_pad(pad)
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    big_n = pad * n
    vol = volume.astype(xp.float32, copy=True)
    if gridding:
        vol /= _separable(_gridding_profile(n, big_n, interpolation), xp, xp.float32)
    padded = xp.zeros((big_n,) * 3, dtype=xp.float32)
    o = big_n // 2 - n // 2
    padded[o:o + n, o:o + n, o:o + n] = vol
    del vol
    shifted = xp.fft.ifftshift(padded)
    del padded
    ft = xp.fft.fftn(shifted)
    del shifted
    grid = xp.fft.fftshift(ft).astype(xp.complex64, copy=False)
    return PreparedVolume(grid, n, pad, interpolation, bool(gridding))


def _as_rotations(rotations: Any, xp: ModuleType, count: int | None = None) -> Any:
    """Rotations as an ``(R, 3, 3)`` float32 array on ``xp`` (ValueError for another shape)."""
    shape = tuple(getattr(rotations, "shape", numpy.shape(rotations)))
    if len(shape) != 3 or shape[1:] != (3, 3):
        raise ValueError(f"rotations must have shape (R, 3, 3); got {shape}")
    if count is not None and shape[0] != count:
        raise ValueError(f"expected {count} rotations (one per image), got {shape[0]}")
    return xp.asarray(rotations, dtype=xp.float32)


def _slice_points(rot: Any, kx: Any, ky: Any, offset: float) -> tuple[Any, Any, Any]:
    """``R^T (kx, ky, 0) + offset`` per pose and coefficient: three (C, K) arrays ``(x, y, z)``.

    ``(R^T k)_j = sum_i R_ij k_i`` with ``k_z = 0``; ``kx``, ``ky`` already scaled by ``pad``.
    """
    return tuple(rot[:, 0, j, None] * kx[None, :] + rot[:, 1, j, None] * ky[None, :] + offset for j in range(3))


def _tap_weights(u: Any, interpolation: str, xp: ModuleType) -> tuple[Any, list[Any], int]:
    """Interpolation taps along one axis at (fractional) indices ``u``.

    Returns
    -------
    floor : int64 array, the shape of ``u``
        ``floor(u)``.
    weights : list of float32 arrays
        The weight of tap ``floor + first + j`` for ``j = 0 .. len - 1``.
    first : int
        0 (linear) or -1 (cubic).
    """
    f = xp.floor(u)
    t = u - f
    if interpolation == "linear":
        return f.astype(xp.int64), [1 - t, t], 0
    return f.astype(xp.int64), [_keys_outer(1 + t), _keys_inner(t), _keys_inner(1 - t), _keys_outer(2 - t)], -1


def _valid_taps(floor: Any, weights: list[Any], first: int, size: int, xp: ModuleType) -> list[Any]:
    """Zero the weights of taps outside ``[0, size)`` (samples outside the grid count as 0)."""
    out = []
    for j, w in enumerate(weights):
        idx = floor + (first + j)
        out.append(xp.where((idx >= 0) & (idx < size), w, 0).astype(w.dtype, copy=False))
    return out


def _chunk(budget: int, per_pose: int) -> int:
    return max(1, int(budget) // max(1, per_pose))


def extract_slices(prepared: PreparedVolume, rotations: Any, coords: FourierCoords, *,
                   chunk_bytes: int = CHUNK_BYTES) -> Any:
    """Central slices of a prepared volume: image transforms at the given poses.

    Parameters
    ----------
    prepared : PreparedVolume
        From :func:`prepare_volume`.
    rotations : array, shape (R, 3, 3)
        Poses (NumPy float64 or an array on the grid's backend); used as float32 on the grid's
        backend.
    coords : FourierCoords
        The coefficients to sample (``coords.n`` must equal ``prepared.n``).
    chunk_bytes : int
        Budget for the temporaries of one chunk of poses (about 160 bytes per pose and
        coefficient).

    Returns
    -------
    complex64 array, shape (R, K), on the grid's backend
        Row ``r`` is the grid at padded frequency ``pad * R_r^T (kx, ky, 0)``, interpolated with
        ``prepared.interpolation`` (taps outside the grid count as 0): the rfft2 coefficients
        ``coords.flat`` of the projection of ``V_R`` along ``z``, in the module's image convention.
    """
    grid = prepared.grid
    xp = array_namespace(grid)
    rot = _as_rotations(rotations, xp)
    if coords.n != prepared.n:
        raise ValueError(f"coords are for n = {coords.n}, the volume has n = {prepared.n}")
    big_n = int(grid.shape[0])
    centre = big_n // 2
    pad = prepared.pad
    kx = xp.asarray(coords.kx, dtype=xp.float32) * pad
    ky = xp.asarray(coords.ky, dtype=xp.float32) * pad
    n_rot, n_k = int(rot.shape[0]), int(kx.shape[0])
    out = xp.empty((n_rot, n_k), dtype=xp.complex64)
    if n_rot == 0 or n_k == 0:
        return out
    flat_grid = grid.reshape(-1)
    # every tap lies inside the grid unless the sampled radius comes within 4 voxels of its edge
    reach = pad * float(coords.radius.max())
    check = reach > centre - 4
    chunk = _chunk(chunk_bytes, n_k * _EXTRACT_BYTES_PER_SAMPLE)
    for start in range(0, n_rot, chunk):
        ux, uy, uz = _slice_points(rot[start:start + chunk], kx, ky, float(centre))
        fx, wx, first = _tap_weights(ux, prepared.interpolation, xp)
        fy, wy, _ = _tap_weights(uy, prepared.interpolation, xp)
        fz, wz, _ = _tap_weights(uz, prepared.interpolation, xp)
        del ux, uy, uz
        if check:
            wx = _valid_taps(fx, wx, first, big_n, xp)
            wy = _valid_taps(fy, wy, first, big_n, xp)
            wz = _valid_taps(fz, wz, first, big_n, xp)
        base = (fz * big_n + fy) * big_n + fx
        del fx, fy, fz
        acc = xp.zeros(base.shape, dtype=xp.complex64)
        for a, w_a in enumerate(wz):
            for b, w_b in enumerate(wy):
                w_ab = w_a * w_b
                for c, w_c in enumerate(wx):
                    offset = ((first + a) * big_n + (first + b)) * big_n + (first + c)
                    idx = base + offset
                    if check:  # taps with zero weight may point anywhere: keep them in the array
                        idx = xp.clip(idx, 0, big_n ** 3 - 1)
                    acc += (w_ab * w_c) * xp.take(flat_grid, idx)
        out[start:start + chunk] = acc
    return out


def project_images(prepared: PreparedVolume, rotations: Any, r_max: float | None = None, *,
                   chunk_bytes: int = CHUNK_BYTES) -> Any:
    """Real-space projections of a prepared volume (for generating particles).

    Parameters
    ----------
    prepared : PreparedVolume
        From :func:`prepare_volume`.
    rotations : array, shape (R, 3, 3)
        Poses.
    r_max : float, optional
        Band limit in pixels, below ``n / 2``; default ``n / 2 - 1e-3`` (the whole disc inside
        the Nyquist circle).
    chunk_bytes : int
        Budget for one chunk's temporaries.

    Returns
    -------
    float32 array, shape (R, n, n), on the grid's backend
        Images ``(y, x)`` with the origin at ``(n // 2, n // 2)``: the line integrals along ``z``
        of ``V_R`` (sums over voxels, unit voxel length), band-limited to ``r_max``.
    """
    xp = array_namespace(prepared.grid)
    n = prepared.n
    coords = fourier_coords(n, n / 2 - 1e-3 if r_max is None else r_max)
    rot = _as_rotations(rotations, xp)
    n_rot = int(rot.shape[0])
    images = xp.empty((n_rot, n, n), dtype=xp.float32)
    flat = xp.asarray(coords.flat)
    half = n * (n // 2 + 1)
    per_pose = coords.flat.size * _EXTRACT_BYTES_PER_SAMPLE + 24 * half
    chunk = _chunk(chunk_bytes, per_pose)
    for start in range(0, n_rot, chunk):
        r = rot[start:start + chunk]
        ft = xp.zeros((int(r.shape[0]), half), dtype=xp.complex64)
        ft[:, flat] = extract_slices(prepared, r, coords, chunk_bytes=chunk_bytes)
        real = xp.fft.irfft2(ft.reshape(-1, n, n // 2 + 1), s=(n, n))
        images[start:start + chunk] = xp.fft.fftshift(real, axes=(-2, -1))
    return images


# -- back-projection ----------------------------------------------------------------------------

class Backprojector:
    """Accumulates image transforms on a padded 3D Fourier grid and reconstructs the map.

    Parameters
    ----------
    n : int
        Box edge of the images and the map, pixels (even).
    pad : int
        Padding factor of the Fourier grid (as :func:`prepare_volume`).
    r_max : float
        Largest ``|k|`` that will be inserted, pixels, below ``n / 2``.
    xp : module
        ``numpy`` or ``cupy``: where the grids live.
    dtype : complex dtype
        ``complex64`` (float32 accumulators) or ``complex128`` (float64).
    chunk_bytes : int
        Budget for the temporaries of one chunk of images in :meth:`insert` (about 240 bytes per
        image and coefficient, plus ``8 size^3`` bytes for a bincount result; at least a quarter of
        the budget goes to the images).

    Attributes
    ----------
    size : int
        Edge of the accumulation cube, ``2 * half + 1`` with ``half = ceil(pad * r_max) + 2``:
        the ball of padded radius ``pad * r_max`` and a margin for the splat. Axes ``(z, y, x)``,
        padded frequency ``u`` at index ``half + u``; the cube is symmetric about its centre.
    data : complex array, shape (size, size, size)
        ``sum w * values`` splatted trilinearly at ``pad * R^T k`` and at the Hermitian mate
        ``-pad * R^T k`` with the conjugate value, so ``data[-u] = conj(data[u])``.
    weight : real array, shape (size, size, size)
        ``sum w * ctf2`` splatted the same way, symmetric.
    n_inserted : int
        Images inserted so far.

    Notes
    -----
    The accumulators hold only the direct splats; the mates are added when ``data`` / ``weight``
    are read (``A[u] + conj(A[-u])``, a flip of the cube), which gives exactly the grid the
    explicit mate splats would give at half the insertion work. Every full-plane coefficient
    counts once: the half-plane coefficients with ``kx > 0`` stand for themselves and their mates,
    and the ``kx = 0`` ones (present with both signs of ``ky``) enter with weight 1/2 each.
    """

    def __init__(self, n: int, pad: int, r_max: float, xp: ModuleType = numpy, *,
                 dtype: Any = numpy.complex64, chunk_bytes: int = CHUNK_BYTES):
        self.n = _check_n(n)
        self.pad = _check_pad(pad)
        self.r_max = _check_r_max(r_max, self.n)
        self.xp = xp
        self.dtype = numpy.dtype(dtype)
        if self.dtype not in (numpy.complex64, numpy.complex128):
            raise ValueError(f"dtype must be complex64 or complex128, got {self.dtype}")
        self.real_dtype = numpy.dtype(numpy.float32 if self.dtype == numpy.complex64 else numpy.float64)
        self.chunk_bytes = int(chunk_bytes)
        self.half = int(math.ceil(self.pad * self.r_max)) + 2
        self.size = 2 * self.half + 1
        cells = self.size ** 3
        self._re = xp.zeros(cells, dtype=self.real_dtype)
        self._im = xp.zeros(cells, dtype=self.real_dtype)
        self._w = xp.zeros(cells, dtype=self.real_dtype)
        self.n_inserted = 0

    # the grids, Hermitian-completed on reading
    def _cube(self, flat: Any) -> Any:
        return flat.reshape((self.size,) * 3)

    @property
    def data(self) -> Any:
        re, im = self._cube(self._re), self._cube(self._im)
        full = (re + re[::-1, ::-1, ::-1]) + 1j * (im - im[::-1, ::-1, ::-1])
        return full.astype(self.dtype, copy=False)

    @property
    def weight(self) -> Any:
        w = self._cube(self._w)
        return w + w[::-1, ::-1, ::-1]

    def insert(self, values: Any, ctf2: Any, rotations: Any, coords: FourierCoords, weights: Any = None) -> None:
        """Splat image transforms at their poses.

        Parameters
        ----------
        values : complex array, shape (M, K)
            The CTF-weighted image coefficients ``CTF * X`` at ``coords`` (module conventions).
        ctf2 : real array, shape (M, K), or None
            ``CTF^2`` at ``coords``; None means 1 (no CTF).
        rotations : array, shape (M, 3, 3)
            The images' poses.
        coords : FourierCoords
            The coefficients, ``coords.n == n`` and ``max(coords.radius) <= r_max``.
        weights : real array, shape (M,), optional
            Multiplies each image's contribution (marginalisation probabilities); default 1.

        Notes
        -----
        Vectorised over images and coefficients: one weighted bin sum
        (:func:`~pytest_cryobench.kernels.array_api.bin_sums`, a scatter-add on CuPy) per
        accumulator and chunk of images (the chunk keeps the temporaries under ``chunk_bytes``).
        """
        xp = self.xp
        if coords.n != self.n:
            raise ValueError(f"coords are for n = {coords.n}, the backprojector has n = {self.n}")
        if coords.radius.size and float(coords.radius.max()) > self.r_max + 1e-6:
            raise ValueError(f"coords reach |k| = {float(coords.radius.max()):g}, beyond r_max = {self.r_max:g}")
        n_k = int(coords.flat.size)
        values = xp.asarray(values)
        if values.ndim != 2 or values.shape[1] != n_k:
            raise ValueError(f"values must have shape (M, {n_k}) (one row per image); got {values.shape}")
        m = int(values.shape[0])
        if ctf2 is not None:
            ctf2 = xp.asarray(ctf2, dtype=self.real_dtype)
            if ctf2.shape != values.shape:
                raise ValueError(f"ctf2 must have the shape of values {values.shape}; got {ctf2.shape}")
        rot = _as_rotations(rotations, xp, count=m)
        if weights is not None:
            weights = xp.asarray(weights, dtype=self.real_dtype)
            if weights.shape != (m,):
                raise ValueError(f"weights must have shape ({m},); got {weights.shape}")
        if m == 0 or n_k == 0:
            return
        rd = self.real_dtype
        kx = xp.asarray(coords.kx, dtype=xp.float32) * self.pad
        ky = xp.asarray(coords.ky, dtype=xp.float32) * self.pad
        half_weight = xp.asarray(coords.weight, dtype=rd) / 2
        s, cells = self.size, self.size ** 3
        # the budget holds one float64 bincount result over the cube plus the per-sample temporaries
        budget = max(self.chunk_bytes - 8 * cells, self.chunk_bytes // 4)
        chunk = _chunk(budget, n_k * _INSERT_BYTES_PER_SAMPLE)
        for start in range(0, m, chunk):
            stop = min(start + chunk, m)
            ux, uy, uz = _slice_points(rot[start:stop], kx, ky, float(self.half))
            fx, wx, _ = _tap_weights(ux, "linear", xp)
            fy, wy, _ = _tap_weights(uy, "linear", xp)
            fz, wz, _ = _tap_weights(uz, "linear", xp)
            del ux, uy, uz
            base = (fz * s + fy) * s + fx
            del fx, fy, fz
            scale = xp.broadcast_to(half_weight[None, :], base.shape)
            if weights is not None:
                scale = scale * weights[start:stop, None]
            v = values[start:stop]
            parts = [(v.real * scale).astype(rd, copy=False), (v.imag * scale).astype(rd, copy=False),
                     scale if ctf2 is None else ctf2[start:stop] * scale]
            idx = xp.stack([base + ((a * s + b) * s + c) for a in range(2) for b in range(2) for c in range(2)])
            tap = xp.stack([w_a * w_b * w_c for w_a in wz for w_b in wy for w_c in wx]).astype(rd, copy=False)
            del base
            idx = idx.reshape(-1)
            for acc, part in zip((self._re, self._im, self._w), parts, strict=True):
                sums = bin_sums(idx, (tap * part[None]).reshape(-1), cells)
                acc += sums.astype(rd, copy=False)
                del sums
        self.n_inserted += m

    def reconstruct(self, regulariser: float = 1e-3, gridding: bool = True) -> Any:
        """The map from the accumulated grids.

        Parameters
        ----------
        regulariser : float
            ``F = data / (weight + regulariser * max(weight))`` where ``weight > 0``, 0 elsewhere
            (a Wiener-like constant relative to the largest weight, which sits at the origin and
            grows with the number of images; it damps poorly sampled, high frequencies, where the
            weight is smallest, by ``weight / (weight + regulariser * max(weight))``).
        gridding : bool
            Divide the map by ``sinc^2(x / N)`` per axis (the trilinear splat's transform).

        Returns
        -------
        float32 array, shape (n, n, n), on the backprojector's backend
            ``(z, y, x)``, origin at voxel ``n // 2``; noise-free projections (``values`` the
            slices, ``ctf2 = 1``) at well-spread poses give back the projected volume.
        """
        xp = self.xp
        n, pad, h = self.n, self.pad, self.half
        big_n = pad * n
        data, weight = self.data, self.weight
        top = float(weight.max()) if weight.size else 0.0
        if top <= 0:
            return xp.zeros((n, n, n), dtype=xp.float32)
        filled = weight > 0
        denominator = xp.where(filled, weight + float(regulariser) * top, 1)
        ratio = xp.where(filled, data / denominator, 0).astype(self.dtype, copy=False)
        del data, weight, filled, denominator
        # embed: padded frequency u sits at index half + u here, big_n // 2 + u in the padded cube
        lo, hi = max(-h, -(big_n // 2)), min(h, big_n // 2 - 1)
        full = xp.zeros((big_n,) * 3, dtype=self.dtype)
        dst = slice(big_n // 2 + lo, big_n // 2 + hi + 1)
        src = slice(h + lo, h + hi + 1)
        full[dst, dst, dst] = ratio[src, src, src]
        del ratio
        real = xp.fft.fftshift(xp.fft.ifftn(xp.fft.ifftshift(full)).real)
        del full
        o = big_n // 2 - n // 2
        vol = real[o:o + n, o:o + n, o:o + n].astype(xp.float32)
        if gridding:
            vol /= _separable(_gridding_profile(n, big_n, "linear"), xp, xp.float32)
        return vol
