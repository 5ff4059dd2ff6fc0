"""A planted wrong answer in any step fails that step's check (tiny inputs, no pytester).

Kernels are patched in the modules found in ``sys.modules`` (``importlib``): pytester runs earlier in
the session may have left other module objects behind as package attributes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib

import numpy as np
import pytest

from pytest_cryobench.data import workflow as wf
from pytest_cryobench.data.maps import write_map
from pytest_cryobench.data.movies import write_tiff_frames
from pytest_cryobench.profiles import WorkflowSize
from pytest_cryobench.workflow import checks
from pytest_cryobench.workflow import preprocess as pre

TINY = WorkflowSize(movies=1, size=256, frames=4, particles=6, apix=2.0, box=48, work_box=24, dose_per_frame=20.0,
                    band_A=16.0, patches=2, classes=2, abinit_box=24, abinit_iterations=2, abinit_batch=6,
                    refine_directions=20, refine_psi_deg=45.0, refine_iterations=1)
SEED = 3


class Spans:
    def span(self, name, *tags):
        return contextlib.nullcontext()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One 256^2 movie of 4 frames with 6 particles, its gain, plan and model, and a Chain."""
    root = tmp_path_factory.mktemp("tiny")
    model = wf.specimen_model(TINY, SEED)
    plan = wf.movie_plan(TINY, SEED, 0)
    sens = wf.sensitivity(TINY, SEED)
    write_map(root / "gain.mrc", (1 / sens).astype(np.float32), TINY.apix)
    specimen = wf.specimen_image(TINY, model, plan, SEED, 0)
    write_tiff_frames(root / "movie.tif", wf.movie_frames(TINY, specimen, plan, sens, SEED, 0),
                      (TINY.frames, TINY.size, TINY.size))
    chain = pre.Chain([root / "movie.tif"], root / "gain.mrc", root / "work", TINY, np)
    truth = wf.plan_truth(plan)
    return {"chain": chain, "plan": truth, "model": model}


def _shifted(result, by):
    return dataclasses.replace(result, shifts=result.shifts + by, patch_shifts=result.patch_shifts + by)


def test_motion_right_and_wrong(tiny, monkeypatch):
    patch_motion = importlib.import_module("pytest_cryobench.kernels.patch_motion")  # the one the step imports
    tracks = pre.run_motion(tiny["chain"], Spans())
    assert all(c[1] for c in checks.check_motion(tracks, [tiny["plan"]], TINY.size))
    real = patch_motion.patch_motion
    monkeypatch.setattr(patch_motion, "patch_motion",
                        lambda *a, **k: _shifted(real(*a, **k), np.array([0.0, 1.5])))
    tracks = pre.run_motion(tiny["chain"], Spans())
    found = checks.check_motion(tracks, [tiny["plan"]], TINY.size)
    assert [c[1] for c in found] == [False, False]


def test_ctf_wrong_defocus_fails(tiny, monkeypatch):
    ctf_fit = importlib.import_module("pytest_cryobench.kernels.ctf_fit")
    pre.run_motion(tiny["chain"], Spans())
    real = ctf_fit.refine_with_patches  # the micrograph's final CTF

    def wrong(*args, **kwargs):
        fit = real(*args, **kwargs)
        return {**fit, "df1_A": fit["df1_A"] + 1000.0, "df2_A": fit["df2_A"] + 1000.0}

    monkeypatch.setattr(ctf_fit, "refine_with_patches", wrong)
    fits = pre.run_ctf(tiny["chain"], Spans(), [tiny["chain"].work / pre.sum_name(0, False)])
    (name, passed, message, _), _patches = checks.check_ctf(fits, [tiny["plan"]], TINY.size)
    assert name == "defocus_astigmatism" and not passed and "defocus" in message


def _patch_fit(plan, defocus_of):
    """A CTF fit with the planted whole-micrograph values and ``defocus_of(true_grid)`` per patch."""
    from pytest_cryobench.kernels.ctf_fit import patch_centres

    cy, cx = patch_centres((TINY.size, TINY.size), pre.CTF_PATCHES)
    true = wf.local_defocus(plan, cy[:, None], cx[None, :], TINY.size)
    return {"df1_A": plan["df1_A"], "df2_A": plan["df2_A"], "df_angle_rad": plan["df_angle_rad"],
            "patch_centres_y_px": cy.tolist(), "patch_centres_x_px": cx.tolist(),
            "patch_defocus_A": defocus_of(true).tolist()}


def test_patch_defocus_that_ignores_the_tilt_fails(tiny):
    plan = tiny["plan"]
    mean = (plan["df1_A"] + plan["df2_A"]) / 2
    right = checks.check_ctf([_patch_fit(plan, lambda true: true + 60.0)], [plan], TINY.size)
    assert [c[1] for c in right] == [True, True]
    flat = checks.check_ctf([_patch_fit(plan, lambda true: np.full_like(true, mean))], [plan], TINY.size)[1]
    assert flat[0] == "patch_defocus" and not flat[1] and "the tilt" in flat[2]
    assert flat[3]["max_tilt_error_A"] >= wf.TILT_A / 4 - 1  # the planted tilt, at the farthest patch centre
    flipped = checks.check_ctf([_patch_fit(plan, lambda true: 2 * mean - true)], [plan], TINY.size)[1]
    assert not flipped[1]  # the tilt the wrong way round (rows or columns swapped, a sign lost)


def test_extraction_gives_each_particle_the_defocus_at_its_position(tiny):
    plan = tiny["plan"]
    grid = _patch_fit(plan, lambda true: true)
    positions = np.round(np.asarray(plan["positions"]))
    local = pre.particle_defocus(grid, positions[:, 0], positions[:, 1])
    true = wf.local_defocus(plan, positions[:, 0], positions[:, 1], TINY.size)
    assert np.allclose(local, true, atol=1e-6)  # the tilt is a plane: bilinear, extrapolated, is exact
    images, data = _truth_particles(tiny, patch_defocus=[grid])
    half = (plan["df1_A"] - plan["df2_A"]) / 2
    assert np.allclose(data["ctf/df1_A"], true + half, atol=1)  # float32 in the .cs
    assert np.allclose(data["ctf/df2_A"], true - half, atol=1)
    assert np.ptp(data["ctf/df1_A"]) > 100  # particles across the field differ by the tilt


def test_picking_wrong_positions_fail(tiny):
    truth = np.asarray(tiny["plan"]["positions"])
    found = checks.check_picks([truth + 15.0], [tiny["plan"]], 0.2 * TINY.box, "template_picks", 0.8, 0.7)
    assert not found[0][1]
    assert checks.check_picks([truth], [tiny["plan"]], 0.2 * TINY.box, "template_picks", 0.8, 0.7)[0][1]


def _truth_particles(tiny, monkeypatch=None, roll=0, patch_defocus=None):
    from pytest_cryobench.data.cs import make_dataset

    chain, plan = tiny["chain"], tiny["plan"]
    pre.run_motion(chain, Spans())
    exposures = make_dataset(pre.ctf_columns([{k: plan[k] for k in ("df1_A", "df2_A", "df_angle_rad")}]))
    picks = [np.round(np.asarray(plan["positions"])).astype(np.int64)]
    if roll and monkeypatch is not None:
        real = pre.crop_boxes
        monkeypatch.setattr(pre, "crop_boxes", lambda xp, boxes, m: np.roll(real(xp, boxes, m), roll, axis=2))
    cs = pre.run_extraction(chain, Spans(), [chain.work / pre.sum_name(0, True)], picks, exposures, patch_defocus)
    return pre.read_particles(chain, cs)


def test_extraction_right_and_off_centre(tiny, monkeypatch):
    images, data = _truth_particles(tiny)
    args = (tiny["model"], [tiny["plan"]], TINY, tiny["chain"].work_apix)
    assert checks.check_centring(*args, images, data, 0.2)[0][1]
    images, data = _truth_particles(tiny, monkeypatch, roll=2)
    (name, passed, message, figures), = checks.check_centring(*args, images, data, 0.2)
    assert not passed and figures["fraction_within_1px"] < 0.5


def test_class_averages_of_noise_fail(tiny):
    classify2d = importlib.import_module("pytest_cryobench.kernels.classify2d")
    images, data = _truth_particles(tiny)
    rng = np.random.default_rng(0)
    m = TINY.work_box
    noise = classify2d.Classes2D(rng.normal(size=(2, m, m)).astype(np.float32), rng.integers(0, 2, len(images)),
                                 np.zeros(len(images), int), np.zeros((len(images), 2), int), np.zeros(1), 1.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(classify2d, "classify_2d", lambda *a, **k: noise)
        from pytest_cryobench.workflow.reconstruct import run_classify2d

        out = run_classify2d(tiny["chain"], Spans(), images, data)
    found = checks.check_classes(tiny["model"], TINY, tiny["chain"].work_apix, out, [tiny["plan"]], data, 0.2)
    assert not found[0][1] and found[0][3]["min_correlation"] < 0.7


def test_a_wrong_map_fails_the_fsc_checks(tiny):
    from pytest_cryobench.data.workflow_specimen import truth_volume
    from pytest_cryobench.kernels.abinitio import initial_volume

    apix = tiny["chain"].work_apix
    right = truth_volume(tiny["model"], TINY.work_box, apix, TINY.band_A)
    curve, shell = checks.fsc_against_truth(tiny["model"], TINY, apix, right[::-1].copy(), low=True)
    assert checks.check_fsc_to_shell("abinitio_fsc", curve, shell)[0][1]  # the mirror is found
    wrong = initial_volume(TINY.work_box, 1, 4.0)
    curve, shell = checks.fsc_against_truth(tiny["model"], TINY, apix, wrong, low=False)
    assert not checks.check_fsc_to_shell("truth_fsc", curve, shell)[0][1]


def test_picks_moved_by_the_picker_fail(tiny, monkeypatch):
    from pytest_cryobench.data.cs import make_dataset
    from pytest_cryobench.data.workflow_specimen import particle_images
    from pytest_cryobench.kernels.rotations import rotation_grid

    chain, plan = tiny["chain"], tiny["plan"]
    pre.run_motion(chain, Spans())
    picking = importlib.import_module("pytest_cryobench.kernels.picking")
    real = picking.pick

    def moved(*args, **kwargs):
        found = real(*args, **kwargs)
        return {**found, "coords": found["coords"] + 8}  # 8 binned px = 16 px off

    monkeypatch.setattr(picking, "pick", moved)
    exposures = make_dataset(pre.ctf_columns([{k: plan[k] for k in ("df1_A", "df2_A", "df_angle_rad")}]))
    grid = rotation_grid(8, 360.0)
    templates = particle_images(tiny["model"], grid.matrices, np.zeros((8, 2)), TINY.box // 2, 2 * TINY.apix,
                                TINY.band_A).astype(np.float32)
    found = pre.run_picking(chain, Spans(), [chain.work / pre.sum_name(0, True)], exposures, templates)
    result = checks.check_picks(found["template"], [plan], 0.2 * TINY.box, "template_picks", 0.8, 0.7)
    assert not result[0][1] and result[0][3]["recall"] < 0.5


def test_abinitio_from_a_broken_pass_fails(tiny, monkeypatch):
    from pytest_cryobench.kernels.abinitio import initial_volume

    rec = importlib.import_module("pytest_cryobench.workflow.reconstruct")
    images, data = _truth_particles(tiny)
    real = rec.run_pass

    def broken(*args, **kwargs):  # every mini-batch reconstruction replaced by unrelated density
        result = real(*args, **kwargs)
        return dataclasses.replace(result, volume=initial_volume(TINY.work_box, 9, 6.0))

    monkeypatch.setattr(rec, "run_pass", broken)
    volume = rec.run_abinitio(tiny["chain"], Spans(), images, data)
    curve, shell = checks.fsc_against_truth(tiny["model"], TINY, tiny["chain"].work_apix, volume, low=True)
    assert not checks.check_fsc_to_shell("abinitio_fsc", curve, shell)[0][1]
