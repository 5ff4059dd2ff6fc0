"""Non-Uniform Refinement's core: per-voxel choice of a low-pass filter by matched cross-validation.

Workload ``matched_cv_filter_estimation`` (see ``docs/design.md``). The
parameterisation is ours, not cryoSPARC's: K isotropic soft low-pass filters indexed by their
resolution; for each candidate both half maps are filtered and each filtered half is compared with
the *other*, unfiltered half (the "matched" pairing, so noise that a filter lets through is never
compared with itself); the squared residuals are averaged by a Gaussian window whose width grows
with the candidate's resolution; the candidate with the lowest local error wins, voxel by voxel.

One code path serves NumPy and CuPy: every array function comes from
:func:`~pytest_cryobench.kernels.array_api.array_namespace` of the inputs, and the
transforms are ``xp.fft.rfftn`` / ``xp.fft.irfftn``.

Memory is planned for the full profile (256^3 half maps) on an 11 GB GPU: candidates are streamed
and only a running best (error, index, filtered value) is kept, so the footprint does not grow
with K (:func:`memory_plan`).

Conventions
-----------
* Maps are cubic, ``(n, n, n)``, float32, voxel size ``apix`` in Å.
* Frequencies on the ``rfftn`` half grid ``(n, n, n // 2 + 1)`` are measured as a radius in
  *shells* (cycles per box): shell ``s`` is the resolution ``n * apix / s`` Å; Nyquist is shell
  ``n / 2`` = ``2 * apix`` Å.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace

__all__ = [
    "DEFAULT_K",
    "DEFAULT_LOW_A",
    "DEFAULT_WIDTH_SHELLS",
    "DEFAULT_WINDOW_FACTOR",
    "NuFilterResult",
    "candidate_resolutions",
    "fft_count",
    "local_window",
    "lowpass_filter",
    "matched_cv_filter_estimation",
    "memory_plan",
    "shell_radius",
    "window_sigma_vox",
]

#: Number of candidate filters. 28 puts the test geometry (apix 1.5 Å, 30 Å .. 3 Å) on a grid
#: ``1/r = (3 + j) / 90`` Å⁻¹, so 9 Å (j = 7) and 4.5 Å (j = 17) are candidates exactly.
DEFAULT_K = 28
#: Lowest candidate resolution, Å.
DEFAULT_LOW_A = 30.0
#: Width of the raised-cosine edge of each low-pass filter, in shells.
DEFAULT_WIDTH_SHELLS = 2.0
#: Adaptive window factor ``c``: the window's Gaussian sigma is ``c * r_k / (2 apix)`` voxels
#: (FWHM about ``1.18 c r_k``); see :func:`window_sigma_vox`.
DEFAULT_WINDOW_FACTOR = 1.0
#: Smallest window sigma, voxels (below it the analytic transfer function aliases noticeably).
MIN_SIGMA_VOX = 1.0

_SPANS = ("fft", "filter", "cv_error", "argmin")


# --------------------------------------------------------------------------------------------
# Candidates, filters, windows
# --------------------------------------------------------------------------------------------

def candidate_resolutions(n: int, apix: float, k: int = DEFAULT_K, low_A: float = DEFAULT_LOW_A) -> numpy.ndarray:
    """K candidate resolutions, evenly spaced in spatial frequency ``1/r``.

    The grid runs from ``low_A`` (coarsest) to Nyquist, ``2 * apix`` (finest), with
    ``1/r_j = 1/low + j * (1/(2 apix) - 1/low) / (k - 1)``. Even spacing in ``1/r`` is even
    spacing in shells, so "one candidate step" is the same number of shells everywhere
    (``n * apix * (1/(2 apix) - 1/low) / (k - 1)`` shells).

    ``low_A`` is lowered to ``n * apix / 2`` when the box is too small for it, so the coarsest
    filter still passes at least two shells.

    Parameters
    ----------
    n : int
        Box size, voxels.
    apix : float
        Voxel size, Å.
    k : int
        Number of candidates, >= 2.
    low_A : float
        Coarsest candidate, Å (must be coarser than Nyquist).

    Returns
    -------
    numpy.ndarray, shape (k,), float64
        Resolutions in Å, coarsest first (decreasing Å, increasing frequency). Host metadata, not
        device data: the kernel loops over it in Python.
    """
    if k < 2:
        raise ValueError(f"need at least 2 candidates, got k={k}")
    nyquist = 2.0 * float(apix)
    low = min(float(low_A), n * float(apix) / 2.0)
    if low <= nyquist:
        raise ValueError(f"low_A={low_A} Å (box-limited to {low:g} Å) is not coarser than Nyquist {nyquist:g} Å")
    inv = numpy.linspace(1.0 / low, 1.0 / nyquist, int(k))
    return 1.0 / inv


def shell_radius(n: int, xp: ModuleType) -> Any:
    """Radius of every point of the ``rfftn`` half grid, in shells (cycles per box).

    Parameters
    ----------
    n : int
        Box size, voxels (cubic box).
    xp : module
        ``numpy`` or ``cupy``.

    Returns
    -------
    array, shape (n, n, n // 2 + 1), float32
        ``sqrt(fz^2 + fy^2 + fx^2)`` with ``f`` in cycles per box (``0 .. n/2``).
    """
    f = (xp.fft.fftfreq(n) * n).astype(xp.float32)
    fx = (xp.fft.rfftfreq(n) * n).astype(xp.float32)
    r2 = f[:, None, None] ** 2 + f[None, :, None] ** 2
    r2 = r2 + fx[None, None, :] ** 2
    return xp.sqrt(r2, out=r2)


def lowpass_filter(n: int, resolution_A: float, apix: float, xp: ModuleType,
                   width_shells: float = DEFAULT_WIDTH_SHELLS, *, radius: Any = None) -> Any:
    """Soft isotropic low-pass on the ``rfftn`` half grid: a raised-cosine edge.

    ``H = 1`` up to ``s_c - w/2`` shells, ``H = 0`` from ``s_c + w/2``, and
    ``H = (1 + cos(pi * (s - s_c + w/2) / w)) / 2`` between, where ``s_c = n * apix / r`` is the
    cutoff shell (``H(s_c) = 1/2``) and ``w = width_shells``. ``w <= 0`` gives a hard cutoff
    ``H = [s <= s_c]``. H is real and even, so it filters without shifting phases.

    Parameters
    ----------
    n : int
        Box size, voxels.
    resolution_A : float
        Cutoff resolution, Å (the half-height point of the edge).
    apix : float
        Voxel size, Å.
    xp : module
        ``numpy`` or ``cupy``.
    width_shells : float
        Edge width, shells.
    radius : array, optional
        :func:`shell_radius` ``(n, xp)``, passed to avoid recomputing it.

    Returns
    -------
    array, shape (n, n, n // 2 + 1), float32
        Transfer function, values in [0, 1], non-increasing in frequency.
    """
    if radius is None:
        radius = shell_radius(n, xp)
    s_c = numpy.float32(n * float(apix) / float(resolution_A))
    w = float(width_shells)
    if w <= 0:
        return (radius <= s_c).astype(xp.float32)
    t = (radius - numpy.float32(s_c - w / 2.0)) * numpy.float32(1.0 / w)
    xp.clip(t, 0.0, 1.0, out=t)
    t *= numpy.float32(math.pi)
    xp.cos(t, out=t)
    t += numpy.float32(1.0)
    t *= numpy.float32(0.5)
    return t


def window_sigma_vox(resolution_A: float, apix: float, window_factor: float = DEFAULT_WINDOW_FACTOR,
                     min_sigma_vox: float = MIN_SIGMA_VOX) -> float:
    """Gaussian sigma of the local CV window for one candidate, voxels.

    ``sigma = max(window_factor * resolution_A / (2 * apix), min_sigma_vox)``: sigma is
    ``window_factor`` half-periods of the candidate's resolution (``r/2`` is the voxel size that
    would just sample a map at that resolution), so the window's FWHM is about
    ``1.18 * window_factor * resolution_A``. A coarser candidate, whose error varies more slowly and
    carries fewer independent Fourier modes per voxel, is judged over a proportionally larger
    neighbourhood.

    The default factor 1 trades noise against leakage: with factor 1 the two 36 Å wide regions of
    the 48^3 known-answer volume (:func:`pytest_cryobench.data.synthetic_maps.two_region_half_maps`,
    apix 1.5 Å) are each found on their band limit exactly, while factor 2 already pulls the 9 Å
    region 1-2 candidates towards its 4.5 Å neighbour (its window reaches across the border), and
    factors below 1 make the per-voxel choice noisier.

    Parameters
    ----------
    resolution_A : float
        Candidate resolution, Å.
    apix : float
        Voxel size, Å.
    window_factor : float
        Adaptive window factor ``c``.
    min_sigma_vox : float
        Floor on sigma, voxels.

    Returns
    -------
    float
        Sigma, voxels.
    """
    return max(float(window_factor) * float(resolution_A) / (2.0 * float(apix)), float(min_sigma_vox))


def local_window(n: int, sigma_vox: float, xp: ModuleType, *, radius: Any = None) -> Any:
    """Transfer function of a normalised 3-D Gaussian window, for FFT convolution.

    The rfft of the (periodic) window is evaluated analytically,
    ``W(f) = exp(-2 pi^2 sigma^2 |f|^2)`` with ``f`` in cycles per voxel, instead of transforming a
    sampled Gaussian: no FFT is spent on it. ``W(0) = 1``, so the window sums to 1 and a local
    mean of a constant is that constant. For ``sigma >= 1`` voxel it matches the DFT of the
    sampled, periodised Gaussian up to the aliasing term ``W(1/2) <= 7e-3`` at the grid corners.

    Parameters
    ----------
    n : int
        Box size, voxels.
    sigma_vox : float
        Gaussian sigma, voxels (real space).
    xp : module
        ``numpy`` or ``cupy``.
    radius : array, optional
        :func:`shell_radius` ``(n, xp)``.

    Returns
    -------
    array, shape (n, n, n // 2 + 1), float32
        Multiply an ``rfftn`` by it and ``irfftn`` back to smooth by the window.
    """
    if radius is None:
        radius = shell_radius(n, xp)
    scale = numpy.float32(-2.0 * math.pi ** 2 * float(sigma_vox) ** 2 / float(n) ** 2)
    w = radius * radius
    w *= scale
    return xp.exp(w, out=w)


# --------------------------------------------------------------------------------------------
# The kernel
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class NuFilterResult:
    """What :func:`matched_cv_filter_estimation` returns (arrays on the inputs' backend).

    Attributes
    ----------
    resolution_map : array, shape (n, n, n), float32
        Resolution of the filter chosen at each voxel, Å.
    index_map : array, shape (n, n, n), int32
        Index into ``candidates`` of that filter (ties go to the coarser candidate).
    filtered_map : array, shape (n, n, n), float32
        Locally filtered map: at each voxel, ``(A_k + B_k) / 2`` for the chosen ``k`` (the average
        of the two filtered halves), in the units of the input maps.
    cv_error_min : array, shape (n, n, n), float32
        The winning local CV error ``E_k(x)``, squared map units.
    candidates : numpy.ndarray, shape (K,), float64
        Candidate resolutions, Å (host).
    window_sigmas_vox : numpy.ndarray, shape (K,), float64
        Gaussian sigma of each candidate's window, voxels (host).
    n_fft : int
        3-D transforms performed (``2 + 4 K``).
    """

    resolution_map: Any
    index_map: Any
    filtered_map: Any
    cv_error_min: Any
    candidates: numpy.ndarray
    window_sigmas_vox: numpy.ndarray
    n_fft: int


def fft_count(k: int) -> int:
    """3-D FFTs the kernel performs for ``k`` candidates.

    Two forward transforms of the halves; per candidate two inverse transforms (the filtered
    halves) and one forward plus one inverse for the window convolution (the two squared
    residuals are summed before smoothing, so one convolution serves both).
    """
    return 2 + 4 * int(k)


def _spans(sub_timings: Any):
    if sub_timings is None:
        return lambda name, *tags: contextlib.nullcontext()
    return sub_timings.span


def matched_cv_filter_estimation(half_a: Any, half_b: Any, apix: float,
                                 candidates: Sequence[float] | None = None,
                                 window_factor: float = DEFAULT_WINDOW_FACTOR, *,
                                 width_shells: float = DEFAULT_WIDTH_SHELLS,
                                 min_sigma_vox: float = MIN_SIGMA_VOX,
                                 sub_timings: Any = None) -> NuFilterResult:
    """Choose a low-pass filter per voxel by matched cross-validation between half maps.

    With ``FA = rfftn(A)``, ``FB = rfftn(B)`` and candidate filters ``H_k``::

        A_k = irfftn(FA * H_k),  B_k = irfftn(FB * H_k)
        E_k = W_k * [(A_k - B)^2 + (B_k - A)^2]          (* = convolution, by FFT)
        k*(x) = argmin_k E_k(x),  out(x) = (A_k* + B_k*)(x) / 2

    Each filtered half is scored against the *other*, unfiltered half: the other half's noise is
    independent, so the expected error is ``(1 - H)^2 |S|^2 + H^2 N + N`` per Fourier component,
    minimised by passing exactly the frequencies where the signal power exceeds the half-map noise
    power. ``W_k`` is a normalised Gaussian with sigma :func:`window_sigma_vox` (``window_factor *
    r_k / (2 apix)`` voxels). Candidates are streamed: only a running minimum (error, index, filtered
    value) is kept, so device memory is :func:`memory_plan` ``(n, K)`` bytes whatever K is.

    Parameters
    ----------
    half_a, half_b : array, shape (n, n, n)
        The two half maps (NumPy or CuPy, same backend; converted to float32 if needed). Upload
        them before calling: the kernel performs no host<->device transfer of map data.
    apix : float
        Voxel size, Å.
    candidates : sequence of float, optional
        Candidate resolutions in Å, coarsest first by convention (ties go to the earlier one).
        Default :func:`candidate_resolutions` ``(n, apix)``.
    window_factor : float
        Adaptive window factor ``c``.
    width_shells : float
        Raised-cosine edge width of each filter, shells (:func:`lowpass_filter`).
    min_sigma_vox : float
        Smallest window sigma, voxels.
    sub_timings : object, optional
        Anything with a ``span(name, *tags)`` context manager (:class:`~pytest_cryobench.measure.timing.
        SubTimings`). Spans ``fft``, ``filter``, ``cv_error`` and ``argmin``, all tagged ``GPU``,
        accumulate over the candidates.

    Returns
    -------
    NuFilterResult
    """
    xp = array_namespace(half_a, half_b)
    if half_a.shape != half_b.shape or half_a.ndim != 3 or len(set(half_a.shape)) != 1:
        raise ValueError(f"half maps must be the same cubic 3-D shape, got {half_a.shape} and {half_b.shape}")
    shape = tuple(int(s) for s in half_a.shape)
    n = shape[0]
    axes = (0, 1, 2)
    # Every transform pair is rfftn -> (multiply by a real transfer function) -> irfftn, so any
    # normalisation that round-trips gives the same maps. "ortho" is used because NumPy 2.4 runs
    # float32 *forward* transforms with the default norm through float64 casting buffers (the
    # unit scale factor arrives as a Python int and selects the double loop): 2-3x slower and 4
    # extra real-map-sized buffers per pass. With "ortho" both directions get a float32 factor.
    norm = "ortho"
    cands = numpy.asarray(candidate_resolutions(n, apix) if candidates is None else candidates, dtype=numpy.float64)
    if cands.ndim != 1 or cands.size == 0 or not numpy.all(cands > 0):
        raise ValueError(f"candidates must be a non-empty 1-D sequence of positive resolutions (Å), got {cands!r}")
    sigmas = numpy.array([window_sigma_vox(r, apix, window_factor, min_sigma_vox) for r in cands])
    span = _spans(sub_timings)
    fft = xp.fft

    a = xp.asarray(half_a, dtype=xp.float32)
    b = xp.asarray(half_b, dtype=xp.float32)
    with span("fft", "GPU"):
        fa = fft.rfftn(a, axes=axes, norm=norm)
        fb = fft.rfftn(b, axes=axes, norm=norm)
    with span("filter", "GPU"):
        radius = shell_radius(n, xp)
    with span("argmin", "GPU"):
        best_err = xp.full(shape, xp.inf, dtype=xp.float32)
        best_idx = xp.zeros(shape, dtype=xp.int32)
        best_out = xp.zeros(shape, dtype=xp.float32)

    for k, res in enumerate(cands):
        with span("filter", "GPU"):
            h = lowpass_filter(n, float(res), apix, xp, width_shells, radius=radius)
            g = fa * h
        with span("fft", "GPU"):
            ak = fft.irfftn(g, s=shape, axes=axes, norm=norm)
        with span("filter", "GPU"):
            g = xp.multiply(fb, h, out=g)
            del h
        with span("fft", "GPU"):
            bk = fft.irfftn(g, s=shape, axes=axes, norm=norm)
            del g
        with span("cv_error", "GPU"):
            err = ak - b
            err *= err
            d = bk - a
            d *= d
            err += d
            del d
            ak += bk          # ak becomes this candidate's filtered average
            ak *= numpy.float32(0.5)
            del bk
        with span("fft", "GPU"):
            fe = fft.rfftn(err, axes=axes, norm=norm)
            del err
        with span("cv_error", "GPU"):
            fe *= local_window(n, float(sigmas[k]), xp, radius=radius)
        with span("fft", "GPU"):
            e = fft.irfftn(fe, s=shape, axes=axes, norm=norm)
            del fe
        with span("argmin", "GPU"):
            better = e < best_err
            xp.copyto(best_err, e, where=better)
            xp.copyto(best_idx, k, where=better)
            xp.copyto(best_out, ak, where=better)
            del better, e, ak

    with span("argmin", "GPU"):
        res_map = xp.asarray(cands.astype(numpy.float32))[best_idx]
    return NuFilterResult(resolution_map=res_map, index_map=best_idx, filtered_map=best_out,
                          cv_error_min=best_err, candidates=cands, window_sigmas_vox=sigmas,
                          n_fft=fft_count(cands.size))


# --------------------------------------------------------------------------------------------
# Memory plan
# --------------------------------------------------------------------------------------------

def memory_plan(n: int, k: int = DEFAULT_K, *, detail: bool = False) -> int | dict[str, int]:
    """Most device memory :func:`matched_cv_filter_estimation` holds at once, bytes.

    Counts the arrays alive together, in units of a real map ``R = 4 n^3`` bytes (float32), a
    complex half-grid spectrum ``C = 8 n^2 (n//2+1)`` bytes (complex64) and a real half-grid
    array ``Hf = C / 2`` (float32):

    * persistent: the half maps (2 R), their spectra (2 C), the shell-radius grid (Hf), the
      running best error, index (int32) and filtered value (3 R);
    * the largest per-candidate moment, among: an inverse transform of a filtered half
      (``A_k``, ``H_k``, the product, transform scratch 2 C, ``B_k``), the residuals (4 R), the
      forward/inverse window convolution (``A_k``, error, spectrum, scratch 2 C, result) and the
      argmin update (2 R plus a bool mask), and the final gather of the resolution map;
    * the FFT plans' work areas (cuFFT R2C and C2R plans cached by CuPy: 2 C).

    Transform scratch of 2 C per call covers both NumPy (axis-by-axis passes that allocate a new
    complex array each) and CuPy (C2R copies its input, which cuFFT overwrites). The plan does
    not depend on ``k``: candidates are streamed.

    Parameters
    ----------
    n : int
        Box size, voxels.
    k : int
        Number of candidates (kept in the signature for the benchmark's record; no effect).
    detail : bool
        Return the parts as a dict (``persistent``, ``per_candidate``, ``fft_plans``, ``total``).

    Returns
    -------
    int or dict
        Bytes.
    """
    del k  # streamed: independent of K
    real = 4 * n ** 3
    cplx = 8 * n * n * (n // 2 + 1)
    half_real = cplx // 2
    mask = n ** 3
    persistent = 2 * real + 2 * cplx + half_real + 3 * real
    moments = {
        "irfftn_filtered": real + half_real + cplx + 2 * cplx + real,
        "residuals": 4 * real,
        "rfftn_error": 2 * real + cplx + 2 * cplx,
        "window_product": real + cplx + 2 * half_real,
        "irfftn_error": real + cplx + 2 * cplx + real,
        "argmin": 2 * real + mask,
        "resolution_map": real + 2 * real,  # the gathered map, plus int64 indices on NumPy
    }
    per_candidate = max(moments.values())
    plans = 2 * cplx
    total = persistent + per_candidate + plans
    if detail:
        return {"persistent": persistent, "per_candidate": per_candidate, "fft_plans": plans, "total": total}
    return total
