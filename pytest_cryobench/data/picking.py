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

from pytest_cryobench.data.cs import (
    BLOB_BLOCK,
    CTF_BLOCK,
    MICROGRAPH_BLOB_BLOCK,
    full_block_columns,
    make_dataset,
    read_cs,
    text_column,
    write_cs,
)
from pytest_cryobench.data.provision import Component
from pytest_cryobench.errors import CryobenchError
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
KERNEL_CTF_FIELDS = ("ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad", "ctf/accel_kv", "ctf/cs_mm", "ctf/amp_contrast")
"""The ``ctf`` fields the picking kernel uses (the others of CryoSPARC's block are not read)."""
MOTIONCORRECTED_DIR = "J2/motioncorrected"
"""Where CryoSPARC's exposures name their micrographs (``micrograph_blob/path``, project-relative)."""


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
        elif name == EXPOSURES_FILE:  # CryoSPARC's full field set; rows in reverse order of the names
            order = list(reversed(range(n_mics)))
            write_cs(tmp, make_dataset(full_block_columns(n_mics, (MICROGRAPH_BLOB_BLOCK, CTF_BLOCK), {
                "micrograph_blob/path": np.array([f"{MOTIONCORRECTED_DIR}/{Path(micrograph_name(i)).name}"
                                                  for i in order]),
                "micrograph_blob/shape": np.array([size, size], dtype=np.uint32),
                "micrograph_blob/psize_A": APIX,
                **{f"ctf/{key}": value for key, value in CTF.items()},
            }), uid_seed=seed))
            truth = {"micrograph_order": order}
        else:
            n_t = len(templates)
            write_cs(tmp, make_dataset(full_block_columns(n_t, (BLOB_BLOCK,), {
                "blob/path": np.array([TEMPLATES_FILE] * n_t), "blob/idx": np.arange(n_t, dtype=np.uint32),
                "blob/shape": np.array([BOX, BOX], dtype=np.uint32), "blob/psize_A": APIX,
            }), uid_seed=seed + 1))
            truth = {}
        progress(1, 1)
        return truth

    return Component(name="picking_test", version=2,  # 2: CryoSPARC's full field set
                     params={"size": size, "micrographs": n_mics, "templates": profile.picking_templates,
                             "particles": profile.picking_particles, "box": BOX, "apix": APIX,
                             "noise_sigma": NOISE_SIGMA, "ctf": CTF},
                     files=files, estimated_bytes=n_mics * 4 * size * size + (4 << 20), generate=generate)


def read_exposure_ctfs(cs_path: Path, micrographs: list[Path]) -> list[dict[str, float]]:
    """The CTF of each micrograph from CryoSPARC's exposure dataset, matched by file name.

    Each micrograph's row is the one whose ``micrograph_blob/path`` (project-relative, such as
    ``J2/motioncorrected/<name>``) ends in the micrograph's file name, whatever the rows' order.
    Only :data:`KERNEL_CTF_FIELDS` are read, by name (CryoSPARC's block also holds text and vector
    fields: ``ctf/type``, ``ctf/shift_A``, ``ctf/anisomag``, ...).

    Parameters
    ----------
    cs_path : Path
        ``exposure_dataset_for_picking.cs``.
    micrographs : list of Path
        The micrographs to pick on.

    Returns
    -------
    list of dict
        Per micrograph, ``{"df1_A", "df2_A", "df_angle_rad", "accel_kv", "cs_mm", "amp_contrast"}``
        as floats.

    Raises
    ------
    CryobenchError
        The file lacks a field the kernel needs, or a micrograph has no row, or more than one
        (the message names the file and the micrograph).
    """
    data = read_cs(cs_path, required=("micrograph_blob/path", *KERNEL_CTF_FIELDS))
    rows: dict[str, list[int]] = {}
    for i, blob in enumerate(text_column(data["micrograph_blob/path"]).tolist()):
        rows.setdefault(Path(blob).name, []).append(i)
    out = []
    for mic in micrographs:
        found = rows.get(Path(mic).name, [])
        if len(found) != 1:
            raise CryobenchError(f"{cs_path}: {len(found) or 'no'} exposure row(s) whose micrograph_blob/path ends "
                                 f"in {Path(mic).name}; each micrograph in {Path(mic).parent} needs exactly one")
        row = data[found[0]]
        out.append({field.split("/", 1)[1]: float(row[field]) for field in KERNEL_CTF_FIELDS})
    return out


def templates_at_pixel_size(templates: np.ndarray, templates_apix: float, apix: float) -> np.ndarray:
    """Templates resampled from their own pixel size to the micrographs', float32 (T, b', b').

    ``b' = round(b * templates_apix / apix)`` rounded to even; cubic-spline resampling. Unchanged
    when the sizes agree to 0.1%.
    """
    ratio = float(templates_apix) / float(apix)
    if abs(ratio - 1.0) < 1e-3:
        return templates
    from scipy.ndimage import zoom

    box = templates.shape[-1]
    new_box = max(2, 2 * round(box * ratio / 2))
    factor = new_box / box
    return np.stack([zoom(t.astype(np.float64), factor, order=3) for t in templates]).astype(np.float32)
