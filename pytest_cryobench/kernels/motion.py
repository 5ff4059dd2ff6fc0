"""Whole-frame (global) motion correction of a movie: one pass over the full-resolution frames.

What CryoSPARC Live's preprocessing workers (and MotionCor2's global step) do first to every
movie: estimate one translation per frame, undo it and sum the frames.

Conventions
-----------
Frames
    ``(F, H, W)`` real arrays indexed ``[frame, y, x]`` (row, column), gain-corrected counts.
Shifts
    ``(F, 2)`` float64 ``(y, x)`` in full-resolution pixels. Frame ``i`` with shift ``s_i`` shows
    the specimen displaced by ``+s_i``: ``frame_i(y, x) = specimen(y - s_y, x - s_x)`` (a shift of
    ``+3`` in x means the specimen appears 3 pixels further right, at larger column indices).
    Reported shifts are relative to their mean (the mean is subtracted), so the aligned sum shows
    the specimen where it is on average over the movie.
Correction
    Frame ``i`` is moved by ``-s_i`` by a Fourier phase ramp: its ``rfft2`` is multiplied by
    ``exp(+2 pi i (ky s_y + kx s_x))``, ``ky = fftfreq(H)``, ``kx = rfftfreq(W)`` (cycles per
    pixel). The translation is circular (periodic frames), exact for any sub-pixel shift.
Binning
    Shifts are searched on Fourier-cropped ("binned") frames whose longer side is at most
    ``bin_to`` pixels: the ``rfft2`` is cut to its lowest ``hb x wb`` frequencies (``hb``, ``wb``
    even). A binned pixel is ``H / hb`` by ``W / wb`` full-resolution pixels.
B-factor
    The cross-correlation spectra are weighted by ``exp(-bfactor |k|^2 / 4)``, ``|k|`` in cycles
    per *full-resolution* pixel, so ``bfactor`` is in full-resolution pixels squared (MotionCor2's
    ``-Bft`` in A^2 divided by the pixel size squared). The mean (k = 0) is dropped.

Algorithm
---------
1. **Pass 1** over the full-resolution frames, in chunks of frames: ``rfft2`` each chunk (one
   batched transform over the frame axis) and keep only the cropped spectra ``B_i``.
2. **Shift search**, in memory, on the binned spectra: with the current shifts undone
   (``A_i = B_i`` times its ramp), the reference of frame ``i`` is the sum of the *other* frames
   ``S - A_i`` (so frame ``i``'s own noise does not correlate with itself);
   ``XC_i = irfft2(conj(A_i) (S - A_i) w(k))`` (one batched transform) peaks at ``-r_i`` where
   ``r_i`` is the residual displacement of frame ``i``; the peak is refined to sub-pixel by a
   parabola through 3 points on each axis, searched within ``max_shift_px``. Shifts are updated
   ``s_i += r_i`` and the search repeats (at most ``iterations`` times) until no shift moves by
   more than ``tolerance`` binned pixels: the first reference is blurred by the unknown drift, and
   the repetitions sharpen it. This costs no further pass over the full-resolution data.
3. **Pass 2** over the full-resolution frames, in chunks: ``rfft2``, multiply by the ramp of
   ``-s_i`` (separable: a column vector and a row vector per frame, in place), sum the chunk's
   spectra into one ``(H, W // 2 + 1)`` accumulator; one ``irfft2`` at the end gives the sum.

Memory
------
Beyond the input, the kernel holds one chunk of ``c`` frames as float32 and its spectra
(``c * H * W * 4`` bytes plus ``c * H * (W // 2 + 1) * 8``), the ``F`` binned spectra
(``F * hb * (wb // 2 + 1) * 8`` bytes, and about three times that during the search) and the
full-resolution sum spectrum. A K3 super-resolution movie (70 frames of 11520 x 8184) is 26 GB as
float32, too much for the 11 GB GPUs that CryoSPARC Live asks for; with ``chunk_frames=1`` one
frame's work is about 0.75 GB (plus the FFT library's workspace) and the binned spectra
(726 x 1024) 0.2 GB. The price of bounded memory is that every frame is transformed twice at full
resolution (passes 1 and 2).
:class:`GlobalAligner` takes the chunks one at a time so a caller can stream them (see
:func:`pytest_cryobench.requirements.live.preprocess_movie`); :func:`align_frames` does both passes over an
array it is given.

All kernels take the array module from their inputs (:func:`~pytest_cryobench.kernels.array_api.array_namespace`);
the shifts come back as host NumPy, the aligned sum on the input's backend.
"""

from __future__ import annotations

import dataclasses
import math
from types import ModuleType
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, to_host

DEFAULT_BIN_TO = 1024
"""Longer side of the binned frames the shifts are searched on, pixels."""

DEFAULT_MAX_SHIFT_PX = 100.0
"""Largest shift searched, full-resolution pixels per axis (clamped to the binned frame)."""

DEFAULT_BFACTOR = 500.0
"""B-factor of the search, full-resolution pixels squared (MotionCor2's global 500 A^2 at 1 A/px)."""

DEFAULT_ITERATIONS = 10
DEFAULT_TOLERANCE = 0.01
"""Stop the search when no shift moves by more than this, binned pixels."""

DEFAULT_CHUNK_BYTES = {"numpy": 256 << 20, "cupy": 2 << 30}
"""Working-memory budget of one chunk of full-resolution frames (float32 plus spectra), bytes."""


@dataclasses.dataclass
class MotionResult:
    """The outcome of :func:`align_frames`.

    Attributes
    ----------
    shifts : numpy.ndarray, shape (F, 2), float64
        ``(y, x)`` displacement of each frame, full-resolution pixels, relative to the mean (see
        the module conventions).
    aligned_sum : array, shape (H, W), float32
        Sum of the frames with their shifts undone, on the input's backend.
    binned_shape : tuple of int
        ``(hb, wb)``: the frames the shifts were searched on.
    iterations : int
        Search iterations run.
    """

    shifts: numpy.ndarray
    aligned_sum: Any
    binned_shape: tuple[int, int]
    iterations: int


def binned_shape(shape: tuple[int, int], bin_to: int) -> tuple[int, int]:
    """``(hb, wb)`` of the Fourier-cropped frames: the longer side at most ``bin_to``, both even.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the full-resolution frames, pixels.
    bin_to : int
        Largest side of the binned frames, pixels (at least 8).

    Returns
    -------
    tuple of int
        ``(H, W)`` itself when it already fits (no binning; odd sizes are then kept), else the
        size scaled by ``bin_to / max(H, W)`` and rounded to even numbers.
    """
    h, w = int(shape[0]), int(shape[1])
    if bin_to < 8:
        raise ValueError(f"bin_to must be at least 8 pixels, got {bin_to}")
    if max(h, w) <= bin_to:
        return h, w
    factor = max(h, w) / bin_to
    hb = min(h, max(4, 2 * int(h / factor / 2)))
    wb = min(w, max(4, 2 * int(w / factor / 2)))
    return hb, wb


def crop_spectrum(spectrum: Any, shape: tuple[int, int], binned: tuple[int, int]) -> Any:
    """Cut ``rfft2`` spectra of ``shape`` frames to the lowest frequencies of ``binned`` frames.

    Parameters
    ----------
    spectrum : complex array, shape (..., H, W // 2 + 1)
        ``rfft2`` of frames of ``shape = (H, W)``.
    shape, binned : tuple of int
        ``(H, W)`` and ``(hb, wb)``, ``hb <= H``, ``wb <= W``.

    Returns
    -------
    complex array, shape (..., hb, wb // 2 + 1)
        Rows ``ky = 0 .. hb // 2 - 1`` and ``-(hb - hb // 2) .. -1``; columns ``kx = 0 .. wb // 2``.
        A new array (the input may be freed); the input itself when nothing is cut.
    """
    xp = array_namespace(spectrum)
    h, _ = shape
    hb, wb = binned
    if (hb, wb) == tuple(shape):
        return spectrum
    low, high = hb // 2, hb - hb // 2
    cols = wb // 2 + 1
    out = xp.empty((*spectrum.shape[:-2], hb, cols), dtype=spectrum.dtype)
    out[..., :low, :] = spectrum[..., :low, :cols]
    out[..., low:, :] = spectrum[..., h - high:, :cols]
    return out


def _ramps(xp: ModuleType, shifts: Any, shape: tuple[int, int]) -> tuple[Any, Any]:
    """Phase ramps that move frames by ``-shifts``: ``(F, H, 1)`` and ``(F, 1, W // 2 + 1)`` complex64.

    ``shifts`` is ``(F, 2)`` float64 ``(y, x)`` in pixels of frames of ``shape``; the product of the
    two ramps is ``exp(+2 pi i (ky s_y + kx s_x))``.
    """
    h, w = shape
    s = xp.asarray(shifts, dtype=xp.float64)
    ky = xp.fft.fftfreq(h)
    kx = xp.fft.rfftfreq(w)
    ramp_y = xp.exp((2j * math.pi) * s[:, 0:1] * ky[None, :]).astype(xp.complex64)
    ramp_x = xp.exp((2j * math.pi) * s[:, 1:2] * kx[None, :]).astype(xp.complex64)
    return ramp_y[:, :, None], ramp_x[:, None, :]


def _search_weight(xp: ModuleType, binned: tuple[int, int], shape: tuple[int, int], bfactor: float) -> Any:
    """``exp(-bfactor |k|^2 / 4)`` on the binned half grid, |k| per full-resolution pixel; 0 at k = 0."""
    hb, wb = binned
    h, w = shape
    ky = xp.fft.fftfreq(hb) * (hb / h)
    kx = xp.fft.rfftfreq(wb) * (wb / w)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    weight = xp.exp(-float(bfactor) / 4.0 * k2).astype(xp.float32)
    weight[0, 0] = 0
    return weight


def _subpixel_peaks(xc: Any, radius: tuple[int, int]) -> Any:
    """Peak of each cross-correlation within ``|t| <= radius``, refined by parabolas.

    Parameters
    ----------
    xc : float array, shape (F, hb, wb)
        Circular cross-correlations, lag 0 at index ``[0, 0]``.
    radius : tuple of int
        ``(ry, rx)`` binned pixels, each at most ``n // 2 - 2``.

    Returns
    -------
    float64 array, shape (F, 2)
        ``(y, x)`` lag of each peak, binned pixels. The 3-point parabola on each axis moves the
        integer peak by ``(v[-1] - v[+1]) / (2 (v[-1] - 2 v[0] + v[+1]))``, clipped to +-0.5.
    """
    xp = array_namespace(xc)
    n_frames, hb, wb = xc.shape
    ry, rx = radius
    rows = xp.arange(-ry, ry + 1) % hb
    cols = xp.arange(-rx, rx + 1) % wb
    window = xc[:, rows[:, None], cols[None, :]]  # (F, 2 ry + 1, 2 rx + 1)
    flat = xp.argmax(window.reshape(n_frames, -1), axis=1)
    iy = flat // (2 * rx + 1) - ry
    ix = flat % (2 * rx + 1) - rx
    frame = xp.arange(n_frames)[:, None]
    step = xp.arange(-1, 2)[None, :]
    vy = xc[frame, (iy[:, None] + step) % hb, (ix % wb)[:, None]].astype(xp.float64)  # (F, 3)
    vx = xc[frame, (iy % hb)[:, None], (ix[:, None] + step) % wb].astype(xp.float64)

    def vertex(v: Any) -> Any:
        curvature = v[:, 0] - 2 * v[:, 1] + v[:, 2]
        safe = xp.where(curvature < 0, curvature, -1.0)
        return xp.where(curvature < 0, xp.clip(0.5 * (v[:, 0] - v[:, 2]) / safe, -0.5, 0.5), 0.0)

    return xp.stack([iy + vertex(vy), ix + vertex(vx)], axis=1)


def estimate_shifts(spectra: Any, shape: tuple[int, int], *, max_shift_px: float = DEFAULT_MAX_SHIFT_PX,
                    bfactor: float = DEFAULT_BFACTOR, iterations: int = DEFAULT_ITERATIONS,
                    tolerance: float = DEFAULT_TOLERANCE) -> tuple[numpy.ndarray, int]:
    """Frame shifts from binned spectra, each frame against the sum of the others.

    Parameters
    ----------
    spectra : complex64 array, shape (F, hb, wb // 2 + 1)
        Cropped ``rfft2`` of every frame (:func:`crop_spectrum`), F >= 2.
    shape : tuple of int
        ``(H, W)`` of the full-resolution frames, pixels.
    max_shift_px : float
        Largest shift per axis searched, full-resolution pixels (also at most a binned half frame
        less two pixels).
    bfactor : float
        Search B-factor, full-resolution pixels squared (module notes).
    iterations : int
        At most this many searches (at least 1).
    tolerance : float
        Stop once no shift changes by more than this, binned pixels.

    Returns
    -------
    shifts : numpy.ndarray, shape (F, 2), float64
        ``(y, x)`` displacement of each frame relative to the mean, full-resolution pixels.
    iterations : int
        Searches run.
    """
    xp = array_namespace(spectra)
    fft = xp.fft
    n_frames, hb, half = spectra.shape
    # an uncropped width may be odd; a cropped one is even (binned_shape)
    wb = int(shape[1]) if half == shape[1] // 2 + 1 else 2 * (half - 1)
    if n_frames < 2:
        raise ValueError(f"alignment needs at least 2 frames, got {n_frames}")
    fy, fx = shape[0] / hb, shape[1] / wb
    radius = (max(1, min(int(max_shift_px / fy), hb // 2 - 2)),
              max(1, min(int(max_shift_px / fx), wb // 2 - 2)))
    weight = _search_weight(xp, (hb, wb), shape, bfactor)
    shifts = xp.zeros((n_frames, 2), dtype=xp.float64)  # binned pixels
    done = 0
    while done < max(1, int(iterations)):
        done += 1
        ramp_y, ramp_x = _ramps(xp, shifts, (hb, wb))
        aligned = spectra * ramp_y
        aligned *= ramp_x
        total = aligned.sum(axis=0)
        cross = (total[None] - aligned) * weight
        cross *= aligned.conj()
        del aligned
        xc = fft.irfft2(cross, s=(hb, wb), axes=(-2, -1))
        del cross
        residual = -_subpixel_peaks(xc, radius)
        del xc
        shifts = shifts + residual
        shifts -= shifts.mean(axis=0)
        if float(xp.abs(residual - residual.mean(axis=0)).max()) <= tolerance:
            break
    full = shifts * xp.asarray([fy, fx], dtype=xp.float64)
    full = full - full.mean(axis=0)
    return numpy.asarray(to_host(full), dtype=numpy.float64), done


def default_chunk_frames(xp: ModuleType, shape: tuple[int, int], n_frames: int) -> int:
    """Frames per chunk that fit :data:`DEFAULT_CHUNK_BYTES` (float32 frames plus spectra), at least 1."""
    per_frame = shape[0] * shape[1] * 4 + shape[0] * (shape[1] // 2 + 1) * 8
    budget = DEFAULT_CHUNK_BYTES.get(xp.__name__, DEFAULT_CHUNK_BYTES["numpy"])
    return max(1, min(int(n_frames), budget // per_frame))


class GlobalAligner:
    """Streaming global alignment: pass 1, :meth:`solve`, pass 2, :meth:`aligned_sum`.

    Feed float32 gain-corrected chunks of consecutive frames to :meth:`add_for_search` (pass 1),
    call :meth:`solve`, feed the same chunks again to :meth:`add_to_sum` (pass 2) and take
    :meth:`aligned_sum`. Only the binned spectra and the sum spectrum persist between calls.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``: where the spectra live.
    n_frames : int
        Frames of the movie.
    shape : tuple of int
        ``(H, W)`` of a frame, pixels.
    bin_to, max_shift_px, bfactor, iterations, tolerance
        As :func:`align_frames`.
    """

    def __init__(self, xp: ModuleType, n_frames: int, shape: tuple[int, int], *, bin_to: int = DEFAULT_BIN_TO,
                 max_shift_px: float = DEFAULT_MAX_SHIFT_PX, bfactor: float = DEFAULT_BFACTOR,
                 iterations: int = DEFAULT_ITERATIONS, tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.xp = xp
        self.n_frames = int(n_frames)
        self.shape = (int(shape[0]), int(shape[1]))
        self.binned = binned_shape(self.shape, bin_to)
        self.search = {"max_shift_px": max_shift_px, "bfactor": bfactor, "iterations": iterations,
                       "tolerance": tolerance}
        self.spectra = xp.empty((self.n_frames, self.binned[0], self.binned[1] // 2 + 1), dtype=xp.complex64)
        self.shifts: numpy.ndarray | None = None
        self.iterations = 0
        self._sum: Any = None

    def _check(self, chunk: Any, start: int) -> None:
        if chunk.ndim != 3 or tuple(chunk.shape[1:]) != self.shape:
            raise ValueError(f"chunk of shape {chunk.shape}, expected (c, {self.shape[0]}, {self.shape[1]})")
        if not 0 <= start <= self.n_frames - chunk.shape[0]:
            raise ValueError(f"frames {start}..{start + chunk.shape[0] - 1} outside 0..{self.n_frames - 1}")

    def add_for_search(self, chunk: Any, start: int) -> None:
        """Pass 1: keep the binned spectra of frames ``start .. start + c - 1`` (chunk ``(c, H, W)``)."""
        self._check(chunk, start)
        spectrum = self.xp.fft.rfft2(chunk, axes=(-2, -1))
        self.spectra[start:start + chunk.shape[0]] = crop_spectrum(spectrum, self.shape, self.binned)

    def solve(self) -> numpy.ndarray:
        """Search the shifts (:func:`estimate_shifts`); returns them, ``(F, 2)`` float64, host."""
        self.shifts, self.iterations = estimate_shifts(self.spectra, self.shape, **self.search)
        self.spectra = None  # free the binned spectra before pass 2
        return self.shifts

    def add_to_sum(self, chunk: Any, start: int) -> None:
        """Pass 2: undo the shifts of frames ``start ..`` (chunk ``(c, H, W)``) and add them to the sum."""
        if self.shifts is None:
            raise RuntimeError("call solve() before add_to_sum()")
        self._check(chunk, start)
        xp = self.xp
        spectrum = xp.fft.rfft2(chunk, axes=(-2, -1))
        ramp_y, ramp_x = _ramps(xp, self.shifts[start:start + chunk.shape[0]], self.shape)
        spectrum *= ramp_y
        spectrum *= ramp_x
        part = spectrum.sum(axis=0)
        if self._sum is None:
            self._sum = part
        else:
            self._sum += part

    def aligned_sum(self) -> Any:
        """The sum of the aligned frames, ``(H, W)`` float32 on the backend."""
        if self._sum is None:
            raise RuntimeError("no frames were added to the sum")
        return self.xp.fft.irfft2(self._sum, s=self.shape, axes=(-2, -1)).astype(self.xp.float32, copy=False)


def align_frames(frames: Any, *, gain: Any = None, bin_to: int = DEFAULT_BIN_TO,
                 max_shift_px: float = DEFAULT_MAX_SHIFT_PX, bfactor: float = DEFAULT_BFACTOR,
                 chunk_frames: int | None = None, iterations: int = DEFAULT_ITERATIONS,
                 tolerance: float = DEFAULT_TOLERANCE) -> MotionResult:
    """Global motion correction of one movie: shifts per frame and the aligned sum.

    Parameters
    ----------
    frames : array, shape (F, H, W)
        The movie on NumPy or CuPy, F >= 2: float32 gain-corrected frames, or raw counts of any
        real dtype together with ``gain``. Chunks of ``chunk_frames`` frames are converted to
        float32 (and multiplied by ``gain``) as they are used, so the input is never copied whole.
    gain : array, shape (H, W), optional
        Gain reference multiplying every frame, same backend.
    bin_to : int
        Longer side of the binned frames the shifts are searched on, pixels (default 1024).
    max_shift_px : float
        Largest shift per axis, full-resolution pixels (default 100).
    bfactor : float
        Search B-factor, full-resolution pixels squared (default 500).
    chunk_frames : int, optional
        Full-resolution frames transformed at a time (default: as many as fit
        :data:`DEFAULT_CHUNK_BYTES`). Bounds the working memory; see the module notes.
    iterations, tolerance
        Shift-search repetitions on the binned spectra (no further pass over the full-resolution
        frames) and their stopping rule in binned pixels.

    Returns
    -------
    MotionResult
        ``shifts`` (F, 2) float64 host NumPy ``(y, x)`` full-resolution pixels relative to their
        mean (positive: the specimen is displaced towards larger indices in that frame);
        ``aligned_sum`` (H, W) float32 on the input's backend.
    """
    xp = array_namespace(frames, gain)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (F, H, W), got shape {frames.shape}")
    n_frames, h, w = (int(v) for v in frames.shape)
    if gain is not None and tuple(gain.shape) != (h, w):
        raise ValueError(f"gain of shape {gain.shape} does not match frames of {(h, w)}")
    chunk = int(chunk_frames) if chunk_frames else default_chunk_frames(xp, (h, w), n_frames)
    aligner = GlobalAligner(xp, n_frames, (h, w), bin_to=bin_to, max_shift_px=max_shift_px, bfactor=bfactor,
                            iterations=iterations, tolerance=tolerance)
    gain32 = None if gain is None else gain.astype(xp.float32, copy=False)

    def prepared(start: int) -> Any:
        block = frames[start:start + chunk].astype(xp.float32, copy=gain32 is not None)
        if gain32 is not None:
            block *= gain32
        return block

    for start in range(0, n_frames, chunk):
        aligner.add_for_search(prepared(start), start)
    aligner.solve()
    for start in range(0, n_frames, chunk):
        aligner.add_to_sum(prepared(start), start)
    return MotionResult(aligner.shifts, aligner.aligned_sum(), aligner.binned, aligner.iterations)
