"""Template picking by fast local normalised cross-correlation (Roseman's FLCF), and scoring picks.

One code path for NumPy and CuPy: every kernel takes its array module from its inputs
(:func:`~pytest_cryobench.kernels.array_api.array_namespace`) and uses ``xp``, ``xp.fft`` and
:func:`~pytest_cryobench.kernels.array_api.scipy_namespace_for` only. Host NumPy is used for the
results that :func:`pick` hands back, and in :func:`match_picks`, which scores picks against a
known answer (:mod:`pytest_cryobench.data.synthetic_micrographs`) outside any timed region.

Conventions
-----------
* Images are ``(H, W)`` arrays indexed ``[y, x]`` (row, column); coordinates are ``(y, x)`` pixels.
* A template box of shape ``(h, w)`` has its centre at pixel ``(h // 2, w // 2)``. Templates
  rotate about that pixel, the circular mask is centred on it, and a particle "at" ``(y, x)`` has
  the template centre on pixel ``(y, x)``: the NCC map peaks there.
* Rotation by ``ψ`` degrees maps a point at ``(y, x)`` relative to the centre to
  ``(x sin ψ + y cos ψ, x cos ψ - y sin ψ)``: counter-clockwise when the image is shown with the
  row axis pointing up (``imshow(origin="lower")``).
* Template stacks prepared for ``T`` templates and ``A`` angles are ordered template-major: item
  ``k = t * A + a``.
* The CTF multiplies Fourier transforms as produced by :func:`~pytest_cryobench.kernels.ctf.ctf_2d`
  (``CTF(0) = -A``: an underfocused particle of positive density appears dark).

The score
---------
For a template ``t`` normalised under the mask ``M`` (``Σ_M t = 0``, ``Σ_M t² = N``, zero outside
``M``) and a micrograph ``f`` with local mean ``μ(p)`` and standard deviation ``σ(p)`` under ``M``
centred on ``p``::

    NCC(p) = Σ_r t(r) f(p + r - c) / (N σ(p))

which is the Pearson correlation between the template and the micrograph patch under the mask, so
``|NCC| <= 1``. The numerator is one inverse FFT per (template, angle):
``irfft2(F_f · conj(F_t))``; ``μ`` and ``σ`` come from two more inverse FFTs of the micrograph and
its square against the mask, computed once. Templates are Fourier transformed in a corner-placed
layout (a zero-padded box needs only ``h`` row transforms, then a column pass); the shift by the
box centre is folded once into the micrograph's spectra. Inside :func:`ncc_maps` the boxes are
also flipped (``t[::-1, ::-1]``), whose spectrum is ``conj(F_t)`` times a phase ramp that is folded
into the micrograph's spectrum too: the per-template product is then one in-place multiply.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, scipy_namespace_for, to_host

DEFAULT_MAX_BATCH_BYTES = {"numpy": 16 << 20, "cupy": 1 << 30}
"""Working-memory budget of one batch of templates in :func:`ncc_maps`, bytes, per backend.

On a CPU one template at a time is fastest once a micrograph-size spectrum outgrows the caches
(1024²: 0.8 s per pick at 1 template per batch, 1.8 s at 85), so NumPy gets a small budget; on a
GPU larger batches mean fewer, fuller kernel launches.
"""

_ROTATE_CHUNK_PIXELS = 1 << 22
"""Output pixels per ``map_coordinates`` call when rotating (bounds the float64 coordinates)."""

VAR_FLOOR = 1e-3
"""Local variances below this fraction of the micrograph's variance count as empty (NCC = 0)."""


# --------------------------------------------------------------------------------------------
# small helpers


def box_center(shape: Sequence[int]) -> tuple[int, int]:
    """Centre pixel ``(h // 2, w // 2)`` of a box of shape ``(h, w)``."""
    return int(shape[-2]) // 2, int(shape[-1]) // 2


def _module(xp: ModuleType | None, *arrays: Any) -> ModuleType:
    return xp if xp is not None else array_namespace(*arrays)


def _phase_ramp(shape: Sequence[int], shift_y: float, shift_x: float, xp: ModuleType) -> Any:
    """``exp(-2πi (fy·shift_y + fx·shift_x))`` on the ``rfft2`` grid of ``shape``, complex64.

    Multiplying a spectrum by it moves the image by ``(+shift_y, +shift_x)`` pixels (circularly).
    """
    big_h, big_w = (int(n) for n in shape)
    ramp_y = xp.exp((-2j * math.pi * shift_y) * xp.fft.fftfreq(big_h)).astype(xp.complex64)[:, None]
    ramp_x = xp.exp((-2j * math.pi * shift_x) * xp.fft.rfftfreq(big_w)).astype(xp.complex64)[None, :]
    return ramp_y * ramp_x


def _chunks(n: int, size: int) -> Iterator[slice]:
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def circular_mask(shape: Sequence[int], radius_px: float, xp: ModuleType = numpy,
                  dtype: Any = "float32") -> Any:
    """Binary disk of radius ``radius_px`` centred on the box centre.

    Parameters
    ----------
    shape : (int, int)
        Box shape ``(h, w)``, pixels.
    radius_px : float
        Radius, pixels; pixels with ``dy² + dx² <= radius²`` are inside.
    xp : module
        ``numpy`` or ``cupy``.
    dtype : dtype
        Result dtype.

    Returns
    -------
    array, shape (h, w)
        1 inside, 0 outside.
    """
    h, w = int(shape[-2]), int(shape[-1])
    if not radius_px > 0:
        raise ValueError(f"mask radius must be positive, got {radius_px}")
    cy, cx = box_center((h, w))
    yy = (xp.arange(h) - cy)[:, None]
    xx = (xp.arange(w) - cx)[None, :]
    return (yy * yy + xx * xx <= radius_px * radius_px).astype(dtype)


# --------------------------------------------------------------------------------------------
# templates


def rotate_items(source: Any, source_index: Any, angles_deg: Any) -> Any:
    """Item ``i`` of the result is ``source[source_index[i]]`` rotated by ``angles_deg[i]``.

    Bilinear interpolation (``map_coordinates``, order 1, zero outside the box) of all items at
    once, in chunks of about ``_ROTATE_CHUNK_PIXELS`` output pixels.
    """
    xp = array_namespace(source)
    ndimage = scipy_namespace_for(xp, "ndimage")
    src = xp.ascontiguousarray(source, dtype=xp.float32)
    _, h, w = src.shape
    cy, cx = box_center((h, w))
    index = xp.asarray(source_index, dtype=xp.float64).reshape(-1)
    theta = xp.asarray(angles_deg, dtype=xp.float64).reshape(-1) * (math.pi / 180.0)
    if index.shape != theta.shape:
        raise ValueError("one angle per item is needed")
    yy = (xp.arange(h, dtype=xp.float64) - cy)[None, :, None]
    xx = (xp.arange(w, dtype=xp.float64) - cx)[None, None, :]
    out = xp.empty((index.size, h, w), dtype=xp.float32)
    for part in _chunks(index.size, _ROTATE_CHUNK_PIXELS // (h * w)):
        cos = xp.cos(theta[part])[:, None, None]
        sin = xp.sin(theta[part])[:, None, None]
        # Inverse map: output pixel (y', x') samples the source at R(-psi) (y', x').
        coords = xp.empty((3, part.stop - part.start, h, w), dtype=xp.float64)
        coords[0] = index[part][:, None, None]
        coords[1] = cy + yy * cos - xx * sin
        coords[2] = cx + yy * sin + xx * cos
        ndimage.map_coordinates(src, coords, output=out[part], order=1, mode="grid-constant", cval=0.0)
    return out


def rotate_templates(templates: Any, angles_deg: Any, xp: ModuleType | None = None) -> Any:
    """Every template rotated by every angle, about its box centre.

    Parameters
    ----------
    templates : array, shape (T, h, w) or (h, w)
        Templates (any real dtype).
    angles_deg : array-like, shape (A,)
        In-plane angles, degrees (counter-clockwise, see the module conventions).
    xp : module, optional
        Array module of the result; the templates' own module when omitted.

    Returns
    -------
    array, shape (T * A, h, w), float32
        Item ``t * A + a`` is template ``t`` rotated by ``angles_deg[a]`` (bilinear, zero fill).
    """
    xp = _module(xp, templates)
    stack = xp.asarray(templates, dtype=xp.float32)
    if stack.ndim == 2:
        stack = stack[None]
    angles = xp.asarray(angles_deg, dtype=xp.float64).reshape(-1)
    n_t, n_a = stack.shape[0], angles.size
    index = xp.repeat(xp.arange(n_t, dtype=xp.float64), n_a)
    return rotate_items(stack, index, xp.tile(angles, n_t))


def _divisor_box(n: int, at_least: int) -> int:
    """Smallest divisor of ``n`` that is ``>= at_least`` and at most twice that; else ``at_least``."""
    for size in range(at_least, min(n, 2 * at_least) + 1):
        if n % size == 0:
            return size
    return at_least


def ctf_filter_boxes(stack: Any, ctf_rfft: Any, micrograph_shape: Sequence[int]) -> Any:
    """Multiply the Fourier transform of each box by the micrograph's CTF.

    The boxes are zero-padded to ``(py, px) >= 2 (h, w)`` and filtered there with the CTF sampled
    at the padded box's frequencies; the result is cropped back to ``(h, w)``. ``py`` (``px``) is a
    divisor of ``H`` (``W``) when one lies in ``[2h, 4h]``, so that the box frequencies are exactly
    grid points of the micrograph's CTF; otherwise the nearest grid point is used. The padding
    holds the CTF's delocalisation of up to half a box.

    Parameters
    ----------
    stack : array, shape (K, h, w)
        Real-space boxes.
    ctf_rfft : array, shape (H, W // 2 + 1)
        The micrograph's CTF on its ``rfft2`` grid (:func:`~pytest_cryobench.kernels.ctf.ctf_2d`).
    micrograph_shape : (int, int)
        ``(H, W)``.

    Returns
    -------
    array, shape (K, h, w), float32
        CTF-filtered boxes.
    """
    xp = array_namespace(stack, ctf_rfft)
    big_h, big_w = (int(n) for n in micrograph_shape)
    if ctf_rfft.shape != (big_h, big_w // 2 + 1):
        raise ValueError(f"CTF shape {ctf_rfft.shape} is not the rfft2 grid of a {big_h}x{big_w} micrograph")
    k, h, w = stack.shape
    py, px = _divisor_box(big_h, 2 * h), _divisor_box(big_w, 2 * w)
    iy = xp.rint(xp.fft.fftfreq(py) * big_h).astype(xp.int64) % big_h
    ix = xp.rint(xp.fft.rfftfreq(px) * big_w).astype(xp.int64)
    ctf_box = xp.asarray(ctf_rfft, dtype=xp.float32)[iy[:, None], ix[None, :]]
    oy, ox = (py - h) // 2, (px - w) // 2
    padded = xp.zeros((k, py, px), dtype=xp.float32)
    padded[:, oy:oy + h, ox:ox + w] = stack
    spectrum = xp.fft.rfft2(padded)
    spectrum *= ctf_box
    filtered = xp.fft.irfft2(spectrum, s=(py, px))
    return xp.ascontiguousarray(filtered[:, oy:oy + h, ox:ox + w], dtype=xp.float32)


def normalise_under_mask(stack: Any, mask: Any) -> Any:
    """Zero mean and unit variance under the mask, zero outside it.

    Parameters
    ----------
    stack : array, shape (K, h, w)
        Boxes.
    mask : array, shape (h, w)
        Binary mask with ``N = Σ mask > 0``.

    Returns
    -------
    array, shape (K, h, w), float32
        ``t`` with ``Σ_M t = 0`` and ``Σ_M t² = N``; a box that is constant under the mask
        becomes all zeros.
    """
    xp = array_namespace(stack, mask)
    mask = xp.asarray(mask, dtype=xp.float32)
    n_mask = mask.sum()
    mean = (stack * mask).sum(axis=(-2, -1), keepdims=True) / n_mask
    centred = (stack - mean) * mask
    var = (centred * centred).sum(axis=(-2, -1), keepdims=True) / n_mask
    scale = xp.where(var > 0, 1.0 / xp.sqrt(xp.where(var > 0, var, 1.0)), 0.0)
    return (centred * scale).astype(xp.float32)


def prepare_template_boxes(templates: Any, angles_deg: Any, ctf_rfft: Any | None, mask_radius_px: float,
                           micrograph_shape: Sequence[int]) -> tuple[Any, Any]:
    """Rotated, CTF-filtered, masked and normalised templates, still in their boxes.

    Parameters
    ----------
    templates : array, shape (T, h, w)
        Templates (e.g. 2-D class averages), positive density.
    angles_deg : array-like, shape (A,)
        In-plane search angles, degrees.
    ctf_rfft : array, shape (H, W // 2 + 1), or None
        The micrograph's CTF (:func:`~pytest_cryobench.kernels.ctf.ctf_2d`); ``None``: no filter.
    mask_radius_px : float
        Radius of the circular mask, pixels.
    micrograph_shape : (int, int)
        ``(H, W)`` of the micrograph.

    Returns
    -------
    prepared : array, shape (T * A, h, w), float32
        Item ``t * A + a``: template ``t`` at angle ``a``, normalised under the mask
        (:func:`normalise_under_mask`).
    mask : array, shape (h, w), float32
        The mask.
    """
    xp = array_namespace(templates)
    boxes = rotate_templates(templates, angles_deg)
    if ctf_rfft is not None:
        boxes = ctf_filter_boxes(boxes, xp.asarray(ctf_rfft), micrograph_shape)
    mask = circular_mask(boxes.shape[-2:], mask_radius_px, xp=xp)
    return normalise_under_mask(boxes, mask), mask


def padded_rfft2(boxes: Any, shape: Sequence[int]) -> Any:
    """``rfft2`` of boxes zero-padded to ``shape``, box corner at the origin.

    Pruned: the row transforms run over the ``h`` non-zero rows only, then one column pass.

    Parameters
    ----------
    boxes : array, shape (K, h, w)
        Real boxes, ``h <= H`` and ``w <= W``.
    shape : (int, int)
        ``(H, W)``.

    Returns
    -------
    array, shape (K, H, W // 2 + 1), complex64
        Equal to ``rfft2`` of the ``(K, H, W)`` array with ``boxes`` in ``[:, :h, :w]`` and zeros
        elsewhere.
    """
    xp = array_namespace(boxes)
    big_h, big_w = (int(n) for n in shape)
    rows = xp.fft.rfft(xp.asarray(boxes, dtype=xp.float32), n=big_w, axis=-1)
    return xp.fft.fft(rows, n=big_h, axis=-2)


def prepare_templates(templates: Any, angles_deg: Any, ctf_rfft: Any | None, mask_radius_px: float,
                      micrograph_shape: Sequence[int]) -> Any:
    """Prepared templates, zero-padded to the micrograph and Fourier transformed, all at once.

    :func:`prepare_template_boxes` followed by :func:`padded_rfft2`. This holds ``T * A`` spectra
    of the micrograph's size (``T * A * H * (W/2 + 1) * 8`` bytes): use it for small cases;
    :func:`ncc_maps` transforms the boxes batch by batch instead.

    Returns
    -------
    array, shape (T * A, H, W // 2 + 1), complex64
        Corner-placed spectra (box corner at the origin), to be correlated against the
        centre-shifted micrograph spectra of :func:`micrograph_spectra`.
    """
    prepared, _ = prepare_template_boxes(templates, angles_deg, ctf_rfft, mask_radius_px, micrograph_shape)
    return padded_rfft2(prepared, micrograph_shape)


# --------------------------------------------------------------------------------------------
# correlation


def micrograph_spectra(micrograph: Any, box_shape: Sequence[int]) -> tuple[Any, Any]:
    """``rfft2`` of the micrograph and of its square, shifted by the box centre.

    Multiplying by ``exp(-2πi k·c)`` (``c`` the box centre) makes a correlation with a corner-placed
    box (:func:`padded_rfft2`) read out at the box centre: the score for a box centred on ``p``
    lands on pixel ``p``.

    Parameters
    ----------
    micrograph : array, shape (H, W)
        Real image (float32 recommended; normalise it first, see :func:`ncc_maps`).
    box_shape : (int, int)
        ``(h, w)`` of the template box.

    Returns
    -------
    spectrum, spectrum_sq : array, shape (H, W // 2 + 1), complex64
    """
    xp = array_namespace(micrograph)
    ramp = _phase_ramp(micrograph.shape, *box_center(box_shape), xp)
    spectrum = xp.fft.rfft2(micrograph)
    spectrum *= ramp
    spectrum_sq = xp.fft.rfft2(micrograph * micrograph)
    spectrum_sq *= ramp
    return spectrum, spectrum_sq


def local_stats(micrograph_rfft: Any, micrograph_sq_rfft: Any, mask_rfft: Any, n_mask: float,
                shape: Sequence[int] | None = None, var_floor: float = 0.0) -> tuple[Any, Any]:
    """Local mean and standard deviation of the micrograph under the mask, at every pixel.

    ``μ = irfft2(F_f · conj F_M) / N`` and ``σ² = irfft2(F_f² · conj F_M) / N - μ²`` (Roseman).

    Parameters
    ----------
    micrograph_rfft, micrograph_sq_rfft : array, shape (H, W // 2 + 1), complex
        Spectra of ``f`` and ``f²`` from :func:`micrograph_spectra`.
    mask_rfft : array, shape (H, W // 2 + 1), complex
        :func:`padded_rfft2` of the mask (corner-placed).
    n_mask : float
        Number of pixels in the mask, ``N``.
    shape : (int, int), optional
        ``(H, W)``; ``W`` is taken as even when omitted.
    var_floor : float
        Variances at or below this become 0 (their σ is reported as 0).

    Returns
    -------
    mean, std : array, shape (H, W), float32
        ``std`` is 0 where the variance is ``<= var_floor``.
    """
    xp = array_namespace(micrograph_rfft, micrograph_sq_rfft, mask_rfft)
    if shape is None:
        shape = (micrograph_rfft.shape[0], 2 * (micrograph_rfft.shape[1] - 1))
    conj_mask = xp.conj(mask_rfft)
    mean = xp.fft.irfft2(micrograph_rfft * conj_mask, s=tuple(shape)) / n_mask
    mean_sq = xp.fft.irfft2(micrograph_sq_rfft * conj_mask, s=tuple(shape)) / n_mask
    var = mean_sq - mean * mean
    std = xp.where(var > var_floor, xp.sqrt(xp.maximum(var, 0.0)), 0.0)
    return mean.astype(xp.float32), std.astype(xp.float32)


def batch_size_for(shape: Sequence[int], n_items: int, max_batch_bytes: int) -> int:
    """Templates per batch so that one batch's spectra and maps fit in ``max_batch_bytes``.

    A template costs about two complex64 spectra and one float32 map of the micrograph's size.
    """
    big_h, big_w = (int(n) for n in shape)
    per_item = big_h * (big_w // 2 + 1) * 8 * 2 + big_h * big_w * 4
    return int(max(1, min(n_items, max_batch_bytes // per_item)))


def ncc_maps(micrograph: Any, prepared: Any, mask: Any, n_angles: int = 1, batch_size: int | None = None,
             max_batch_bytes: int | None = None) -> tuple[Any, Any, Any]:
    """Best normalised cross-correlation over all prepared templates, at every pixel.

    The micrograph is normalised globally first (zero mean, unit variance: the NCC does not
    change). Templates are transformed and correlated ``batch_size`` at a time, keeping a running
    maximum of the raw correlation and its argmax; since the normalisation ``1 / (N σ(p))`` is the
    same for every template, it is applied once at the end. Pixels whose local variance is below
    ``VAR_FLOOR`` (of the micrograph's variance) score 0. The maps are circular: the outer half box
    is wrapped and should be ignored (:func:`find_peaks` ``border_px``).

    Parameters
    ----------
    micrograph : array, shape (H, W)
        The micrograph.
    prepared : array, shape (K, h, w)
        Normalised templates from :func:`prepare_template_boxes`, ``K = T * A``, template-major.
    mask : array, shape (h, w)
        The mask they were normalised under.
    n_angles : int
        ``A``, to split the best item index into template and angle indices.
    batch_size : int, optional
        Templates per FFT batch; from ``max_batch_bytes`` (:func:`batch_size_for`) when omitted.
        The result does not depend on it.
    max_batch_bytes : int, optional
        Working-memory budget of one batch, bytes; ``DEFAULT_MAX_BATCH_BYTES`` of the backend
        when omitted.

    Returns
    -------
    ncc : array, shape (H, W), float32
        Best NCC (in [-1, 1] up to rounding).
    template_index : array, shape (H, W), int32
        Template ``t`` of the best item.
    angle_index : array, shape (H, W), int32
        Angle index ``a`` of the best item.
    """
    xp = array_namespace(micrograph, prepared, mask)
    shape = tuple(int(n) for n in micrograph.shape)
    n_items = int(prepared.shape[0])
    if n_items < 1:
        raise ValueError("no templates")
    if n_items % n_angles:
        raise ValueError(f"{n_items} prepared templates is not a multiple of {n_angles} angles")
    image = xp.asarray(micrograph, dtype=xp.float32)
    image = image - image.mean()
    sd = image.std()
    image = image / xp.where(sd > 0, sd, 1.0).astype(xp.float32)
    spectrum, spectrum_sq = micrograph_spectra(image, prepared.shape[-2:])
    mask = xp.asarray(mask, dtype=xp.float32)
    n_mask = float(mask.sum())
    _, std = local_stats(spectrum, spectrum_sq, padded_rfft2(mask[None], shape)[0], n_mask, shape,
                         var_floor=VAR_FLOOR)
    del spectrum_sq
    norm = xp.where(std > 0, 1.0 / (n_mask * xp.where(std > 0, std, 1.0)), 0.0).astype(xp.float32)
    del std
    # Flipped boxes s = t[::-1, ::-1] at the corner: S = conj(T) * exp(-2πi k·(h-1, w-1)), so
    # conj(T) = S * exp(+2πi k·(h-1, w-1)); fold that ramp into the micrograph's spectrum.
    box_h, box_w = prepared.shape[-2:]
    spectrum *= _phase_ramp(shape, -(box_h - 1), -(box_w - 1), xp)
    flipped = xp.ascontiguousarray(xp.asarray(prepared, dtype=xp.float32)[:, ::-1, ::-1])
    best = xp.full(shape, -xp.inf, dtype=xp.float32)
    best_item = xp.zeros(shape, dtype=xp.int32)
    if batch_size is None:
        if max_batch_bytes is None:
            max_batch_bytes = DEFAULT_MAX_BATCH_BYTES.get(xp.__name__, DEFAULT_MAX_BATCH_BYTES["cupy"])
        batch_size = batch_size_for(shape, n_items, max_batch_bytes)
    for part in _chunks(n_items, batch_size):
        product = padded_rfft2(flipped[part], shape)
        product *= spectrum
        cc = xp.fft.irfft2(product, s=shape)
        del product
        for j in range(cc.shape[0]):
            better = cc[j] > best
            xp.copyto(best, cc[j], where=better)
            xp.copyto(best_item, part.start + j, where=better)
        del cc
    best *= norm
    return best, best_item // n_angles, best_item % n_angles


# --------------------------------------------------------------------------------------------
# peaks


def find_peaks(score: Any, min_separation_px: int, threshold: float, max_picks: int | None = None,
               border_px: int = 0) -> tuple[Any, Any]:
    """Local maxima of a score map, at least ``min_separation_px`` apart, above a threshold.

    A pixel is a peak when it equals the maximum of its ``(2 sep + 1)²`` window
    (``maximum_filter``), is ``>= threshold`` and lies at least ``border_px`` from every edge. Any
    two peaks of different score are then more than ``sep`` apart along ``y`` or ``x`` (Chebyshev
    distance, hence also Euclidean), which is what greedy non-maximum suppression by score
    guarantees, without a loop over peaks. It is slightly stricter than greedy suppression: a
    pixel whose window holds a higher pixel is never a peak, even when that higher pixel is itself
    suppressed (the shoulder of a stronger neighbour), which keeps shoulders from being picked.
    Only exact ties (plateaus) can leave two peaks within one window; a second maximum filter over
    peak ranks (score, then raster order) keeps the first in raster order. No Python loop runs
    over pixels or peaks.

    Parameters
    ----------
    score : array, shape (H, W)
        Score map (e.g. NCC).
    min_separation_px : int
        ``sep``, pixels (>= 0).
    threshold : float
        Lowest score kept.
    max_picks : int, optional
        Keep only the best ``max_picks``.
    border_px : int
        Exclude peaks closer than this to an edge (e.g. half a template box).

    Returns
    -------
    coords : array, shape (N, 2), int64
        ``(y, x)`` of the peaks, best first; on the score's backend.
    scores : array, shape (N,)
        Their scores.
    """
    xp = array_namespace(score)
    ndimage = scipy_namespace_for(xp, "ndimage")
    sep = int(min_separation_px)
    if sep < 0:
        raise ValueError(f"negative separation {min_separation_px}")
    size = 2 * sep + 1
    local_max = ndimage.maximum_filter(score, size=size, mode="constant", cval=-numpy.inf)
    candidate = (score == local_max) & (score >= threshold)
    border = int(border_px)
    if border > 0:
        candidate[:border] = False
        candidate[-border:] = False
        candidate[:, :border] = False
        candidate[:, -border:] = False
    ys, xs = xp.nonzero(candidate)
    values = score[ys, xs]
    order = xp.argsort(-values, kind="stable")  # best first; ties in raster order
    ys, xs, values = ys[order], xs[order], values[order]
    n = int(values.size)
    if n > 1 and int(xp.unique(values).size) < n:
        rank = xp.zeros(score.shape, dtype=xp.int64)
        rank[ys, xs] = n - xp.arange(n)
        keep = rank[ys, xs] == ndimage.maximum_filter(rank, size=size, mode="constant", cval=0)[ys, xs]
        ys, xs, values = ys[keep], xs[keep], values[keep]
    if max_picks is not None:
        ys, xs, values = ys[:max_picks], xs[:max_picks], values[:max_picks]
    return xp.stack([ys, xs], axis=1).astype(xp.int64), values


def noise_threshold(score: Any, sigmas: float) -> float:
    """``median + sigmas * 1.4826 MAD`` of a score map: a threshold relative to the map's own
    spread (for Gaussian noise 1.4826 MAD is the standard deviation), so that it follows the
    micrograph's signal to noise instead of being one NCC for every data set.

    Parameters
    ----------
    score : array, shape (H, W)
        Score map (e.g. the NCC of :func:`ncc_maps`), NumPy or CuPy.
    sigmas : float
        How many robust standard deviations above the median.

    Returns
    -------
    float
        The threshold (host float).
    """
    xp = array_namespace(score)
    median = xp.median(score)
    mad = xp.median(xp.abs(score - median))
    return float(to_host(median + sigmas * 1.4826 * mad))


def pick(micrograph: Any, templates: Any, angles_deg: Any, ctf: Any | None, mask_radius_px: float,
         min_separation_px: int, threshold: float, *, noise_sigmas: float | None = None,
         max_picks: int | None = None, border_px: int | None = None, batch_size: int | None = None,
         max_batch_bytes: int | None = None, return_maps: bool = False) -> dict[str, Any]:
    """Template picking: prepare templates, NCC maps, peaks.

    Parameters
    ----------
    micrograph : array, shape (H, W)
        The micrograph (NumPy or CuPy; the templates and CTF follow it).
    templates : array, shape (T, h, w)
        Templates, positive density, centred in their boxes.
    angles_deg : array-like, shape (A,)
        In-plane search angles, degrees (e.g. ``arange(0, 360, 10)``).
    ctf : array, shape (H, W // 2 + 1), or None
        The micrograph's CTF on its ``rfft2`` grid; templates are filtered with it.
    mask_radius_px : float
        Radius of the circular mask, pixels (about the particle radius).
    min_separation_px : int
        Minimum distance between picks, pixels (see :func:`find_peaks`).
    threshold : float
        Lowest NCC picked.
    noise_sigmas : float, optional
        When given, the lowest NCC picked is at least :func:`noise_threshold` of the NCC map with
        this many robust standard deviations.
    max_picks : int, optional
        Keep only the best picks.
    border_px : int, optional
        Edge exclusion, pixels; half the template box by default.
    batch_size, max_batch_bytes
        See :func:`ncc_maps`.
    return_maps : bool
        Also return the NCC and index maps (on the micrograph's backend).

    Returns
    -------
    dict
        ``coords`` (N, 2) int64 ``(y, x)``; ``scores`` (N,) float32; ``template`` (N,) int64;
        ``angle_index`` (N,) int64; ``angle_deg`` (N,) float64: host NumPy arrays, best first;
        ``threshold``, the lowest NCC that was picked (float).
        With ``return_maps``: ``ncc``, ``template_map``, ``angle_map``.
    """
    h, w = int(templates.shape[-2]), int(templates.shape[-1])
    if h > micrograph.shape[0] or w > micrograph.shape[1]:
        raise ValueError(f"templates of {h}x{w} px do not fit a micrograph of "
                         f"{micrograph.shape[0]}x{micrograph.shape[1]} px")
    xp = array_namespace(micrograph)
    templates = xp.asarray(templates)
    if templates.ndim == 2:
        templates = templates[None]
    angles = numpy.asarray(to_host(angles_deg), dtype=numpy.float64).reshape(-1)
    shape = tuple(int(n) for n in micrograph.shape)
    prepared, mask = prepare_template_boxes(templates, angles, ctf, mask_radius_px, shape)
    ncc, template_map, angle_map = ncc_maps(micrograph, prepared, mask, n_angles=angles.size,
                                            batch_size=batch_size, max_batch_bytes=max_batch_bytes)
    if border_px is None:
        border_px = max(templates.shape[-2:]) // 2
    if noise_sigmas is not None:
        threshold = max(threshold, noise_threshold(ncc, noise_sigmas))
    coords, scores = find_peaks(ncc, min_separation_px, threshold, max_picks=max_picks, border_px=border_px)
    template_at = template_map[coords[:, 0], coords[:, 1]]
    angle_at = angle_map[coords[:, 0], coords[:, 1]]
    angle_index = to_host(angle_at).astype(numpy.int64)
    result = {
        "coords": to_host(coords).astype(numpy.int64),
        "scores": to_host(scores).astype(numpy.float32),
        "template": to_host(template_at).astype(numpy.int64),
        "angle_index": angle_index,
        "angle_deg": angles[angle_index],
        "threshold": float(threshold),
    }
    if return_maps:
        result.update(ncc=ncc, template_map=template_map, angle_map=angle_map)
    return result


# --------------------------------------------------------------------------------------------
# scoring against a known answer


def angular_difference_deg(a: Any, b: Any) -> numpy.ndarray:
    """Smallest absolute difference between angles, degrees in [0, 180] (host NumPy)."""
    d = numpy.mod(numpy.asarray(a, dtype=numpy.float64) - numpy.asarray(b, dtype=numpy.float64), 360.0)
    return numpy.minimum(d, 360.0 - d)


def match_picks(picked: Any, truth: Any, tol_px: float = 2.0) -> dict[str, Any]:
    """One-to-one matching of picks to true positions within a tolerance (host NumPy).

    A pick and a true particle match when each is the other's nearest neighbour and they are at
    most ``tol_px`` apart (Euclidean). The full ``(P, N)`` distance matrix is built: fine for
    thousands of picks.

    Parameters
    ----------
    picked : array-like, shape (P, 2)
        Picked ``(y, x)``.
    truth : array-like, shape (N, 2)
        True ``(y, x)``.
    tol_px : float
        Largest matching distance, pixels.

    Returns
    -------
    dict
        ``recall`` (matched / N), ``precision`` (matched / P) (1.0 for an empty denominator),
        ``pairs`` (M, 2) int64 ``[pick index, truth index]``, ``distances`` (M,) float64.
    """
    p = numpy.asarray(to_host(picked), dtype=numpy.float64).reshape(-1, 2)
    t = numpy.asarray(to_host(truth), dtype=numpy.float64).reshape(-1, 2)
    if len(p) == 0 or len(t) == 0:
        pairs = numpy.zeros((0, 2), dtype=numpy.int64)
        distances = numpy.zeros(0)
    else:
        dist = numpy.sqrt(((p[:, None, :] - t[None, :, :]) ** 2).sum(axis=-1))
        nearest_truth = dist.argmin(axis=1)
        nearest_pick = dist.argmin(axis=0)
        pick_index = numpy.arange(len(p))
        mutual = nearest_pick[nearest_truth] == pick_index
        distances_all = dist[pick_index, nearest_truth]
        ok = mutual & (distances_all <= tol_px)
        pairs = numpy.stack([pick_index[ok], nearest_truth[ok]], axis=1).astype(numpy.int64)
        distances = distances_all[ok]
    matched = len(pairs)
    return {
        "recall": matched / len(t) if len(t) else 1.0,
        "precision": matched / len(p) if len(p) else 1.0,
        "pairs": pairs,
        "distances": distances,
    }
