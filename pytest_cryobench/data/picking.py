"""Picking data: micrographs with particles planted at known positions, templates, CTF, datasets.

Generated into ``picking_test/`` under CryoSPARC's names: ``<name>_doseweighted.mrc`` per
micrograph, ``picking_templates.mrc`` (a stack), ``exposure_dataset_for_picking.cs`` (the CTF of
each micrograph) and ``templates_dataset_for_picking.cs``. The planted coordinates, templates
and angles are the ground truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.cs import make_dataset, write_cs
from pytest_cryobench.data.provision import Component
from pytest_cryobench.profiles import Profile

BOX = 64
APIX = 3.0
ANGLE_STEP_DEG = 10.0
NOISE_SIGMA = 0.2  # relative to the template peak, with the CTF applied
THRESHOLD = 0.2
CTF = {"df1_A": 25000.0, "df2_A": 24000.0, "df_angle_rad": 0.3, "accel_kv": 300.0, "cs_mm": 2.7,
       "amp_contrast": 0.1}
TEMPLATES_FILE = "picking_test/picking_templates.mrc"
EXPOSURES_FILE = "picking_test/exposure_dataset_for_picking.cs"
TEMPLATES_CS_FILE = "picking_test/templates_dataset_for_picking.cs"


def micrograph_name(i: int) -> str:
    return f"picking_test/synthetic_micrograph_{i:03d}_doseweighted.mrc"


def picking_component(profile: Profile, seed: int) -> Component:
    """Micrographs with planted particles (known answer: their coordinates)."""
    from pytest_cryobench.data.maps import write_map
    from pytest_cryobench.data.synthetic_micrographs import asymmetric_templates, planted_micrograph
    from pytest_cryobench.kernels.ctf import ctf_2d

    size, n_mics = profile.picking_size, profile.picking_micrographs
    files = (TEMPLATES_FILE, *[micrograph_name(i) for i in range(n_mics)], EXPOSURES_FILE, TEMPLATES_CS_FILE)
    templates = asymmetric_templates(profile.picking_templates, BOX, seed)

    def generate(name: str, tmp: Path, progress) -> dict[str, Any]:
        if name == TEMPLATES_FILE:
            write_map(tmp, templates, APIX)  # a stack of 2-D templates, as CryoSPARC stores them
            truth: dict[str, Any] = {"box": BOX, "n_templates": len(templates)}
        elif name.endswith("_doseweighted.mrc"):
            index = int(Path(name).name.split("_")[2])
            ctf = ctf_2d((size, size), APIX, CTF["df1_A"], CTF["df2_A"], CTF["df_angle_rad"],
                         accel_kv=CTF["accel_kv"], cs_mm=CTF["cs_mm"], amp_contrast=CTF["amp_contrast"])
            mic, coords, tidx, angles = planted_micrograph((size, size), templates, profile.picking_particles,
                                                           NOISE_SIGMA, seed + 1000 * (index + 1), ctf=ctf)
            write_map(tmp, mic[np.newaxis], APIX)
            truth = {"coords": np.asarray(coords).tolist(), "template": np.asarray(tidx).tolist(),
                     "angle_deg": np.asarray(angles).tolist()}
        elif name == EXPOSURES_FILE:
            write_cs(tmp, make_dataset({
                "micrograph_blob/path": np.array([micrograph_name(i) for i in range(n_mics)]),
                "micrograph_blob/shape": np.tile(np.array([size, size], dtype=np.uint32), (n_mics, 1)),
                "micrograph_blob/psize_A": np.full(n_mics, APIX, dtype=np.float32),
                **{f"ctf/{key}": np.full(n_mics, value, dtype=np.float32) for key, value in CTF.items()},
            }, uid_seed=seed))
            truth = {}
        else:
            n_t = len(templates)
            write_cs(tmp, make_dataset({
                "blob/path": np.array([TEMPLATES_FILE] * n_t),
                "blob/idx": np.arange(n_t, dtype=np.uint32),
                "blob/shape": np.tile(np.array([BOX, BOX], dtype=np.uint32), (n_t, 1)),
                "blob/psize_A": np.full(n_t, APIX, dtype=np.float32),
            }, uid_seed=seed + 1))
            truth = {}
        progress(1, 1)
        return truth

    return Component(name="picking_test", version=1,
                     params={"size": size, "micrographs": n_mics, "templates": profile.picking_templates,
                             "particles": profile.picking_particles, "box": BOX, "apix": APIX,
                             "noise_sigma": NOISE_SIGMA, "ctf": CTF},
                     files=files, estimated_bytes=n_mics * 4 * size * size + (4 << 20), generate=generate)
