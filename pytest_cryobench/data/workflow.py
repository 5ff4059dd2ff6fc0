"""The workflow group's data: dose-fractionated TIFF movies of a known specimen, and their truth.

Generated into ``workflow/``: ``movies/movie_NNN.tif`` (LZW uint8 counts, one page per frame),
``gain.mrc`` (the gain reference that multiplies raw counts) and ``truth_volume.mrc`` (the
volume at the working pixel size). Each movie's truth (in the manifest) holds its planted
whole-frame drift, its local deformation, its CTF (with its tilt, ``df_tilt_A``) and its
particles' positions and poses.

Image formation, per movie: particles (analytic, band-limited projections of the blob volume,
:mod:`pytest_cryobench.data.workflow_specimen`) at random non-overlapping positions plus a thin
amorphous layer (white above ``1 / ICE_FROM_A``, which gives Thon rings from 12.8 Å on: beyond
the particles' band at smoke, within its finest shells at standard and full), times the CTF,
whose defocus varies across the field as a tilted specimen's does (a plane, ``TILT_A`` from edge
to edge along a random direction), sets the expected dose
``dose (1 + contrast * image)``; frame ``f`` shows it displaced by ``s_f + D_f(x)``: a smooth
whole-frame drift ``s_f`` and a deformation ``D_f(x) = tau_f L (x - centre) / size`` (linear in
position, growing in time, zero mean over the field and over the movie), sampled with cubic
interpolation; raw counts are Poisson of that times the detector's sensitivity (``1 / gain``).
Shifts follow :mod:`pytest_cryobench.kernels.motion`: a frame with shift ``s`` shows the specimen
at ``x + s``. Both drift and deformation have zero mean over frames, so the aligned sum shows the
specimen where it was planted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.provision import Component
from pytest_cryobench.data.workflow_specimen import (
    blob_volume_model,
    particle_images,
    specimen_ctf,
    truth_volume,
)
from pytest_cryobench.profiles import Profile, WorkflowSize

DIR = "workflow"
GAIN_FILE = f"{DIR}/gain.mrc"
TRUTH_VOLUME_FILE = f"{DIR}/truth_volume.mrc"
OPTICS = {"accel_kv": 300.0, "cs_mm": 2.7, "amp_contrast": 0.1}
DEFOCUS_RANGE_A = (12_000.0, 24_000.0)
ASTIGMATISM_RANGE_A = (200.0, 1500.0)
DRIFT_PX = 6.0          # whole-frame drift over the movie, pixels (about)
DEFORMATION_PX = 2.0    # local deformation at the corners at the last frame, pixels (about)
TILT_A = 1600.0         # defocus change across the field's width along the tilt direction, Å
TILT_STEP_A = 50.0      # defocus step between the CTF images the tilted CTF is interpolated from, Å
CONTRAST = 0.25         # particle contrast per unit projected density
ICE_SIGMA = 0.5        # amorphous layer, relative to the particles' peak
# The amorphous layer's Thon rings start at this resolution, Å, whatever the particles' band: a
# layer only beyond an 8 Å band (standard) left CTF fitting nothing but dense rings past 6.4 Å,
# which the planted tilt washes out over a whole micrograph (docs/design.md, workflow data).
ICE_FROM_A = 12.8
MARGIN = 24             # canvas margin around the field of view, pixels
GENERATOR_VERSION = 3   # 3: the layer from ICE_FROM_A (it was 1.25 / band_A: the same at smoke)


def movie_name(i: int) -> str:
    return f"{DIR}/movies/movie_{i:03d}.tif"


def specimen_model(size: WorkflowSize, seed: int) -> dict[str, np.ndarray]:
    """The blob volume: about 60 Å across at every profile (``sigma`` 3 Å)."""
    return blob_volume_model(32, 0.3 * size.box * size.apix, 3.0, seed)


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)


def _positions(rng: np.random.Generator, size: WorkflowSize) -> np.ndarray:
    """Non-overlapping ``(y, x)`` centres at least ``0.75 box`` apart and ``box/2 + 2`` from edges."""
    lo, hi, gap = size.box // 2 + 2, size.size - size.box // 2 - 2, 0.75 * size.box
    kept: list[np.ndarray] = []
    for _ in range(200 * size.particles):
        p = rng.uniform(lo, hi, 2)
        if all(np.hypot(*(p - q)) >= gap for q in kept):
            kept.append(p)
            if len(kept) == size.particles:
                break
    return np.array(kept)


def movie_plan(size: WorkflowSize, seed: int, index: int) -> dict[str, Any]:
    """Everything planted in movie ``index`` (host NumPy; JSON-able via :func:`plan_truth`)."""
    rng = np.random.default_rng([seed, 18, index])
    f = size.frames
    t = np.arange(f) - (f - 1) / 2
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    curve = rng.normal(size=2) * 0.3
    drift = (DRIFT_PX / f) * (np.outer(t, direction) + np.outer(t ** 2 / f, curve))
    drift -= drift.mean(axis=0)
    tau = t / ((f - 1) / 2)  # -1 .. 1, zero mean
    deformation = rng.uniform(-1, 1, (2, 2)) * DEFORMATION_PX  # (y, x) per unit (y, x) offset / size
    df_mean = rng.uniform(*DEFOCUS_RANGE_A)
    astig = rng.uniform(*ASTIGMATISM_RANGE_A)
    positions = _positions(rng, size)
    angle = float(rng.uniform(0, np.pi))
    rotations = _random_rotations(rng, len(positions))
    tilt_direction = float(rng.uniform(0, 2 * np.pi))
    return {"drift": drift, "tau": tau, "deformation": deformation,
            "df1_A": df_mean + astig / 2, "df2_A": df_mean - astig / 2, "df_angle_rad": angle,
            "df_tilt_A": TILT_A * np.array([np.sin(tilt_direction), np.cos(tilt_direction)]),
            "positions": positions, "rotations": rotations}


def plan_truth(plan: dict[str, Any]) -> dict[str, Any]:
    return {key: (value.tolist() if isinstance(value, np.ndarray) else value) for key, value in plan.items()}


def displacement(plan: dict[str, Any], frame: int, y: np.ndarray, x: np.ndarray, size: int) -> tuple[Any, Any]:
    """Planted ``(dy, dx)`` of ``frame`` at field positions ``(y, x)`` pixels: drift plus deformation."""
    drift, tau, m = np.asarray(plan["drift"]), np.asarray(plan["tau"]), np.asarray(plan["deformation"])
    u, v = (np.asarray(y) - size / 2) / size, (np.asarray(x) - size / 2) / size
    return (drift[frame, 0] + tau[frame] * (m[0, 0] * u + m[0, 1] * v),
            drift[frame, 1] + tau[frame] * (m[1, 0] * u + m[1, 1] * v))


def tilt_offset(plan: dict[str, Any], y: Any, x: Any, size: int) -> Any:
    """The planted tilt plane (Å) at field positions ``(y, x)`` pixels:
    ``df_tilt_A . ((y, x) - size / 2) / size``, zero at the field's centre."""
    g = np.asarray(plan["df_tilt_A"])
    return g[0] * (np.asarray(y) - size / 2) / size + g[1] * (np.asarray(x) - size / 2) / size


def local_defocus(plan: dict[str, Any], y: Any, x: Any, size: int) -> Any:
    """Planted mean defocus (Å) at field positions ``(y, x)`` pixels: the micrograph's mean defocus
    plus :func:`tilt_offset`."""
    return (plan["df1_A"] + plan["df2_A"]) / 2 + tilt_offset(plan, y, x, size)


def tilted_ctf_image(canvas: np.ndarray, size: WorkflowSize, plan: dict[str, Any]) -> np.ndarray:
    """``canvas`` (field plus ``MARGIN``) seen through the CTF at each pixel's planted defocus.

    The image is formed at defocus levels ``TILT_STEP_A`` apart spanning the field's range and
    interpolated linearly in defocus at every pixel (hat weights that sum to one): the phase step
    between levels is ``pi lam TILT_STEP_A s^2``, 0.09 rad at 6 Å, so the error is below 0.1%.
    """
    n = canvas.shape[0]
    coord = np.arange(n) - MARGIN
    offset = tilt_offset(plan, coord[:, None], coord[None, :], size.size)
    lo, hi = float(offset.min()), float(offset.max())
    levels = np.linspace(lo, hi, max(1, int(np.ceil((hi - lo) / TILT_STEP_A)) + 1))
    step = levels[1] - levels[0] if len(levels) > 1 else 1.0
    spectrum = np.fft.rfft2(canvas)
    image = np.zeros((n, n))
    for level in levels:
        weight = np.clip(1 - np.abs(offset - level) / step, 0, None) if len(levels) > 1 else 1.0
        ctf = specimen_ctf((n, n), size.apix, plan["df1_A"] + level, plan["df2_A"] + level, plan["df_angle_rad"],
                           OPTICS["accel_kv"], OPTICS["cs_mm"], OPTICS["amp_contrast"])
        image += weight * np.fft.irfft2(spectrum * ctf, s=(n, n))
    return image


def specimen_image(size: WorkflowSize, model: dict[str, np.ndarray], plan: dict[str, Any], seed: int,
                   index: int) -> np.ndarray:
    """The specimen through its tilted CTF on the canvas (field plus ``MARGIN``), float64, unit contrast."""
    rng = np.random.default_rng([seed, 19, index])
    n, box = size.size + 2 * MARGIN, size.box
    canvas = np.zeros((n, n))
    pos = np.asarray(plan["positions"]) + MARGIN
    whole = np.floor(pos).astype(int)
    frac = pos - whole
    images = particle_images(model, np.asarray(plan["rotations"]), frac[:, ::-1], box, size.apix, size.band_A)
    peak = float(np.abs(images).max())
    for (y, x), image in zip(whole, images, strict=True):
        canvas[y - box // 2:y + box // 2, x - box // 2:x + box // 2] += image / peak
    ice = np.fft.rfft2(rng.normal(size=(n, n)))
    k = np.hypot(np.fft.fftfreq(n, d=size.apix)[:, None], np.fft.rfftfreq(n, d=size.apix)[None, :])
    ice *= k > 1 / ICE_FROM_A
    layer = np.fft.irfft2(ice, s=(n, n))
    canvas += ICE_SIGMA * layer / layer.std()
    return tilted_ctf_image(canvas, size, plan)


def sensitivity(size: WorkflowSize, seed: int) -> np.ndarray:
    """Detector sensitivity per pixel (a ramp, per-pixel scatter, a weak column); gain = 1 / it."""
    rng = np.random.default_rng([seed, 20])
    y, x = np.mgrid[0:size.size, 0:size.size] / size.size
    s = (1 + 0.15 * (x - 0.5) - 0.08 * (y - 0.5)) * rng.uniform(0.93, 1.07, (size.size, size.size))
    s[:, size.size // 3] *= 0.8
    return s


def movie_frames(size: WorkflowSize, specimen: np.ndarray, plan: dict[str, Any], sens: np.ndarray, seed: int,
                 index: int):
    """Yield the movie's uint8 count frames one at a time."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng([seed, 21, index])
    yy, xx = np.mgrid[0:size.size, 0:size.size].astype(np.float64)
    for f in range(size.frames):
        dy, dx = displacement(plan, f, yy, xx, size.size)
        sample = map_coordinates(specimen, [yy - dy + MARGIN, xx - dx + MARGIN], order=3, mode="nearest")
        rate = size.dose_per_frame * sens * np.clip(1 + CONTRAST * sample, 0, None)
        yield np.minimum(rng.poisson(rate), 255).astype(np.uint8)


def workflow_component(profile: Profile, seed: int) -> Component:
    """Movies with planted drift, deformation, tilted CTF and particles; the gain; the true volume."""
    from pytest_cryobench.data.maps import write_map
    from pytest_cryobench.data.movies import write_tiff_frames

    size = profile.workflow
    model = specimen_model(size, seed)
    files = (GAIN_FILE, TRUTH_VOLUME_FILE, *[movie_name(i) for i in range(size.movies)])
    work_apix = size.apix * size.box / size.work_box

    def generate(name: str, tmp: Path, progress) -> dict[str, Any]:
        if name == GAIN_FILE:
            write_map(tmp, (1.0 / sensitivity(size, seed)).astype(np.float32), size.apix)
            truth: dict[str, Any] = {}
        elif name == TRUTH_VOLUME_FILE:
            write_map(tmp, truth_volume(model, size.work_box, work_apix, size.band_A), work_apix)
            truth = {"apix": work_apix, "band_A": size.band_A,
                     "model": {key: value.tolist() for key, value in model.items()}}
        else:
            index = int(Path(name).stem.split("_")[1])
            plan = movie_plan(size, seed, index)
            specimen = specimen_image(size, model, plan, seed, index)
            frames = movie_frames(size, specimen, plan, sensitivity(size, seed), seed, index)
            write_tiff_frames(tmp, frames, (size.frames, size.size, size.size))
            truth = plan_truth(plan)
        progress(1, 1)
        return truth

    return Component(name=DIR, version=GENERATOR_VERSION,
                     params={"size": [getattr(size, f) for f in size.__dataclass_fields__], "optics": OPTICS,
                             "contrast": CONTRAST, "ice": ICE_SIGMA, "ice_from_A": ICE_FROM_A, "drift": DRIFT_PX,
                             "deformation": DEFORMATION_PX, "tilt": TILT_A},
                     files=files, estimated_bytes=size.movies * size.frames * size.size ** 2 + (8 << 20),
                     generate=generate)
