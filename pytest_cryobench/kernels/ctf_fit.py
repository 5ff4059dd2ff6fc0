"""CTF estimation from a motion-corrected sum (CTFFIND-style: Rohou & Grigorieff 2015).

Algorithm (``docs/design.md``, workflow)
----------------------------------------
1. **Spectrum**: the mean periodogram of overlapping ``tile x tile`` tiles (Welch).
2. **Background**: subtract a Gaussian-smoothed copy (the smooth decay under the Thon rings)
   and divide by the smoothed absolute residual, leaving rings of unit size.
3. **1D fit**: the rotational average against ``CTF^2`` of an astigmatism-free model over a
   grid of defoci; the best normalised correlation within ``[1/low_A, 1/high_A]``.
4. **2D fit**: a grid search over mean defocus (around the 1D value), astigmatism and its
   angle, then a finer grid around the best; the score is the same correlation over the 2D
   band. The model is :func:`pytest_cryobench.kernels.ctf.ctf_at` (cryoSPARC's conventions).
5. **Patches**: per tile of a ``P x P`` grid, the mean defocus refitted with the astigmatism
   held at the micrograph's (CryoSPARC's patch CTF gives such a defocus landscape).
6. **Tilt-aware refinement**: mean defocus, astigmatism and angle refitted on the patches'
   spectra jointly, each patch's model shifted by its own defocus offset: one spectrum of a
   tilted field averages rings of different defoci, which biases step 4.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy

from pytest_cryobench.kernels.array_api import array_namespace, scipy_namespace_for, to_host
from pytest_cryobench.kernels.ctf import ctf_at


def tile_spectrum(image: Any, tile: int) -> Any:
    """Mean ``|rfft2|^2`` of tiles (half-overlapping, each minus its mean), shape ``(tile, tile//2+1)``."""
    xp = array_namespace(image)
    h, w = image.shape
    step = tile // 2
    tiles = [image[y:y + tile, x:x + tile] for y in range(0, h - tile + 1, step) for x in range(0, w - tile + 1, step)]
    stack = xp.stack(tiles).astype(xp.float32)
    stack = stack - stack.mean(axis=(1, 2), keepdims=True)
    return (xp.abs(xp.fft.rfft2(stack)) ** 2).mean(axis=0)


def flatten_spectrum(spectrum: Any, sigma_px: float) -> Any:
    """The spectrum minus its smooth background, over its smoothed absolute residual (full
    centred layout is used for smoothing, the result is back on the ``rfft2`` grid)."""
    xp = array_namespace(spectrum)
    ndimage = scipy_namespace_for(xp, "ndimage")
    n = spectrum.shape[0]
    full = xp.fft.fftshift(xp.log(_full(xp, spectrum) + 1e-12))
    residual = full - ndimage.gaussian_filter(full, sigma_px, mode="wrap")
    scale = ndimage.gaussian_filter(xp.abs(residual), sigma_px, mode="wrap") + 1e-6
    flat = xp.fft.ifftshift(residual / scale)
    return flat[:, : n // 2 + 1]


def _full(xp: Any, half: Any) -> Any:
    """The full ``(n, n)`` spectrum from its ``rfft2`` half (Hermitian symmetry of a power spectrum)."""
    n = half.shape[0]
    mirrored = half[(-xp.arange(n)) % n][:, 1:n // 2][:, ::-1]
    return xp.concatenate([half, mirrored], axis=1)


def _grid(xp: Any, n: int, apix: float) -> tuple[Any, Any]:
    ky = xp.asarray(numpy.fft.fftfreq(n, d=apix))[:, None] * xp.ones((1, n // 2 + 1))
    kx = xp.asarray(numpy.fft.rfftfreq(n, d=apix))[None, :] * xp.ones((n, 1))
    return ky, kx


def _scores(flat_band: Any, kx: Any, ky: Any, df1: Any, df2: Any, angle: Any, optics: dict[str, float]) -> Any:
    """Normalised correlation of the flattened band with ``CTF^2`` of each candidate ``(C,)``."""
    xp = array_namespace(flat_band)
    model = ctf_at(kx[None], ky[None], df1[:, None], df2[:, None], angle[:, None], accel_kv=optics["accel_kv"],
                   cs_mm=optics["cs_mm"], amp_contrast=optics["amp_contrast"], dtype=xp.float32) ** 2
    model = model - model.mean(axis=1, keepdims=True)
    data = flat_band - flat_band.mean()
    return (model @ data) / (xp.sqrt((model ** 2).sum(axis=1) * (data ** 2).sum()) + 1e-12)


def _all_scores(xp: Any, flat_band: Any, kx: Any, ky: Any, df1: numpy.ndarray, df2: numpy.ndarray,
                angle: numpy.ndarray, optics: dict[str, float], chunk: int = 2048) -> numpy.ndarray:
    """:func:`_scores` of every candidate ``(C,)`` (host), ``chunk`` candidates at a time."""
    scores = []
    for lo in range(0, len(df1), chunk):
        sl = slice(lo, lo + chunk)
        scores.append(to_host(_scores(flat_band, kx, ky, xp.asarray(df1[sl]), xp.asarray(df2[sl]),
                                      xp.asarray(angle[sl]), optics)))
    return numpy.concatenate(scores)


def _best(xp: Any, flat_band: Any, kx: Any, ky: Any, df1: numpy.ndarray, df2: numpy.ndarray,
          angle: numpy.ndarray, optics: dict[str, float]) -> tuple[int, float]:
    scores = _all_scores(xp, flat_band, kx, ky, df1, df2, angle, optics)
    i = int(numpy.argmax(scores))
    return i, float(scores[i])


def _grid_search(scores_of: Callable[[numpy.ndarray, numpy.ndarray, numpy.ndarray], numpy.ndarray],
                 means: numpy.ndarray, astigs: numpy.ndarray,
                 angles: numpy.ndarray) -> tuple[tuple[float, float, float], float]:
    """The best ``(mean, astigmatism, angle)`` of a grid and its score; ``scores_of(df1, df2,
    angle)`` scores every candidate (``df1 = mean + astig / 2``, ``df2 = mean - astig / 2``)."""
    m, a, t = (g.ravel() for g in numpy.meshgrid(means, astigs, angles, indexing="ij"))
    scores = scores_of(m + a / 2, m - a / 2, t)
    j = int(numpy.argmax(scores))
    return (float(m[j]), float(a[j]), float(t[j])), float(scores[j])


def fit_ctf(image: Any, apix: float, optics: dict[str, float], *, tile: int = 128, low_A: float = 30.0,
            high_A: float | None = None, df_range_A: tuple[float, float] = (5000.0, 40000.0)) -> dict[str, float]:
    """Defocus and astigmatism of a micrograph.

    Parameters
    ----------
    image : array, shape (H, W)
        The (not dose-weighted) motion-corrected sum.
    apix : float
        Pixel size, Å.
    optics : dict
        ``accel_kv``, ``cs_mm``, ``amp_contrast``.
    tile, low_A, high_A, df_range_A
        Tile size (pixels), fitted band (Å; ``high_A`` defaults to ``3 apix``), defocus range.

    Returns
    -------
    dict
        ``df1_A``, ``df2_A``, ``df_angle_rad`` (in ``[0, pi)``), ``score`` (the 2D correlation),
        ``df_1d_A``.
    """
    xp = array_namespace(image)
    high_A = 3.0 * apix if high_A is None else high_A
    flat = flatten_spectrum(tile_spectrum(image, tile), sigma_px=tile / 24)
    ky, kx = _grid(xp, tile, apix)
    k = xp.sqrt(kx ** 2 + ky ** 2)
    band = (k >= 1 / low_A) & (k <= 1 / high_A)
    fb, kxb, kyb = flat[band], kx[band], ky[band]
    dfs = numpy.arange(df_range_A[0], df_range_A[1], 50.0)
    zero = numpy.zeros_like(dfs)
    i, _ = _best(xp, fb, kxb, kyb, dfs, dfs, zero, optics)
    df0 = float(dfs[i])
    best = (df0, 0.0, 0.0)
    coarse = (df0 + numpy.arange(-800.0, 801.0, 100.0), numpy.arange(0.0, 2401.0, 150.0),
              numpy.radians(numpy.arange(0.0, 180.0, 10.0)))
    def scores_of(df1: numpy.ndarray, df2: numpy.ndarray, angle: numpy.ndarray) -> numpy.ndarray:
        return _all_scores(xp, fb, kxb, kyb, df1, df2, angle, optics)

    for level in range(2):
        if level == 0:
            means, astigs, angles = coarse
        else:
            means = best[0] + numpy.arange(-100.0, 101.0, 25.0)
            astigs = numpy.clip(best[1] + numpy.arange(-150.0, 151.0, 30.0), 0, None)
            angles = best[2] + numpy.radians(numpy.arange(-10.0, 10.5, 2.0))
        best, score = _grid_search(scores_of, means, astigs, angles)
    mean, astig, angle = best
    return {"df1_A": mean + astig / 2, "df2_A": mean - astig / 2, "df_angle_rad": float(angle % numpy.pi),
            "score": score, "df_1d_A": df0}


def patch_centres(shape: tuple[int, int], patches: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Centres ``(P,)`` in y and ``(P,)`` in x, pixels, of the ``P x P`` patches of
    :func:`fit_patch_defocus` on an image of ``shape`` (patches of ``shape // P``, from the corner)."""
    ph, pw = _patch_size(shape, patches)
    return (numpy.arange(patches) + 0.5) * ph, (numpy.arange(patches) + 0.5) * pw


def patch_tile(shape: tuple[int, int], patches: int) -> int:
    """Welch tile side (pixels) of :func:`fit_patch_defocus`: the largest power of two within a
    quarter of the patch's shorter side, at least 64 (512^2 in 2 x 2 patches: 64; 2048^2: 256)."""
    side = min(_patch_size(shape, patches))
    return max(64, 1 << max(0, (side // 4).bit_length() - 1))


def _patch_size(shape: tuple[int, int], patches: int) -> tuple[int, int]:
    """Height and width (pixels) of each of the ``P x P`` patches: ``shape // P``, from the corner."""
    return shape[0] // patches, shape[1] // patches


@dataclasses.dataclass(frozen=True)
class PatchSpectra:
    """Flattened Welch spectra of the ``P x P`` patches of a micrograph (:func:`patch_spectra`).

    Attributes
    ----------
    flats : list of array, each shape (B,)
        Each patch's flattened spectrum over the fitted band, raster order (row of patches first).
    kx, ky : array, shape (B,)
        The band's spatial frequencies, 1/Å.
    patches : int
        ``P``.
    """

    flats: list[Any]
    kx: Any
    ky: Any
    patches: int


def patch_spectra(image: Any, apix: float, patches: int, *, tile: int | None = None, low_A: float = 30.0,
                  high_A: float | None = None) -> PatchSpectra:
    """The patches' spectra that :func:`fit_patch_defocus` and :func:`refine_with_patches` fit;
    compute them once and pass them to both. ``tile`` defaults to :func:`patch_tile`, ``high_A``
    to ``3 apix``; the band is ``[1/low_A, 1/high_A]``."""
    xp = array_namespace(image)
    high_A = 3.0 * apix if high_A is None else high_A
    ph, pw = _patch_size(image.shape, patches)
    tile = patch_tile(image.shape, patches) if tile is None else tile
    ky, kx = _grid(xp, tile, apix)
    k = xp.sqrt(kx ** 2 + ky ** 2)
    band = (k >= 1 / low_A) & (k <= 1 / high_A)
    flats = [flatten_spectrum(tile_spectrum(image[i * ph:(i + 1) * ph, j * pw:(j + 1) * pw], min(tile, ph, pw)),
                              sigma_px=tile / 24)[band] for i in range(patches) for j in range(patches)]
    return PatchSpectra(flats, kx[band], ky[band], patches)


def fit_patch_defocus(image: Any, apix: float, optics: dict[str, float], whole: dict[str, float], patches: int, *,
                      tile: int | None = None, low_A: float = 30.0, high_A: float | None = None,
                      spectra: PatchSpectra | None = None) -> numpy.ndarray:
    """Mean defocus per patch ``(P, P)`` Å, astigmatism fixed at ``whole``'s, within +-1500 Å of it.

    ``tile`` (pixels) defaults to the largest power of two within a quarter of the patch's side
    (:func:`patch_tile`): a patch's Welch spectrum then averages dozens of tiles, and a larger
    micrograph gets finer spectral sampling, which the dense Thon rings of a high defocus need
    (2048^2 at 1.5 Å, 22 000 Å: 64 px tiles sample a ring 2 times, and the fit fails by 1000 Å).
    ``spectra``: :func:`patch_spectra` of ``image`` already computed (then ``tile``, ``low_A`` and
    ``high_A`` are those it was computed with).
    """
    xp = array_namespace(image)
    spectra = patch_spectra(image, apix, patches, tile=tile, low_A=low_A, high_A=high_A) if spectra is None else spectra
    mean0 = (whole["df1_A"] + whole["df2_A"]) / 2
    half_astig = (whole["df1_A"] - whole["df2_A"]) / 2
    means = mean0 + numpy.arange(-1500.0, 1501.0, 20.0)
    angle = numpy.full_like(means, whole["df_angle_rad"])
    out = numpy.empty(len(spectra.flats))
    for n, flat in enumerate(spectra.flats):
        b, _ = _best(xp, flat, spectra.kx, spectra.ky, means + half_astig, means - half_astig, angle, optics)
        out[n] = means[b]
    return out.reshape(spectra.patches, spectra.patches)


def refine_with_patches(image: Any, apix: float, optics: dict[str, float], whole: dict[str, float],
                        patch_defocus: numpy.ndarray, *, tile: int | None = None, low_A: float = 30.0,
                        high_A: float | None = None, spectra: PatchSpectra | None = None) -> dict[str, float]:
    """The micrograph's defocus, astigmatism and angle refitted on its patches jointly.

    Each patch's spectrum is scored against the model at the candidate's mean defocus plus the
    patch's own offset (its :func:`fit_patch_defocus` value minus their mean), and the scores are
    summed: the tilt no longer spreads the rings. The grid is centred on the patches' mean (the
    defocus at the field's centre, for a plane) and ``whole``'s astigmatism and angle. Measured on
    the standard workflow micrographs (2048^2, 1.5 Å, a 1600 Å tilt): the whole-micrograph fit
    was up to 380 Å low and 10 degrees off; see ``docs/design.md``.

    Parameters
    ----------
    image : array, shape (H, W)
        The motion-corrected sum.
    apix : float
        Pixel size, Å.
    optics : dict
        ``accel_kv``, ``cs_mm``, ``amp_contrast``.
    whole : dict
        :func:`fit_ctf`'s result for the micrograph.
    patch_defocus : array, shape (P, P)
        :func:`fit_patch_defocus`'s result, Å.
    tile, low_A, high_A, spectra
        As :func:`fit_patch_defocus`.

    Returns
    -------
    dict
        ``df1_A``, ``df2_A``, ``df_angle_rad`` (in ``[0, pi)``), ``score`` (the patches' summed
        correlation).
    """
    xp = array_namespace(image)
    grid = numpy.asarray(patch_defocus, numpy.float64)
    if spectra is None:
        spectra = patch_spectra(image, apix, int(grid.shape[0]), tile=tile, low_A=low_A, high_A=high_A)
    offsets = (grid - grid.mean()).ravel()

    def scores_of(df1: numpy.ndarray, df2: numpy.ndarray, angle: numpy.ndarray) -> numpy.ndarray:
        total = numpy.zeros(len(df1))
        for flat, offset in zip(spectra.flats, offsets, strict=True):
            total += _all_scores(xp, flat, spectra.kx, spectra.ky, df1 + offset, df2 + offset, angle, optics)
        return total

    best = (float(grid.mean()), whole["df1_A"] - whole["df2_A"], whole["df_angle_rad"])
    for spans in (((200.0, 50.0), (600.0, 100.0), (15.0, 3.0)), ((40.0, 10.0), (80.0, 20.0), (3.0, 1.0))):
        (mean_span, mean_step), (astig_span, astig_step), (angle_span, angle_step) = spans
        means = best[0] + numpy.arange(-mean_span, mean_span + 1e-6, mean_step)
        astigs = numpy.unique(numpy.clip(best[1] + numpy.arange(-astig_span, astig_span + 1e-6, astig_step), 0, None))
        angles = best[2] + numpy.radians(numpy.arange(-angle_span, angle_span + 1e-6, angle_step))
        best, total = _grid_search(scores_of, means, astigs, angles)
    mean, astig, angle = best
    return {"df1_A": mean + astig / 2, "df2_A": mean - astig / 2, "df_angle_rad": float(angle % numpy.pi),
            "score": total / len(spectra.flats)}
