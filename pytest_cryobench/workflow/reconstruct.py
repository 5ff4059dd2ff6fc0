"""Workflow steps 5-7 with their files: 2D classification, ab-initio, homogeneous refinement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.cs import make_dataset, write_cs
from pytest_cryobench.data.maps import write_map
from pytest_cryobench.engine.passes import EngineCase, PassConfig, run_pass
from pytest_cryobench.kernels import abinitio as ab
from pytest_cryobench.kernels import pose_search as ek
from pytest_cryobench.kernels.array_api import to_host
from pytest_cryobench.kernels.classify2d import shift_images
from pytest_cryobench.kernels.ctf import ctf_2d
from pytest_cryobench.kernels.fsc import fsc_maps, resolution_at
from pytest_cryobench.kernels.rotations import rotation_grid
from pytest_cryobench.workflow.preprocess import Chain

CASE = EngineCase.parse("memory_single_linear10_max_C1")


def ctf_params(data: np.ndarray) -> ek.CtfParams:
    return ek.CtfParams(np.asarray(data["ctf/df1_A"], np.float64), np.asarray(data["ctf/df2_A"], np.float64),
                        np.asarray(data["ctf/df_angle_rad"], np.float64))


def run_classify2d(chain: Chain, st: Any, images: np.ndarray, data: np.ndarray) -> dict[str, Any]:
    """Phase-flip with each particle's CTF, EM over classes, rotations and shifts; writes the
    class averages (``class2d/classes.mrc``) and ``class2d/particles.cs`` (``alignments2D/*``)."""
    from pytest_cryobench.kernels.classify2d import classify_2d

    xp, m = chain.xp, chain.size.work_box
    with st.span("phase_flip", "GPU"):
        x = xp.asarray(images)
        signs = xp.stack([xp.sign(ctf_2d((m, m), chain.work_apix, float(a), float(b), float(c), xp=xp))
                          for a, b, c in zip(data["ctf/df1_A"], data["ctf/df2_A"], data["ctf/df_angle_rad"],
                                             strict=True)])
        flipped = xp.fft.irfft2(xp.fft.rfft2(x) * signs, s=(m, m)).astype(xp.float32)
    with st.span("em_iterations", "GPU"):
        result = classify_2d(flipped, chain.size.classes, iterations=8, seed=chain.seed,
                             low_pass_radius=m * chain.work_apix / chain.size.band_A)
    with st.span("write_classes", "IO"):
        write_map(chain.path("class2d/classes.mrc"), to_host(result.averages), chain.work_apix)
        write_cs(chain.path("class2d/particles.cs"), make_dataset({
            "uid": data["uid"], "alignments2D/class": result.assignment.astype(np.uint32),
            "alignments2D/pose": np.radians(result.angles_deg[result.angle_index]).astype(np.float32),
            "alignments2D/shift": result.shift[:, ::-1].astype(np.float32)}))
    return {"averages": to_host(result.averages), "assignment": result.assignment,
            "signs_mean": to_host(xp.abs(signs).mean(axis=0))}


def _config(directions: int, psi: float, r: float, batch: int, apix: float, n: int) -> PassConfig:
    r = min(r, n // 2 - 1)
    return PassConfig(rotation_grid(directions, psi), ek.shift_grid(1), r, r, batch, apix)


def abinitio_shell(size: Any, box_A: float) -> float:
    """The ab-initio's band, shells of a box of ``box_A`` Å: about half the designed resolution
    (``box / (2 band) + 1``, at least 3); the ab-initio is checked to it."""
    return max(3.0, box_A / (2 * size.band_A) + 1)


def run_abinitio(chain: Chain, st: Any, images: np.ndarray, data: np.ndarray) -> np.ndarray:
    """SGD from a random volume over mini-batches at low resolution, on the particles Fourier-cropped
    to ``abinit_box``; the map (back at the working box) goes to ``abinit/volume.mrc``."""
    from pytest_cryobench.workflow.preprocess import crop_boxes

    xp, size = chain.xp, chain.size
    work_n = images.shape[-1]
    n = min(size.abinit_box, work_n)
    apix = chain.work_apix * work_n / n
    if n < work_n:
        with st.span("crop_particles", "GPU"):
            images = to_host(crop_boxes(xp, xp.asarray(images), n))
    shell = abinitio_shell(size, n * apix)
    config = _config(size.refine_directions // 4, 2 * size.refine_psi_deg, shell, size.abinit_batch, apix, n)
    ctf = ctf_params(data)
    rng = np.random.default_rng(chain.seed)
    mask = to_host(ab.sphere(n, 0.42 * n))
    volume = to_host(ab.initial_volume(n, chain.seed, shell))
    projected_std = float(volume.sum(axis=0).std())
    volume *= 0.5 * float(images.std()) / max(projected_std, 1e-12)
    velocity = np.zeros_like(volume)
    for it in range(size.abinit_iterations):
        rate = 0.8 if it < size.abinit_iterations // 2 else 0.4
        idx = np.sort(rng.choice(len(images), min(size.abinit_batch, len(images)), replace=False))
        with st.span("pose_search_insert", "GPU"):
            batch = run_pass(volume, ctf[idx], lambda lo, hi, idx=idx: images[idx[lo:hi]], len(idx), CASE, config, xp)
        with st.span("sgd_update", "GPU"):
            target = to_host(ab.low_pass_volume(xp.asarray(batch.volume), shell))
            volume, velocity = ab.sgd_step(volume, target, velocity, rate, 0.3)
            volume = np.maximum(volume, 0) * mask
    volume = to_host(ab.fourier_crop(xp.asarray(volume.astype(np.float32)), work_n))
    with st.span("write_map", "IO"):
        write_map(chain.path("abinit/volume.mrc"), volume, chain.work_apix)
    return volume


def run_refinement(chain: Chain, st: Any, images: np.ndarray, data: np.ndarray,
                   start: np.ndarray) -> dict[str, Any]:
    """Gold-standard refinement: even/odd halves refined independently from ``start`` low-passed
    to twice the designed resolution (where ab-initio is checked), each iteration's references
    filtered by their half-map FSC (:func:`~pytest_cryobench.kernels.abinitio.fsc_weighted`) and
    each particle recentred by the shift found (so +-1 px per iteration reaches further);
    writes the half maps and the map under ``refine/``."""
    xp, size = chain.xp, chain.size
    n, apix = images.shape[-1], chain.work_apix
    ctf = ctf_params(data)
    halves = [np.arange(0, len(images), 2), np.arange(1, len(images), 2)]
    shell = abinitio_shell(size, n * apix)
    config = _config(size.refine_directions, size.refine_psi_deg, n // 2 - 1, 64, apix, n)
    refs = [to_host(ab.low_pass_volume(xp.asarray(start), shell))] * 2
    curve, res = None, None
    images = images.copy()
    for _ in range(size.refine_iterations):
        maps = []
        for h, idx in enumerate(halves):
            with st.span("pose_search_insert", "GPU"):
                result = run_pass(refs[h], ctf[idx], lambda lo, hi, idx=idx: images[idx[lo:hi]], len(idx), CASE,
                                  config, xp)
            maps.append(result.volume)
            with st.span("recentre", "GPU"):  # the next search is centred on this one's shifts
                images[idx] = to_host(shift_images(xp.asarray(images[idx]), -config.shifts.shifts[result.shift]))
        with st.span("fsc_filter", "GPU"):
            curve = to_host(fsc_maps(xp.asarray(maps[0]), xp.asarray(maps[1])))
            res = resolution_at(curve, 0.143, n=n, apix=apix)
            refs = [to_host(ab.fsc_weighted(xp.asarray(v), curve)) for v in maps]
    with st.span("write_maps", "IO"):
        for h, v in enumerate(maps):
            write_map(chain.path(f"refine/half_{'AB'[h]}.mrc"), v, apix)
        write_map(chain.path("refine/map.mrc"), (maps[0] + maps[1]) / 2, apix)
    return {"halves": maps, "fsc": curve, "resolution": res}


def stack_path(chain: Chain, name: str) -> Path:
    return chain.work / name
