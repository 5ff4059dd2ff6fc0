"""Patch motion correction (MotionCor2-style): whole-frame shifts, then a smooth local field.

Conventions follow :mod:`pytest_cryobench.kernels.motion`: frames ``(F, H, W)``, shifts ``(y, x)``
pixels, a frame with shift ``s`` shows the specimen at ``x + s``, shifts relative to their mean.

Algorithm (Zheng et al. 2017, MotionCor2; ``docs/design.md``, workflow)
-----------------------------------------------------------------------
1. **Whole frame**: :func:`~pytest_cryobench.kernels.motion.align_frames` (gain applied) gives
   ``s_f``; every frame is moved by ``-s_f`` with a Fourier phase ramp.
2. **Patches**: a ``P x P`` grid of tiles of the globally aligned frames; each tile's frames are
   aligned the same way (no binning, small search), giving residual shifts ``r_{p,f}``.
3. **Smooth in time**: each patch's residual track is fitted by a cubic polynomial in the frame
   index; **smooth in space**: per frame, the smoothed residuals are fitted by a plane
   ``a + b u + c v`` over the patch centres ``(u, v)`` (MotionCor2 fits a polynomial in x, y
   and t; this is its first-order spatial term).
4. **Correct**: frame ``f`` is resampled at ``x + s_f + r_f(x)`` (cubic interpolation).
5. **Dose weighting** (Grant & Grigorieff 2015): frame ``f`` after an exposure ``E_f`` (e/Å^2) is
   weighted by ``exp(-E_f / (2 N_e(k)))``, ``N_e(k) = 0.245 k^-1.665 + 2.81`` (k in 1/Å), and the
   weighted sum is divided by ``sqrt(sum_f w_f^2)`` per frequency; the plain sum is returned too
   (for CTF estimation, as CryoSPARC does).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, scipy_namespace_for, to_host
from pytest_cryobench.kernels.motion import align_frames


@dataclasses.dataclass
class PatchMotionResult:
    """Outcome of :func:`patch_motion`.

    Attributes
    ----------
    shifts : float64 array, shape (F, 2)
        Whole-frame ``(y, x)`` shifts, pixels (host).
    patch_centres : float64 array, shape (P*P, 2)
        ``(y, x)`` centres of the patches, pixels (host).
    patch_shifts : float64 array, shape (P*P, F, 2)
        Total (whole-frame plus smoothed local) shift at each patch centre (host).
    local_model : float64 array, shape (F, 2, 3)
        Per frame and axis, the plane ``a + b u + c v`` of the local shifts, ``u, v`` the
        ``(y, x)`` offsets from the frame centre over the frame size.
    summed, dose_weighted : arrays, shape (H, W), float32
        Motion-corrected sum and dose-weighted sum, on the input's backend.
    """

    shifts: numpy.ndarray
    patch_centres: numpy.ndarray
    patch_shifts: numpy.ndarray
    local_model: numpy.ndarray
    summed: Any
    dose_weighted: Any


def _move(xp: Any, frames: Any, shifts: numpy.ndarray) -> Any:
    """Frames moved by ``-shifts`` (Fourier phase ramps, circular)."""
    _, h, w = frames.shape
    spectra = xp.fft.rfft2(frames)
    ky = xp.asarray(numpy.fft.fftfreq(h))[None, :, None]
    kx = xp.asarray(numpy.fft.rfftfreq(w))[None, None, :]
    s = xp.asarray(shifts)
    ramp = xp.exp(2j * numpy.pi * (ky * s[:, 0, None, None] + kx * s[:, 1, None, None]))
    return xp.fft.irfft2(spectra * ramp, s=(h, w)).astype(xp.float32)


def smooth_track(track: numpy.ndarray, degree: int = 3) -> numpy.ndarray:
    """Least-squares polynomial of ``degree`` in the frame index through ``track`` ``(F, 2)``."""
    f = numpy.arange(len(track), dtype=numpy.float64)
    degree = min(degree, len(track) - 1)
    basis = numpy.vander((f - f.mean()) / max(f.std(), 1.0), degree + 1)
    coef, *_ = numpy.linalg.lstsq(basis, track, rcond=None)
    return basis @ coef


def fit_planes(centres_uv: numpy.ndarray, residual: numpy.ndarray) -> numpy.ndarray:
    """Per frame and axis the plane ``a + b u + c v`` through ``residual`` ``(P, F, 2)``: ``(F, 2, 3)``."""
    basis = numpy.column_stack([numpy.ones(len(centres_uv)), centres_uv])  # (P, 3)
    coef, *_ = numpy.linalg.lstsq(basis, residual.reshape(len(centres_uv), -1), rcond=None)  # (3, F*2)
    return coef.T.reshape(residual.shape[1], 2, 3)


def critical_exposure(k: Any) -> Any:
    """Grant & Grigorieff's critical exposure ``N_e(k) = 0.245 k^-1.665 + 2.81``, e/Å^2 (k in 1/Å)."""
    xp = array_namespace(k)
    return 0.245 * xp.power(xp.maximum(k, 1e-6), -1.665) + 2.81


def dose_weights(xp: Any, shape: tuple[int, int], apix: float, exposure_per_frame: float, n_frames: int) -> Any:
    """Weights ``(F, H, W // 2 + 1)`` float32 of frames after ``(f + 1) * exposure_per_frame`` e/Å^2."""
    ky = xp.asarray(numpy.fft.fftfreq(shape[0], d=apix))[:, None]
    kx = xp.asarray(numpy.fft.rfftfreq(shape[1], d=apix))[None, :]
    ne = critical_exposure(xp.sqrt(ky ** 2 + kx ** 2))
    exposure = xp.asarray((numpy.arange(n_frames) + 1.0) * exposure_per_frame)[:, None, None]
    return xp.exp(-exposure / (2 * ne[None])).astype(xp.float32)


def patch_motion(frames: Any, gain: Any, patches: int, apix: float, exposure_per_frame: float, *,
                 max_local_px: float = 8.0, bfactor: float = 150.0) -> PatchMotionResult:
    """Whole-frame and patch motion of one movie, its corrected and dose-weighted sums.

    Parameters
    ----------
    frames : array, shape (F, H, W)
        Raw counts (any real dtype), NumPy or CuPy.
    gain : array, shape (H, W)
        Gain reference multiplying the counts.
    patches : int
        Patches per side (``patches^2`` in all).
    apix : float
        Pixel size, Å.
    exposure_per_frame : float
        Electrons per Å^2 per frame (dose weighting).
    max_local_px, bfactor
        Local search range (pixels) and search B-factor (pixels^2).
    """
    xp = array_namespace(frames, gain)
    ndimage = scipy_namespace_for(xp, "ndimage")
    n_frames, h, w = (int(v) for v in frames.shape)
    corrected = frames.astype(xp.float32) * gain.astype(xp.float32)[None]
    shifts = align_frames(corrected, bin_to=max(h, w), bfactor=bfactor).shifts
    aligned = _move(xp, corrected, shifts)
    ph, pw = h // patches, w // patches
    centres, residual = [], []
    for i in range(patches):
        for j in range(patches):
            tile = aligned[:, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw]
            found = align_frames(tile, bin_to=max(ph, pw), max_shift_px=max_local_px, bfactor=bfactor).shifts
            residual.append(smooth_track(found))
            centres.append(((i + 0.5) * ph, (j + 0.5) * pw))
    centres_a = numpy.array(centres)
    uv = (centres_a - numpy.array([h / 2, w / 2])) / numpy.array([h, w])
    planes = fit_planes(uv, numpy.array(residual))
    basis = numpy.column_stack([numpy.ones(len(uv)), uv])
    local_at_centres = numpy.einsum("pk,fak->pfa", basis, planes)
    patch_shifts = shifts[None] + local_at_centres
    yy, xx = xp.meshgrid(xp.arange(h, dtype=xp.float32), xp.arange(w, dtype=xp.float32), indexing="ij")
    u, v = (yy - h / 2) / h, (xx - w / 2) / w
    weights = dose_weights(xp, (h, w), apix, exposure_per_frame, n_frames)
    summed = xp.zeros((h, w), dtype=xp.float32)
    weighted = xp.zeros((h, w // 2 + 1), dtype=xp.complex64)
    for f in range(n_frames):
        (ay, by, cy), (ax, bx, cx) = planes[f]
        dy = float(shifts[f, 0] + ay) + by * u + cy * v
        dx = float(shifts[f, 1] + ax) + bx * u + cx * v
        frame = ndimage.map_coordinates(corrected[f], xp.stack([yy + dy, xx + dx]), order=3, mode="reflect")
        summed += frame
        weighted += weights[f] * xp.fft.rfft2(frame)
    dose_weighted = xp.fft.irfft2(weighted / xp.sqrt((weights ** 2).sum(axis=0)), s=(h, w)).astype(xp.float32)
    return PatchMotionResult(numpy.asarray(shifts), centres_a, patch_shifts, planes, summed, dose_weighted)


def host_tracks(result: PatchMotionResult) -> dict[str, list]:
    """The result's shift tracks as JSON-able lists."""
    return {"shifts": result.shifts.tolist(), "patch_centres": result.patch_centres.tolist(),
            "patch_shifts": to_host(result.patch_shifts).tolist(), "local_model": result.local_model.tolist()}
