"""Test movies with known shifts for the Live preprocessing requirement: a smooth specimen
displaced by planted per-frame shifts, written as TIFF, MRC or EER, with the gain and the sum a
perfect alignment gives (:func:`synthetic_shifted_movie`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass
class SyntheticMovie:
    """A movie written by :func:`synthetic_shifted_movie` and its truth.

    Attributes
    ----------
    path : Path
    fmt : str
    shifts : numpy.ndarray, shape (F, 2), float64
        The planted ``(y, x)`` displacement of each (output) frame, pixels of the decoded grid.
    gain : numpy.ndarray, shape (H, W), float32
        The gain reference that undoes the planted pixel sensitivities (ones without them).
    expected_sum : numpy.ndarray, shape (H, W), float64
        What a perfect alignment gives in expectation: ``F`` times the counts rate with the
        specimen at the mean shift.
    rate : numpy.ndarray, shape (H, W), float64
        Counts rate per frame of the unshifted specimen.
    eer_fractions : int
        EER: fractions to decode (one per planted shift); else the frames.
    eer_superres : int
    """

    path: Path
    fmt: str
    shifts: np.ndarray
    gain: np.ndarray
    expected_sum: np.ndarray
    rate: np.ndarray
    eer_fractions: int
    eer_superres: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.shifts), *self.rate.shape)


class _Specimen:
    """A smooth random periodic image, ``rate * exp(c z - c^2 / 2)`` with ``z`` a unit-variance
    Gaussian field of correlation length ``feature_px``; :meth:`rate_at` translates it exactly
    (the field is band-limited, and shifting it in Fourier space is a circular translation)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], rate: float, contrast: float,
                 feature_px: float) -> None:
        h, w = shape
        self.shape = shape
        self.ky = np.fft.fftfreq(h)[:, None]
        self.kx = np.fft.rfftfreq(w)[None, :]
        lowpass = np.exp(-2 * math.pi ** 2 * feature_px ** 2 * (self.ky ** 2 + self.kx ** 2))
        self.spectrum = np.fft.rfft2(rng.standard_normal(shape)) * lowpass
        self.spectrum[0, 0] = 0
        self.spectrum /= np.fft.irfft2(self.spectrum, s=shape).std()
        self.rate, self.contrast = float(rate), float(contrast)

    def rate_at(self, shift: Sequence[float]) -> np.ndarray:
        """Counts rate with the specimen displaced by ``shift = (y, x)`` pixels, float64 ``(H, W)``."""
        ramp = np.exp(-2j * math.pi * (self.ky * shift[0] + self.kx * shift[1]))
        field = np.fft.irfft2(self.spectrum * ramp, s=self.shape)
        return self.rate * np.exp(self.contrast * field - self.contrast ** 2 / 2)


_FORMAT_CODE = {"tiff": 1, "mrc": 2, "eer": 3}


def synthetic_shifted_movie(path: str | Path, fmt: str, width: int, height: int, frames: int,
                            shifts: Any, seed: int, *, rate: float | None = None, contrast: float = 0.6,
                            feature_px: float = 3.0, gain_spread: float = 0.0, eer_frames_per_fraction: int = 8,
                            eer_superres: int = 0) -> SyntheticMovie:
    """Write a movie of Poisson counts of a smooth specimen displaced by known shifts per frame.

    Frame ``i`` (EER: fraction ``i``) holds counts of ``rate * exp(c z(y - s_y, x - s_x) - c^2/2)``
    times a per-pixel sensitivity, ``z`` a smooth unit-variance Gaussian field (correlation length
    ``feature_px``), translated circularly and exactly also by fractional shifts. Written with the
    settings of the project's generators (:mod:`pytest_cryobench.data.movies`): LZW TIFF of uint8
    counts (clipped at 255), MRC mode 6 (uint16), EER 7-bit events through
    :func:`pytest_cryobench.data.eer_writer.write_eer`. Every random draw comes from
    ``numpy.random.default_rng([seed, format code])``.

    EER: each fraction is ``eer_frames_per_fraction`` hardware frames of ``width x height``
    physical pixels. The specimen is drawn on the decoding grid (``2**eer_superres`` finer); in
    every hardware frame a physical pixel gets one event with probability ``min(L, 1)``, ``L`` its
    share of the fraction's rate (the format holds at most one event per pixel and frame: keep
    ``L`` below 1 by enough hardware frames per fraction; the mean counts are then exact), at
    a sub-pixel drawn in proportion to the rate of its cells on the decoding grid (uniformly below
    it), so :func:`~pytest_cryobench.data.eer.decode_fractions` with ``n_fractions = frames`` and
    ``superres = eer_superres`` shows the planted shifts.

    Parameters
    ----------
    path : str or Path
        Output file (overwritten).
    fmt : {"tiff", "mrc", "eer"}
    width, height : int
        Frame size, pixels (EER: physical pixels).
    frames : int
        Frames (EER: fractions), at least 2.
    shifts : array_like, shape (frames, 2)
        ``(y, x)`` displacement of each frame's specimen, pixels of the decoded grid.
    seed : int
    rate : float, optional
        Mean counts per decoded pixel per frame (default: the project's 0.8 for TIFF, 1.0 for MRC,
        1.0 per fraction for EER).
    contrast, feature_px : float
        Specimen contrast (log scale) and correlation length, decoded pixels.
    gain_spread : float
        Pixel sensitivities uniform in ``1 +- gain_spread`` (0: none); :attr:`SyntheticMovie.gain`
        is their inverse.
    eer_frames_per_fraction, eer_superres : int
        EER only, as above.

    Returns
    -------
    SyntheticMovie
    """
    from pytest_cryobench.data.movies import COUNT_RATE

    fmt = str(fmt).lower()
    if fmt not in _FORMAT_CODE:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(_FORMAT_CODE)}")
    shifts = np.asarray(shifts, dtype=np.float64)
    frames = int(frames)
    if frames < 2 or shifts.shape != (frames, 2):
        raise ValueError(f"need frames >= 2 and shifts of shape ({frames}, 2), got {frames} and {shifts.shape}")
    superres = int(eer_superres) if fmt == "eer" else 0
    if superres not in (0, 1, 2):
        raise ValueError(f"eer_superres must be 0, 1 or 2, got {eer_superres}")
    scale = 2 ** superres
    grid = (int(height) * scale, int(width) * scale)
    if rate is None:
        rate = COUNT_RATE.get(fmt, 1.0)
    rng = np.random.default_rng([int(seed), _FORMAT_CODE[fmt]])
    specimen = _Specimen(rng, grid, rate, contrast, feature_px)
    sensitivity = np.ones(grid) if gain_spread <= 0 else 1 + gain_spread * rng.uniform(-1, 1, size=grid)
    path = Path(path)

    def rates() -> Iterator[np.ndarray]:
        for shift in shifts:
            yield specimen.rate_at(shift) * sensitivity

    from pytest_cryobench.data.movies import write_mrc_frames, write_tiff_frames

    if fmt == "tiff":
        write_tiff_frames(path, (np.minimum(rng.poisson(r), 255).astype(np.uint8) for r in rates()),
                          (frames, *grid))
    elif fmt == "mrc":
        write_mrc_frames(path, (rng.poisson(r).astype(np.uint16) for r in rates()), (frames, *grid))
    else:
        _write_eer_fractions(path, rates(), frames, rng, int(width), int(height), superres,
                             int(eer_frames_per_fraction))
    return SyntheticMovie(path, fmt, shifts, (1 / sensitivity).astype(np.float32),
                          frames * specimen.rate_at(shifts.mean(axis=0)), specimen.rate_at((0.0, 0.0)),
                          frames, superres)


def _write_eer_fractions(path: Path, rates: Iterator[np.ndarray], n_fractions: int, rng: np.random.Generator,
                         width: int, height: int, superres: int, per_fraction: int) -> None:
    """EER events whose fractions of ``per_fraction`` hardware frames follow ``rates`` (module notes
    of :func:`synthetic_shifted_movie`)."""
    from pytest_cryobench.data import eer, eer_writer

    scale = 2 ** superres
    free_bits = 2 - superres  # sub-pixel bits below the decoding grid, drawn uniformly

    def hardware_frames() -> Iterator[tuple[np.ndarray, ...]]:
        for fraction_rate in rates:
            cells = (fraction_rate / per_fraction).reshape(height, scale, width, scale).transpose(0, 2, 1, 3)
            cells = cells.reshape(height, width, scale * scale)
            pixel_rate = cells.sum(axis=2)
            p_event = np.minimum(pixel_rate, 1.0)
            cumulative = np.cumsum(cells, axis=2) / pixel_rate[:, :, None]
            for _ in range(per_fraction):
                y, x = np.nonzero(rng.random((height, width)) < p_event)
                if scale > 1:
                    u = rng.random(y.size)
                    cell = np.minimum((cumulative[y, x] < u[:, None]).sum(axis=1), scale * scale - 1)
                    cy, cx = np.divmod(cell, scale)
                else:
                    cy = cx = np.zeros(y.size, dtype=np.int64)
                low = rng.integers(0, 1 << free_bits, size=(2, y.size))
                yield x, y, (cx << free_bits) | low[1], (cy << free_bits) | low[0]

    n_hardware = n_fractions * per_fraction
    eer_writer.write_eer(path, hardware_frames(), width, height, {
        "numberOfFrames": n_hardware, "sensorPixelSize.width": 1.0e-10,
        "exposureTime": n_hardware / eer.FALCON4_FRAME_RATE})
