"""Fourier shell correlation, resolution at 0.143, and noise substitution for masked FSC.

Conventions
-----------
Grid
    Cubic maps of edge ``n`` voxels. Transforms are ``xp.fft.rfftn`` of the map (no
    normalisation), shape ``(n, n, n // 2 + 1)``; the last axis holds ``kx = 0 .. n // 2``.
Shells
    Each element's shell is ``round(|k|)`` with ``|k|`` in pixel units (``kz, ky`` from
    ``fftfreq(n) * n``, ``kx`` from ``rfftfreq(n) * n``): shells ``0 .. n // 2`` are kept, the
    corner elements with ``round(|k|) > n // 2`` take part in no shell (RELION's ``getFSC``
    binning). The resolution of shell ``i`` is ``n * apix / i`` A.
Half-grid weights
    The rfft half grid stores one element of every Hermitian pair ``F(-k) = conj F(k)``. An
    interior plane ``0 < kx < n / 2`` stands for itself and its mirror ``-kx``, which has the same
    ``|k|`` and the same ``Re(F1 conj F2)`` and ``|F|^2``, so it gets weight 2. The ``kx = 0``
    plane and, for even ``n``, the Nyquist plane ``kx = n / 2`` already hold both members of their
    pairs and get weight 1. With these weights every per-shell sum equals the same sum over the
    full ``fftn`` grid, so the FSC equals the full-FFT FSC (to rounding), and the weighted shell
    counts are the full-grid voxel counts.
FSC
    ``FSC_i = sum Re(F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2)`` over shell ``i``; 0 where a shell
    has no power in one of the maps. Shell 0 (the mean) is computed like the others and ignored by
    the searches below, which start at shell 1.
Resolution
    RELION's rule: walk from shell 1 and keep the last shell ``i`` before the curve first drops
    below the threshold (0.143); the interpolated shell adds the linear sub-shell fraction
    ``(v_i - t) / (v_i - v_{i+1})``.

All kernels take the array module from their inputs (:func:`~pytest_cryobench.kernels.array_api.array_namespace`), so
NumPy and CuPy run the same code; curves are reduced by one sparse product per sum (a cached
matrix over the shells, :func:`_shell_matrix`) and come back to the host (NumPy) only where a
function says so.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from types import ModuleType
from typing import Any, NamedTuple

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, is_cupy, scipy_namespace_for, to_host

FSC_THRESHOLD = 0.143
"""The gold-standard FSC threshold."""


# -- shells -------------------------------------------------------------------------------------

def _device_key(xp: ModuleType) -> int:
    """The current CUDA device for CuPy (cached arrays live on one device), -1 for NumPy."""
    return int(xp.cuda.runtime.getDevice()) if is_cupy(xp) else -1


def half_grid_radius(n: int, xp: ModuleType) -> Any:
    """``|k|`` in pixel units on the rfft half grid, float32, shape (n, n, n // 2 + 1)."""
    k = xp.fft.fftfreq(n, d=1.0 / n).astype(xp.float32)
    kx = xp.arange(n // 2 + 1, dtype=xp.float32)
    k2 = k * k
    # the squares are integers below 2**24, exact in float32; no |k| lies near a half-integer
    return xp.sqrt(k2[:, None, None] + k2[None, :, None] + (kx * kx)[None, None, :])


@functools.lru_cache(maxsize=6)
def _shell_index_cached(n: int, xp: ModuleType, device: int) -> Any:
    idx = xp.rint(half_grid_radius(n, xp)).astype(xp.int64)
    return xp.minimum(idx, n // 2 + 1)


def shell_index(n: int, xp: ModuleType = numpy) -> Any:
    """Shell index of every element of the rfft half grid of an ``n^3`` cube.

    Parameters
    ----------
    n : int
        Box edge, voxels.
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    array of int64, shape (n, n, n // 2 + 1)
        ``round(|k|)`` (pixel units) for elements in shells ``0 .. n // 2``; elements beyond
        (the corners) hold ``n // 2 + 1``, a sentinel bin that every reduction drops. The array
        is cached per ``(n, backend, device)``: treat it as read-only.
    """
    return _shell_index_cached(int(n), xp, _device_key(xp))


def _check_half_grid(f: Any) -> int:
    """``n`` of an rfftn transform of an ``n^3`` cube (ValueError for any other shape)."""
    if f.ndim != 3 or f.shape[1] != f.shape[0] or f.shape[2] != f.shape[0] // 2 + 1:
        raise ValueError(f"expected the rfftn transform of a cube, shape (n, n, n//2+1); got {f.shape}")
    return int(f.shape[0])


def _shell_sum(values: Any, n: int) -> Any:
    """Weighted per-shell sums of real ``values`` on the half grid, float64, shape (n // 2 + 1,).

    Equal to the sum over the full FFT grid: ``2 * sum(all planes) - sum(kx = 0) - sum(Nyquist)``,
    which weights interior planes 2 and the two edge planes 1 without a pass over the grid. Used
    for geometry (shell counts); the FSC's own sums go through :func:`_shell_matrix`.
    """
    xp = array_namespace(values)
    idx = shell_index(n, xp)
    bins = n // 2 + 2
    total = 2 * xp.bincount(idx.ravel(), weights=values.ravel(), minlength=bins)
    edges = [0, n // 2] if n % 2 == 0 else [0]
    for plane in edges:  # one or two planes of n^2 elements
        total -= xp.bincount(idx[:, :, plane].ravel(), weights=values[:, :, plane].ravel(), minlength=bins)
    return total[: n // 2 + 1]


SHELL_CHUNK = 1024
"""Values summed in float32 per partial sum of :func:`_shell_matrix`; partials add in float64."""


class ShellMatrix(NamedTuple):
    """Per-shell summation on the interleaved half grid (see :func:`_shell_matrix`).

    Attributes
    ----------
    matrix : CSR matrix of float32, shape (p, 2 * n * n * (n // 2 + 1))
        Row ``r`` sums at most :data:`SHELL_CHUNK` weighted values of one shell.
    shell_of_row : int64 array, shape (p,)
        The shell of each row, for folding the partial sums (float64) into shells.
    """

    matrix: Any
    shell_of_row: Any

    def sum(self, values: Any, n: int) -> Any:
        """Weighted per-shell sums of an interleaved half-grid vector, float64, shape (n // 2 + 1,)."""
        xp = array_namespace(values)
        partial = (self.matrix @ values).astype(xp.float64)
        return xp.bincount(self.shell_of_row, weights=partial, minlength=n // 2 + 1)


@functools.lru_cache(maxsize=4)
def _shell_matrix_cached(n: int, xp: ModuleType, device: int) -> ShellMatrix:
    import scipy.sparse

    idx = shell_index(n, numpy).ravel()
    shells = n // 2 + 1
    weight = numpy.full((n, n, n // 2 + 1), 2, dtype=numpy.float32)
    weight[:, :, 0] = 1
    if n % 2 == 0:
        weight[:, :, n // 2] = 1
    if 2 * idx.size >= numpy.iinfo(numpy.int32).max:
        raise ValueError(f"a {n}^3 box is too large for the shell matrix's int32 indices")
    # group the elements by shell (a radix sort: the indices fit int16), corners last and dropped
    order = numpy.argsort(idx.astype(numpy.int16), kind="stable")
    per_shell = numpy.bincount(idx, minlength=shells + 1)[:shells]
    order = order[: per_shell.sum()]
    # column 2j is the real part of element j of the half grid, 2j + 1 its imaginary part
    cols = (2 * order.astype(numpy.int32)[:, None] + numpy.arange(2, dtype=numpy.int32)).ravel()
    data = numpy.repeat(weight.ravel()[order], 2)
    values_per_shell = 2 * per_shell
    rows_per_shell = -(-values_per_shell // SHELL_CHUNK)
    shell_of_row = numpy.repeat(numpy.arange(shells), rows_per_shell)
    row_start_in_shell = (numpy.arange(shell_of_row.size)
                          - numpy.repeat(numpy.cumsum(rows_per_shell) - rows_per_shell, rows_per_shell))
    shell_start = numpy.cumsum(values_per_shell) - values_per_shell
    ends_in_shell = numpy.minimum((row_start_in_shell + 1) * SHELL_CHUNK, values_per_shell[shell_of_row])
    indptr = numpy.concatenate([[0], shell_start[shell_of_row] + ends_in_shell]).astype(numpy.int64)
    host = scipy.sparse.csr_matrix((data, cols, indptr), shape=(shell_of_row.size, 2 * idx.size))
    if xp is numpy:
        return ShellMatrix(host, shell_of_row.astype(numpy.int64))
    return ShellMatrix(scipy_namespace_for(xp, "sparse").csr_matrix(host), xp.asarray(shell_of_row, dtype=xp.int64))


def _shell_matrix(n: int, xp: ModuleType) -> ShellMatrix:
    """The per-shell summation as a sparse matrix on the interleaved half grid.

    Parameters
    ----------
    n : int
        Box edge, voxels.
    xp : module
        ``numpy`` (a ``scipy.sparse`` matrix) or ``cupy`` (``cupyx.scipy.sparse``).

    Returns
    -------
    ShellMatrix
        Each row holds the half-grid weight (2, or 1 on the ``kx = 0`` and Nyquist planes) at the
        real and the imaginary column of up to :data:`SHELL_CHUNK` / 2 elements of one shell;
        corners take part in no row. For two transforms viewed as float arrays ``a``, ``b``
        (:func:`_interleaved`), ``sum(a * b)`` gives the per-shell ``sum Re(F1 conj F2)`` and
        ``sum(a * a)`` the per-shell ``sum |F1|^2``, each one sparse product (a row-wise
        reduction that reads the values once and, on a GPU, avoids the atomic contention of a
        bincount into a few hundred bins) plus a fold of the partial sums in float64. Cached per
        ``(n, backend, device)``; about ``4 n^3`` bytes (67 MB at ``n = 256``).
    """
    return _shell_matrix_cached(int(n), xp, _device_key(xp))


def _interleaved(f: Any) -> Any:
    """A complex transform as a flat float view ``[re0, im0, re1, im1, ...]`` (a copy if strided)."""
    xp = array_namespace(f)
    f = xp.ascontiguousarray(f)
    return f.view(f.real.dtype).ravel()


def _shell_products(f1: Any, f2: Any, n: int) -> tuple[Any, Any, Any]:
    """Per-shell ``sum Re(F1 conj F2)``, ``sum |F1|^2``, ``sum |F2|^2`` (full-grid weighting).

    Partial sums of :data:`SHELL_CHUNK` values accumulate in the transforms' precision (float32
    for single-precision maps) and add up in float64.

    Returns
    -------
    three arrays of float64, shape (n // 2 + 1,), on the inputs' backend
    """
    xp = array_namespace(f1, f2)
    shells = _shell_matrix(n, xp)
    a, b = _interleaved(f1), _interleaved(f2)
    num = shells.sum(a * b, n)
    p1 = shells.sum(a * a, n)
    p2 = num if f1 is f2 else shells.sum(b * b, n)
    return num, p1, p2


@functools.lru_cache(maxsize=16)
def _shell_counts_cached(n: int) -> numpy.ndarray:
    ones = numpy.ones((n, n, n // 2 + 1), dtype=numpy.float32)
    counts = numpy.rint(_shell_sum(ones, n)).astype(numpy.int64)
    counts.flags.writeable = False
    return counts


def shell_counts(n: int) -> numpy.ndarray:
    """Voxels per shell of the full ``n^3`` FFT grid (the weighted half-grid counts).

    Parameters
    ----------
    n : int
        Box edge, voxels.

    Returns
    -------
    numpy.ndarray of int64, shape (n // 2 + 1,)
        Host-side geometry (NumPy), cached and read-only.
    """
    return _shell_counts_cached(int(n))


# -- FSC ----------------------------------------------------------------------------------------

def shell_power(f: Any) -> Any:
    """Mean ``|F|^2`` per shell of an rfftn transform (full-grid weighting).

    Parameters
    ----------
    f : complex array, shape (n, n, n // 2 + 1)
        ``rfftn`` of a real ``n^3`` map (unnormalised: white noise of variance ``s^2`` has
        ``E|F|^2 = s^2 n^3``).

    Returns
    -------
    array of float64, shape (n // 2 + 1,), on ``f``'s backend
    """
    n = _check_half_grid(f)
    xp = array_namespace(f)
    counts = xp.asarray(shell_counts(n), dtype=xp.float64)
    a = _interleaved(f)
    return _shell_matrix(n, xp).sum(a * a, n) / counts


def fsc(f1: Any, f2: Any) -> Any:
    """Fourier shell correlation of two rfftn transforms.

    Parameters
    ----------
    f1, f2 : complex arrays, shape (n, n, n // 2 + 1)
        ``xp.fft.rfftn`` of two real ``n^3`` maps, same backend.

    Returns
    -------
    array of float64, shape (n // 2 + 1,), on the inputs' backend
        ``sum Re(F1 conj F2) / sqrt(sum |F1|^2 sum |F2|^2)`` per shell, the sums over the full FFT
        grid (interior half-grid planes weighted 2, ``kx = 0`` and Nyquist planes 1; see the
        module notes); 0 for a shell without power in either map.
    """
    xp = array_namespace(f1, f2)
    if f1.shape != f2.shape:
        raise ValueError(f"transforms differ in shape: {f1.shape} vs {f2.shape}")
    n = _check_half_grid(f1)
    num, p1, p2 = _shell_products(f1, f2, n)
    denom = xp.sqrt(p1 * p2)
    good = denom > 0
    return xp.where(good, num / xp.where(good, denom, 1.0), 0.0)


def _check_cube(v: Any, name: str) -> int:
    if v.ndim != 3 or not v.shape[0] == v.shape[1] == v.shape[2]:
        raise ValueError(f"{name} must be a cube (n, n, n); got shape {v.shape}")
    return int(v.shape[0])


def fsc_maps(v1: Any, v2: Any, mask: Any = None) -> Any:
    """FSC of two real maps, optionally both multiplied by a mask first.

    Parameters
    ----------
    v1, v2 : real arrays, shape (n, n, n)
        Half maps (float32 keeps the FFTs single precision), same backend.
    mask : real array, shape (n, n, n), optional
        Real-space mask applied to both maps.

    Returns
    -------
    array of float64, shape (n // 2 + 1,), on the inputs' backend
        See :func:`fsc`.
    """
    xp = array_namespace(v1, v2, mask)
    _check_cube(v1, "v1")
    if v1.shape != v2.shape or (mask is not None and mask.shape != v1.shape):
        raise ValueError("maps and mask must have the same shape")
    if mask is not None:
        v1 = v1 * mask
        v2 = v2 * mask
    # norm="ortho": NumPy runs a float32 forward transform in float64 under the default norm
    # (2.7x slower); the FSC does not depend on the scale.
    return fsc(xp.fft.rfftn(v1, norm="ortho"), xp.fft.rfftn(v2, norm="ortho"))


def resolution_at(curve: Any, threshold: float = FSC_THRESHOLD, *, n: int, apix: float) -> dict[str, Any]:
    """Where an FSC curve first drops below ``threshold`` (RELION's rule).

    Parameters
    ----------
    curve : array, shape (n // 2 + 1,)
        FSC per shell (either backend; read on the host).
    threshold : float
        Usually 0.143.
    n : int
        Box edge, voxels.
    apix : float
        Voxel size, A.

    Returns
    -------
    dict
        ``shell`` (int): the last shell ``i >= 0`` before the first shell ``j >= 1`` with
        ``curve[j] < threshold`` (``i = j - 1``), or the last shell when the curve never drops;
        ``shell_interpolated`` (float): ``i + (curve[i] - t) / (curve[i] - curve[j])``, in
        ``[i, i + 1)``, equal to ``shell`` when the curve never drops;
        ``resolution_A`` = ``n * apix / shell`` and ``resolution_interpolated_A`` =
        ``n * apix / shell_interpolated`` (``inf`` for shell 0); ``threshold``; ``crossed``
        (bool): whether the curve drops below the threshold at all.
    """
    values = to_host(curve).astype(numpy.float64).ravel()
    below = numpy.flatnonzero(values[1:] < threshold)
    if below.size:
        j = int(below[0]) + 1
        i = j - 1
        v0, v1 = float(values[i]), float(values[j])
        frac = (v0 - threshold) / (v0 - v1) if v0 >= threshold else 0.0
        frac = min(max(frac, 0.0), math.nextafter(1.0, 0.0))
        crossed = True
    else:
        i, frac, crossed = len(values) - 1, 0.0, False
    interpolated = i + frac
    size = n * apix
    return {
        "shell": i,
        "shell_interpolated": interpolated,
        "resolution_A": size / i if i > 0 else math.inf,
        "resolution_interpolated_A": size / interpolated if interpolated > 0 else math.inf,
        "threshold": float(threshold),
        "crossed": crossed,
    }


@dataclasses.dataclass(frozen=True)
class FscResult:
    """An FSC curve on the host with its resolution.

    Attributes
    ----------
    curve : numpy.ndarray of float64, shape (n // 2 + 1,)
        FSC per shell.
    resolution : dict
        :func:`resolution_at` of the curve.
    n : int
        Box edge, voxels.
    apix : float
        Voxel size, A.
    """

    curve: numpy.ndarray
    resolution: dict[str, Any]
    n: int
    apix: float

    @classmethod
    def from_curve(cls, curve: Any, *, n: int, apix: float, threshold: float = FSC_THRESHOLD) -> FscResult:
        host = to_host(curve).astype(numpy.float64)
        return cls(host, resolution_at(host, threshold, n=n, apix=apix), int(n), float(apix))


def fsc_result(v1: Any, v2: Any, apix: float, mask: Any = None, threshold: float = FSC_THRESHOLD) -> FscResult:
    """:func:`fsc_maps` and :func:`resolution_at` bundled; the curve comes back to the host."""
    return FscResult.from_curve(fsc_maps(v1, v2, mask), n=v1.shape[0], apix=apix, threshold=threshold)


# -- noise substitution -------------------------------------------------------------------------

def _rng(xp: ModuleType, rng_or_seed: Any) -> Any:
    """A ``Generator`` of ``xp.random``: the one given, or a new one from an int seed."""
    if rng_or_seed is None or isinstance(rng_or_seed, (int, numpy.integer)):
        return xp.random.default_rng(None if rng_or_seed is None else int(rng_or_seed))
    return rng_or_seed


def randomize_phases_beyond(f: Any, shell: int, rng_or_seed: Any) -> Any:
    """Keep ``|F|`` and draw a uniform random phase for every element with shell index >= ``shell``.

    Parameters
    ----------
    f : complex array, shape (n, n, n // 2 + 1)
        ``rfftn`` of a real ``n^3`` map.
    shell : int
        First shell to randomise; the corner elements beyond ``n // 2`` are randomised too
        (RELION's ``randomizePhasesBeyond``: every element with ``|k| >= shell``).
    rng_or_seed : int or Generator
        Seed of a new ``xp.random.default_rng`` or a generator of ``f``'s backend. The phases are
        drawn on that backend, so a seed gives the same result on every run of one backend
        (NumPy and CuPy streams differ).

    Returns
    -------
    complex array, same shape, dtype and backend as ``f``
        A new transform. The ``kx = 0`` and Nyquist planes lose their Hermitian symmetry;
        ``irfftn`` restores it (so their amplitudes change after a round trip), every other
        element keeps ``|F|`` (to rounding). Elements of lower shells are copied unchanged.
    """
    xp = array_namespace(f)
    n = _check_half_grid(f)
    rng = _rng(xp, rng_or_seed)
    real_dtype = f.real.dtype
    phase = rng.random(f.shape, dtype=real_dtype)
    if array_namespace(phase) is not xp:
        raise TypeError(f"the generator draws {array_namespace(phase).__name__} arrays for {xp.__name__} data")
    phase *= 2 * math.pi
    amplitude = xp.abs(f)
    randomized = (amplitude * xp.cos(phase) + 1j * (amplitude * xp.sin(phase))).astype(f.dtype, copy=False)
    return xp.where(shell_index(n, xp) >= shell, randomized, f)


def noise_substituted_fsc(v1: Any, v2: Any, tight_mask: Any, seed: Any,
                          threshold: float = FSC_THRESHOLD) -> dict[str, Any]:
    """cryoSPARC's "corrected" FSC by noise substitution (Chen et al. 2013).

    1. ``unmasked``: FSC of the raw half maps; the randomisation shell ``s`` is the first shell
       ``>= 1`` where it is below ``threshold`` (``n // 2 + 1``, i.e. none, when it never is).
    2. ``fsc_t``: FSC of the tight-masked half maps.
    3. ``fsc_n``: randomise the phases of both half maps independently from shell ``s`` on
       (:func:`randomize_phases_beyond`), back to real space, apply the tight mask, FSC.
    4. ``fsc_true = (fsc_t - fsc_n) / (1 - fsc_n)`` for shells ``>= s + 2`` (RELION's rule); below
       that ``fsc_true = fsc_t``.

    Eight 3D FFTs: 2 + 2 + 2 forward and 2 inverse.

    Parameters
    ----------
    v1, v2 : real arrays, shape (n, n, n)
        Half maps, same backend.
    tight_mask : real array, shape (n, n, n)
        The mask (usually :func:`~pytest_cryobench.kernels.masks.tight_mask`).
    seed : int or Generator
        Randomness of the phases (on the maps' backend); half 1 draws before half 2.
    threshold : float
        FSC threshold of the randomisation shell.

    Returns
    -------
    dict
        ``unmasked``, ``fsc_t``, ``fsc_n``, ``fsc_true``: numpy.ndarray of float64, shape
        (n // 2 + 1,), on the host; ``randomize_shell``: int.
    """
    xp = array_namespace(v1, v2, tight_mask)
    n = _check_cube(v1, "v1")
    if v1.shape != v2.shape or tight_mask.shape != v1.shape:
        raise ValueError("maps and mask must have the same shape")
    f1, f2 = xp.fft.rfftn(v1, norm="ortho"), xp.fft.rfftn(v2, norm="ortho")  # see fsc_maps
    unmasked = to_host(fsc(f1, f2))
    below = numpy.flatnonzero(unmasked[1:] < threshold)
    shell = int(below[0]) + 1 if below.size else n // 2 + 1
    fsc_t = to_host(fsc_maps(v1, v2, tight_mask))
    rng = _rng(xp, seed)
    r1 = xp.fft.irfftn(randomize_phases_beyond(f1, shell, rng), s=v1.shape, axes=(0, 1, 2), norm="ortho")
    del f1
    r2 = xp.fft.irfftn(randomize_phases_beyond(f2, shell, rng), s=v2.shape, axes=(0, 1, 2), norm="ortho")
    del f2
    fsc_n = to_host(fsc_maps(r1.astype(v1.dtype, copy=False), r2.astype(v2.dtype, copy=False), tight_mask))
    fsc_true = fsc_t.copy()
    apply = numpy.arange(fsc_t.size) >= shell + 2
    with numpy.errstate(divide="ignore", invalid="ignore"):
        corrected = (fsc_t - fsc_n) / (1.0 - fsc_n)
    fsc_true[apply] = numpy.where(fsc_n[apply] < 1.0, corrected[apply], 0.0)
    return {"unmasked": unmasked, "randomize_shell": shell, "fsc_t": fsc_t, "fsc_n": fsc_n, "fsc_true": fsc_true}
