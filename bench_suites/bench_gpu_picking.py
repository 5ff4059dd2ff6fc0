"""GPU benchmark: template picking.

Per round and micrograph: upload the micrograph (``put_micrograph_on_gpu``, PCIe), then pick:
CTF-filtered templates at every in-plane angle (10 degree steps), FFT normalised
cross-correlation with the local mean and variance under a circular mask, maximum over
templates and angles, peaks at least half a box apart (``pick``, GPU), and the picks back on
the host.

Known answer (generated data): the particles were planted at known positions; recall and
precision must both be at least 0.95 within 2 px. Real data: picks must be found, with scores in
(0, 1], and the same in every round.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cryobench.data.picking import ANGLE_STEP_DEG, THRESHOLD
from pytest_cryobench.kernels.ctf import ctf_2d
from pytest_cryobench.kernels.picking import match_picks, pick

pytestmark = pytest.mark.gpu
MIN_RECALL = MIN_PRECISION = 0.95
TOLERANCE_PX = 2


def test_picking(benchmark, cryobench_case, cryobench_backend, cryobench_profile, picking_data):
    case = cryobench_case
    backend = cryobench_backend
    xp = backend.xp
    micrographs, templates, apix, ctfs, truths = picking_data
    box = templates.shape[-1]
    if any(box > min(m.shape) for m in micrographs):
        from pytest_cryobench.errors import CryobenchError

        raise CryobenchError(f"picking: templates of {box} px do not fit micrographs of {micrographs[0].shape} px")
    angles = np.arange(0.0, 360.0, ANGLE_STEP_DEG)
    rounds = []

    def run(st):
        found = []
        for mic, params in zip(micrographs, ctfs, strict=True):
            with st.span("put_micrograph_on_gpu", "PCIe"):
                mic_dev = xp.asarray(mic)
                tmpl_dev = xp.asarray(templates)
            with st.span("ctf", "GPU"):
                ctf = ctf_2d(mic.shape, apix, params["df1_A"], params["df2_A"], params["df_angle_rad"],
                             accel_kv=params["accel_kv"], cs_mm=params["cs_mm"],
                             amp_contrast=params["amp_contrast"], xp=xp)
            with st.span("pick", "GPU"):
                found.append(pick(mic_dev, tmpl_dev, angles, ctf, 0.46 * box, box // 2, THRESHOLD))
        rounds.append(found)

    case.measure(benchmark, run, rounds=cryobench_profile.gpu_rounds, warmup_rounds=1)
    found = rounds[-1]
    n_picks = sum(len(f["coords"]) for f in found)
    if truths[0] is not None:
        for i, (result, truth) in enumerate(zip(found, truths, strict=True)):
            matched = match_picks(result["coords"], np.asarray(truth["coords"]), tol_px=TOLERANCE_PX)
            recall, precision = matched["recall"], matched["precision"]
            case.check(f"micrograph_{i}", recall >= MIN_RECALL and precision >= MIN_PRECISION,
                       f"micrograph {i}: recall {recall:.3f}, precision {precision:.3f} (need {MIN_RECALL})",
                       recall=float(recall), precision=float(precision), planted=len(truth["coords"]),
                       picked=len(result["coords"]))
    else:
        scores = np.concatenate([f["scores"] for f in found])
        case.check("picks_sane", n_picks > 0 and bool(np.all((scores > 0) & (scores <= 1 + 1e-5))),
                   "no picks, or scores outside (0, 1]", picks=n_picks)
        case.check("rounds_agree", all(np.array_equal(r[0]["coords"], found[0]["coords"]) for r in rounds),
                   "rounds picked different particles on the same micrograph")
    case.amounts(template_angles=len(micrographs) * len(templates) * len(angles))  # correlations computed
    case.headline("picking")
    case.rates("template_angles_per_s")
    case.info(micrographs=len(micrographs), micrograph_shape=list(micrographs[0].shape),
              templates=len(templates), angles=len(angles), picks=n_picks)
