"""Workflow steps 1-4 with their files: patch motion, patch CTF, picking, extraction.

Every step takes the :class:`Chain` (where files live, the sizes, the array module), reads its
inputs from disk, writes its outputs there, and records spans on ``st`` (a SubTimings).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.cs import make_dataset, read_cs, write_cs
from pytest_cryobench.data.maps import write_map
from pytest_cryobench.data.workflow import OPTICS
from pytest_cryobench.kernels.array_api import to_host
from pytest_cryobench.profiles import WorkflowSize

STEPS = ("motion", "ctf", "picking", "extraction", "classify2d", "abinitio", "refinement")
EXPOSURES_CS = "ctf/exposures.cs"
PATCH_DEFOCUS_JSON = "ctf/patch_defocus.json"
CTF_PATCHES = 2
"""Patches per side of the per-patch defocus fit."""
PICKS_CS = "picking/picks.cs"
BLOB_PICKS_CS = "picking/blob_picks.cs"
PARTICLES_CS = "extract/particles.cs"
TEMPLATE_NOISE_SIGMAS = 3.0
"""A template pick's NCC is at least the map's median plus this many robust standard deviations
(:func:`pytest_cryobench.kernels.picking.noise_threshold`): the NCC of a true particle follows the
data's signal to noise (smoke: about 0.9; standard, with 480 counts per binned pixel against
smoke's 1280 and a band twice as fine: about 0.35), so one fixed NCC (0.7) picked nothing at standard."""
TEMPLATE_SEPARATION = 0.45
"""Least distance between template picks, boxes (Chebyshev, :func:`find_peaks`): below the planted
0.75 box (Euclidean), which can be 0.53 box in Chebyshev distance; 0.6 merged a fifth of standard's
neighbours."""
BLOB_THRESHOLD = 0.5


@dataclasses.dataclass
class Chain:
    """Where the chain's files are and what it runs on.

    ``movies`` and ``gain`` are the generated inputs, ``work`` the job directory, ``size`` the
    profile's sizes, ``xp`` the array module, ``seed`` every random choice's seed.
    """

    movies: list[Path]
    gain: Path
    work: Path
    size: WorkflowSize
    xp: Any
    seed: int = 0

    def path(self, name: str) -> Path:
        p = self.work / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def work_apix(self) -> float:
        return self.size.apix * self.size.box / self.size.work_box


def read_mrc(path: Path) -> np.ndarray:
    """An image or stack of any shape from an MRC file, float32 (a damaged file: CryobenchError)."""
    import mrcfile

    from pytest_cryobench.errors import CryobenchError

    try:
        with mrcfile.open(path, mode="r", permissive=False) as mrc:
            return np.asarray(mrc.data, dtype=np.float32)
    except (ValueError, OSError) as exc:
        raise CryobenchError(f"{path}: cannot read this MRC file ({exc})") from None


def sum_name(i: int, weighted: bool) -> str:
    return f"motion/movie_{i:03d}_{'doseweighted' if weighted else 'sum'}.mrc"


def run_motion(chain: Chain, st: Any) -> list[dict[str, Any]]:
    """Patch motion of every movie: writes both sums and ``motion/movie_NNN_tracks.json``."""
    import tifffile

    from pytest_cryobench.kernels.patch_motion import host_tracks, patch_motion

    xp, size = chain.xp, chain.size
    with st.span("read_gain", "IO"):
        gain = xp.asarray(read_mrc(chain.gain))
    tracks = []
    for i, movie in enumerate(chain.movies):
        with st.span("read_movie", "IO"):
            frames = tifffile.imread(movie)
        with st.span("upload", "PCIe"):
            frames = xp.asarray(frames)
        with st.span("patch_motion", "GPU"):
            result = patch_motion(frames, gain, size.patches, size.apix, size.dose_per_frame / size.apix ** 2)
        with st.span("write_sums", "IO"):
            write_map(chain.path(sum_name(i, False)), to_host(result.summed), size.apix)
            write_map(chain.path(sum_name(i, True)), to_host(result.dose_weighted), size.apix)
            track = host_tracks(result)
            chain.path(f"motion/movie_{i:03d}_tracks.json").write_text(json.dumps(track))
        tracks.append(track)
    return tracks


def ctf_columns(fits: list[dict[str, float]]) -> dict[str, np.ndarray]:
    return {"ctf/df1_A": np.array([f["df1_A"] for f in fits], np.float32),
            "ctf/df2_A": np.array([f["df2_A"] for f in fits], np.float32),
            "ctf/df_angle_rad": np.array([f["df_angle_rad"] for f in fits], np.float32),
            **{f"ctf/{k}": np.full(len(fits), v, np.float32) for k, v in OPTICS.items()}}


def run_ctf(chain: Chain, st: Any, sums: list[Path]) -> list[dict[str, Any]]:
    """Patch CTF of every sum (whole-micrograph fit, per-patch defocus, then the micrograph's CTF
    refitted on the patches jointly, :func:`~pytest_cryobench.kernels.ctf_fit.refine_with_patches`);
    writes ``ctf/exposures.cs`` (CryoSPARC's ``ctf/*`` fields) and the
    per-patch defocus grids (``ctf/patch_defocus.json``, see :func:`read_patch_defocus`)."""
    from pytest_cryobench.kernels.ctf_fit import (
        fit_ctf,
        fit_patch_defocus,
        patch_centres,
        patch_spectra,
        refine_with_patches,
    )

    xp, size = chain.xp, chain.size
    fits = []
    for path in sums:
        with st.span("read_sum", "IO"):
            image = xp.asarray(read_mrc(path))
        with st.span("fit_ctf", "GPU"):
            fit = fit_ctf(image, size.apix, OPTICS)
        with st.span("fit_patches", "GPU"):
            spectra = patch_spectra(image, size.apix, CTF_PATCHES)  # once, for the patches and the refit
            grid = fit_patch_defocus(image, size.apix, OPTICS, fit, CTF_PATCHES, spectra=spectra)
            fit["patch_defocus_A"] = grid.tolist()
        with st.span("refine_tilted", "GPU"):
            fit.update(refine_with_patches(image, size.apix, OPTICS, fit, grid, spectra=spectra))
        cy, cx = patch_centres(image.shape, CTF_PATCHES)
        fit["patch_centres_y_px"], fit["patch_centres_x_px"] = cy.tolist(), cx.tolist()
        fits.append(fit)
    with st.span("write_patches", "IO"):
        chain.path(PATCH_DEFOCUS_JSON).write_text(json.dumps(
            [{k: f[k] for k in ("patch_centres_y_px", "patch_centres_x_px", "patch_defocus_A")} for f in fits]))
    with st.span("write_exposures", "IO"):
        write_cs(chain.path(EXPOSURES_CS), make_dataset({
            "micrograph_blob/path": np.array([str(p) for p in sums]),
            "micrograph_blob/shape": np.tile(np.array([size.size, size.size], np.uint32), (len(sums), 1)),
            "micrograph_blob/psize_A": np.full(len(sums), size.apix, np.float32),
            **ctf_columns(fits)}, uid_seed=chain.seed))
    return fits


def read_patch_defocus(chain: Chain) -> list[dict[str, list]]:
    """The per-patch defocus grids :func:`run_ctf` wrote: per micrograph ``patch_centres_y_px``
    ``(P,)``, ``patch_centres_x_px`` ``(P,)`` and ``patch_defocus_A`` ``(P, P)`` (mean defocus, Å)."""
    return json.loads((chain.work / PATCH_DEFOCUS_JSON).read_text())


def particle_defocus(grid: dict[str, list], y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mean defocus (Å) at micrograph positions ``(y, x)`` pixels, interpolated bilinearly in a
    patch grid (see :func:`read_patch_defocus`) and extrapolated linearly beyond its outer centres,
    as a tilted specimen's plane of defocus continues to the edges."""
    from scipy.interpolate import RegularGridInterpolator

    field = RegularGridInterpolator((grid["patch_centres_y_px"], grid["patch_centres_x_px"]),
                                    np.asarray(grid["patch_defocus_A"], np.float64), method="linear",
                                    bounds_error=False, fill_value=None)
    return field(np.column_stack([np.asarray(y, np.float64), np.asarray(x, np.float64)]))


def _binned(xp: Any, image: Any, factor: int) -> Any:
    """Fourier crop of an image by an integer factor (keeps the mean level per pixel)."""
    h, w = image.shape
    hb, wb = h // factor, w // factor
    f = xp.fft.rfft2(image)
    kept = xp.concatenate([f[: hb // 2, : wb // 2 + 1], f[h - hb // 2:, : wb // 2 + 1]])
    return xp.fft.irfft2(kept, s=(hb, wb)).astype(xp.float32) / factor ** 2


def _low_pass(xp: Any, image: Any, apix: float, resolution_A: float) -> Any:
    """The image without frequencies beyond ``1 / resolution_A`` (pickers work at low resolution)."""
    f = xp.fft.rfft2(image)
    k = xp.sqrt(xp.asarray(np.fft.fftfreq(image.shape[0], apix))[:, None] ** 2
                + xp.asarray(np.fft.rfftfreq(image.shape[1], apix))[None, :] ** 2)
    return xp.fft.irfft2(f * (k <= 1 / resolution_A), s=image.shape).astype(xp.float32)


def _picks_cs(path: Path, micrographs: list[Path], coords: list[np.ndarray], scores: list[np.ndarray],
              size: int, seed: int) -> None:
    n = [len(c) for c in coords]
    yx = np.concatenate(coords).astype(np.float64) if coords else np.zeros((0, 2))
    write_cs(path, make_dataset({
        "location/micrograph_path": np.repeat(np.array([str(m) for m in micrographs]), n),
        "location/micrograph_shape": np.tile(np.array([size, size], np.uint32), (sum(n), 1)),
        "location/center_x_frac": (yx[:, 1] / size).astype(np.float32),
        "location/center_y_frac": (yx[:, 0] / size).astype(np.float32),
        "pick_stats/ncc_score": np.concatenate(scores).astype(np.float32)}, uid_seed=seed))


def run_picking(chain: Chain, st: Any, sums: list[Path], exposures: np.ndarray,
                templates: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Template and blob picking on the dose-weighted sums binned 2x; writes both picks ``.cs``.

    ``templates``: ``(T, b, b)`` projections at the binned pixel size (positive density). The
    template picker filters them with each micrograph's CTF (from ``exposures``); the blob
    picker correlates with a Gaussian disc of the particle's size on the micrograph
    phase-flipped by the same CTF (a blob has no CTF of its own).
    """
    from pytest_cryobench.kernels.ctf import ctf_2d
    from pytest_cryobench.kernels.picking import pick

    xp, size = chain.xp, chain.size
    factor, b = 2, templates.shape[-1]
    apix = size.apix * factor
    radius = 0.3 * size.box / factor
    angles = np.arange(0.0, 360.0, 10.0)
    yy, xx = np.mgrid[0:b, 0:b] - b // 2
    blob = np.exp(-(yy ** 2 + xx ** 2) / (2 * (0.55 * radius) ** 2)).astype(np.float32)[None]
    found: dict[str, list[np.ndarray]] = {"template": [], "template_scores": [], "blob": [], "blob_scores": []}
    for i, path in enumerate(sums):
        with st.span("read_sum", "IO"):
            image = xp.asarray(read_mrc(path))
        with st.span("bin", "GPU"):
            mic = _low_pass(xp, _binned(xp, image, factor), apix, size.band_A)
            ctf = ctf_2d(mic.shape, apix, float(exposures["ctf/df1_A"][i]), float(exposures["ctf/df2_A"][i]),
                         float(exposures["ctf/df_angle_rad"][i]), xp=xp)
        with st.span("template_pick", "GPU"):
            t = pick(mic, xp.asarray(templates), angles, ctf, radius, int(TEMPLATE_SEPARATION * size.box / factor),
                     0.0, noise_sigmas=TEMPLATE_NOISE_SIGMAS)
        with st.span("blob_pick", "GPU"):
            flipped = xp.fft.irfft2(xp.fft.rfft2(mic) * xp.sign(ctf), s=mic.shape).astype(xp.float32)
            bl = pick(flipped, xp.asarray(blob), [0.0], None, radius, int(0.6 * size.box / factor), BLOB_THRESHOLD)
        found["template"].append(t["coords"] * factor)
        found["template_scores"].append(t["scores"])
        found["blob"].append(bl["coords"] * factor)
        found["blob_scores"].append(bl["scores"])
    with st.span("write_picks", "IO"):
        _picks_cs(chain.path(PICKS_CS), sums, found["template"], found["template_scores"], size.size, chain.seed)
        _picks_cs(chain.path(BLOB_PICKS_CS), sums, found["blob"], found["blob_scores"], size.size, chain.seed)
    return found


def crop_boxes(xp: Any, boxes: Any, m: int) -> Any:
    """Boxes ``(B, n, n)`` (origin at ``n // 2``) Fourier-cropped to ``m``."""
    n = boxes.shape[-1]
    f = xp.fft.fftshift(xp.fft.fft2(xp.fft.ifftshift(boxes, axes=(1, 2))), axes=(1, 2))
    c = n // 2 - m // 2
    f = f[:, c:c + m, c:c + m]
    return (xp.fft.fftshift(xp.fft.ifft2(xp.fft.ifftshift(f, axes=(1, 2))), axes=(1, 2)).real * (m / n) ** 2
            ).astype(xp.float32)


def run_extraction(chain: Chain, st: Any, sums: list[Path], picks: list[np.ndarray],
                   exposures: np.ndarray, patch_defocus: list[dict[str, list]] | None = None) -> Path:
    """Boxes at the picks (``(y, x)`` full-resolution pixels per sum), Fourier-cropped to the working
    box, normalised (background outside the particle circle: zero mean, unit variance); one MRC
    stack per micrograph and ``extract/particles.cs``.

    Each particle's ``ctf/*`` are its micrograph's, with the mean defocus taken from the
    micrograph's patch grid at the particle's position where ``patch_defocus`` is given (one grid
    per sum, :func:`read_patch_defocus`), as CryoSPARC's extraction after Patch CTF does.
    """
    xp, size = chain.xp, chain.size
    n, m = size.box, size.work_box
    yy, xx = np.mgrid[0:m, 0:m] - m // 2
    background = xp.asarray(np.hypot(yy, xx) > 0.4 * m)
    columns: dict[str, list] = {k: [] for k in ("blob/path", "blob/idx", "mic", "y", "x", "row")}
    for i, (path, coords) in enumerate(zip(sums, picks, strict=True)):
        with st.span("read_sum", "IO"):
            image = read_mrc(path)
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        keep = np.all((coords >= n // 2) & (coords <= size.size - n // 2), axis=1)
        coords = coords[keep]
        with st.span("cut_boxes", "CPU"):
            boxes = np.stack([image[y - n // 2:y + n // 2, x - n // 2:x + n // 2] for y, x in coords]) \
                if len(coords) else np.zeros((0, n, n), np.float32)
        with st.span("crop_normalise", "GPU"):
            small = crop_boxes(xp, xp.asarray(boxes), m) if len(coords) else xp.zeros((0, m, m), xp.float32)
            bg = small[:, background]
            small = (small - bg.mean(axis=1)[:, None, None]) / (bg.std(axis=1)[:, None, None] + 1e-12)
        name = f"extract/movie_{i:03d}_particles.mrc"
        with st.span("write_stack", "IO"):
            write_map(chain.path(name), to_host(small), chain.work_apix)
        columns["blob/path"] += [name] * len(coords)
        columns["blob/idx"] += list(range(len(coords)))
        columns["mic"] += [i] * len(coords)
        columns["y"] += coords[:, 0].tolist()
        columns["x"] += coords[:, 1].tolist()
    mic = np.array(columns["mic"], dtype=np.int64)
    count = len(mic)
    ctf = {k: np.asarray(exposures[k])[mic] for k in exposures.dtype.names if k.startswith("ctf/")}
    if patch_defocus is not None and count:
        with st.span("particle_defocus", "CPU"):
            y, x = np.array(columns["y"], np.float64), np.array(columns["x"], np.float64)
            local = np.empty(count)
            for i, grid in enumerate(patch_defocus):
                rows = mic == i
                local[rows] = particle_defocus(grid, y[rows], x[rows])
            half = (ctf["ctf/df1_A"].astype(np.float64) - ctf["ctf/df2_A"]) / 2
            ctf["ctf/df1_A"], ctf["ctf/df2_A"] = (local + half).astype(np.float32), (local - half).astype(np.float32)
    out = chain.path(PARTICLES_CS)
    with st.span("write_cs", "IO"):
        write_cs(out, make_dataset({
            "blob/path": np.array(columns["blob/path"] or [""])[:count],
            "blob/idx": np.array(columns["blob/idx"], np.uint32),
            "blob/shape": np.tile(np.array([m, m], np.uint32), (count, 1)),
            "blob/psize_A": np.full(count, chain.work_apix, np.float32),
            "location/micrograph_uid": mic.astype(np.uint64),
            "location/micrograph_shape": np.tile(np.array([size.size, size.size], np.uint32), (count, 1)),
            "location/center_x_frac": (np.array(columns["x"], np.float64) / size.size).astype(np.float32),
            "location/center_y_frac": (np.array(columns["y"], np.float64) / size.size).astype(np.float32),
            **ctf}, uid_seed=chain.seed + 7))
    return out


def read_particles(chain: Chain, cs_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images (P, m, m) float32, dataset)`` from a particles ``.cs`` and its stacks."""
    data = read_cs(cs_path, required=("blob/path", "blob/idx", "ctf/df1_A"))
    stacks: dict[str, np.ndarray] = {}
    images = []
    for path, idx in zip(data["blob/path"], data["blob/idx"], strict=True):
        name = path.decode() if isinstance(path, bytes) else str(path)
        if name not in stacks:
            stack = read_mrc(chain.work / name)
            stacks[name] = stack[None] if stack.ndim == 2 else stack
        images.append(stacks[name][int(idx)])
    m = chain.size.work_box
    return (np.stack(images) if images else np.zeros((0, m, m), np.float32)), data
