"""Whole-workflow benchmark: movies to map on a synthetic data set whose every answer is known.

One case per step (motion, ctf, picking, extraction, classify2d, abinitio, refinement) plus the
whole chain. Each step reads the files the step before it wrote, is timed with sub-timings and
tags, and is checked against the planted truth (``pytest_cryobench.workflow.checks``). A step
whose input step failed or did not run runs on the planted truth instead, and says so in its
``info`` (``input: truth``). ``--cryobench-workflow-steps`` runs a subset.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from pytest_cryobench.data.workflow import TRUTH_VOLUME_FILE, local_defocus, workflow_component
from pytest_cryobench.data.workflow_specimen import particle_images, truth_volume
from pytest_cryobench.kernels import abinitio as ab
from pytest_cryobench.kernels.rotations import rotation_grid
from pytest_cryobench.plugin.options import OPTIONS_BY_NAME, resolve
from pytest_cryobench.workflow import checks
from pytest_cryobench.workflow import preprocess as pre
from pytest_cryobench.workflow import reconstruct as rec

pytestmark = pytest.mark.workflow
PICK_TOLERANCE_FRACTION = 0.2   # of the box: 9.6 px (19 Å, a third of the particle) at smoke
MIN_RECALL, MIN_PRECISION = 0.8, 0.7


@pytest.fixture(scope="module")
def _chain_states():
    return {}


@pytest.fixture
def chain_state(pytestconfig, movie_source, cryobench_profile, cryobench_backend, tmp_path_factory, _chain_states):
    """The chain's inputs and what each step left (``out``, ``passed``), shared by the cases of a device."""
    if cryobench_backend.label not in _chain_states:
        _chain_states[cryobench_backend.label] = _new_state(pytestconfig, movie_source, cryobench_profile,
                                                            cryobench_backend, tmp_path_factory)
    return _chain_states[cryobench_backend.label]


def _new_state(pytestconfig, movie_source, cryobench_profile, cryobench_backend, tmp_path_factory):
    from pytest_cryobench.plugin.session import DATA_SEED

    spec = OPTIONS_BY_NAME["workflow-steps"]
    raw, _ = resolve(spec, pytestconfig.getoption(spec.dest), os.environ, pytestconfig.getini(spec.ini_name))
    steps = [s.strip() for s in raw.split(",")] if raw else list(pre.STEPS)
    unknown = sorted(set(steps) - set(pre.STEPS))
    if unknown:
        raise pytest.UsageError(f"--cryobench-workflow-steps: unknown step(s) {unknown}; known: {pre.STEPS}")
    files, truth = movie_source.ensure(workflow_component(cryobench_profile, DATA_SEED))
    root = movie_source.root
    movies = [f for f in files if f.suffix == ".tif"]
    plans = [truth[str(m.relative_to(root))] for m in movies]
    chain = pre.Chain(movies, [f for f in files if f.name == "gain.mrc"][0], tmp_path_factory.mktemp("workflow"),
                      cryobench_profile.workflow, cryobench_backend.xp, DATA_SEED)
    model = {k: np.asarray(v) for k, v in truth[TRUTH_VOLUME_FILE]["model"].items()}
    return {"chain": chain, "plans": plans, "model": model, "steps": steps, "passed": {}, "out": {},
            "times": {}}


def _require(state, step):
    """Skip a step left out by ``--cryobench-workflow-steps`` before its inputs are prepared (the
    truth fallbacks of a standard-size chain take minutes)."""
    if step not in state["steps"]:
        pytest.skip(f"step {step} not in --cryobench-workflow-steps")


def _run(case, benchmark, state, step, work):
    result = {}

    def target(st):
        result["value"] = work(st)

    start = time.perf_counter()
    case.measure(benchmark, target, rounds=1)
    state["times"][step] = time.perf_counter() - start
    case.headline(step)
    return result["value"]


def _record(case, state, step, found, input_kind):
    for name, passed, message, figures in found:
        case.check(name, passed, message, **figures)
    state["passed"][step] = all(f[1] for f in found)
    case.info(input=input_kind)


def _input(state, step):
    return "previous" if state["passed"].get(step) else "truth"


def _truth_sums(state):
    """Sums of the planted specimen's frames aligned with the planted shifts (the motion fallback)."""
    import tifffile
    from scipy.ndimage import map_coordinates

    from pytest_cryobench.data.maps import write_map
    from pytest_cryobench.data.workflow import displacement

    chain = state["chain"]
    size = chain.size
    gain = pre.read_mrc(chain.gain)
    yy, xx = np.mgrid[0:size.size, 0:size.size].astype(np.float64)
    for i, (movie, plan) in enumerate(zip(chain.movies, state["plans"], strict=True)):
        frames = tifffile.imread(movie) * gain
        total = np.zeros((size.size, size.size))
        for f in range(size.frames):
            dy, dx = displacement(plan, f, yy, xx, size.size)
            total += map_coordinates(frames[f], [yy + dy, xx + dx], order=3, mode="reflect")
        for weighted in (False, True):
            write_map(chain.path(pre.sum_name(i, weighted)), total.astype(np.float32), size.apix)


def test_motion(benchmark, cryobench_case, chain_state):
    state = chain_state
    _require(state, "motion")
    tracks = _run(cryobench_case, benchmark, state, "motion", lambda st: pre.run_motion(state["chain"], st))
    _record(cryobench_case, state, "motion", checks.check_motion(tracks, state["plans"], state["chain"].size.size),
            "movies")
    cryobench_case.amounts(movies=len(state["chain"].movies))


def _sums(state, weighted):
    if not state["passed"].get("motion") and not state["out"].get("truth_sums"):
        _truth_sums(state)  # once: every later step without motion's sums reads the same files
        state["out"]["truth_sums"] = True
    chain = state["chain"]
    return [chain.work / pre.sum_name(i, weighted) for i in range(len(chain.movies))]


def test_ctf(benchmark, cryobench_case, chain_state):
    state = chain_state
    _require(state, "ctf")
    kind = _input(state, "motion")
    sums = _sums(state, False)
    fits = _run(cryobench_case, benchmark, state, "ctf", lambda st: pre.run_ctf(state["chain"], st, sums))
    _record(cryobench_case, state, "ctf", checks.check_ctf(fits, state["plans"], state["chain"].size.size), kind)


def _exposures(state):
    from pytest_cryobench.data.cs import make_dataset, read_cs

    chain = state["chain"]
    if state["passed"].get("ctf"):
        return read_cs(chain.work / pre.EXPOSURES_CS)
    return make_dataset(pre.ctf_columns([{k: p[k] for k in ("df1_A", "df2_A", "df_angle_rad")}
                                         for p in state["plans"]]))


def _patch_defocus(state):
    """The CTF step's patch grids, or (it failed or did not run) the planted defocus at the same centres."""
    from pytest_cryobench.kernels.ctf_fit import patch_centres

    chain = state["chain"]
    if state["passed"].get("ctf"):
        return pre.read_patch_defocus(chain)
    n = chain.size.size
    cy, cx = patch_centres((n, n), pre.CTF_PATCHES)
    return [{"patch_centres_y_px": cy.tolist(), "patch_centres_x_px": cx.tolist(),
             "patch_defocus_A": local_defocus(plan, cy[:, None], cx[None, :], n).tolist()} for plan in state["plans"]]


@pytest.mark.cryobench_name("picking")  # the function's name keeps `-k picking` for the gpu picking case alone
def test_picks(benchmark, cryobench_case, chain_state):
    state = chain_state
    _require(state, "picking")
    chain, size = state["chain"], state["chain"].size
    kind = "previous" if state["passed"].get("motion") and state["passed"].get("ctf") else "truth"
    sums, exposures = _sums(state, True), _exposures(state)
    grid = rotation_grid(30, 360.0)
    templates = particle_images(state["model"], grid.matrices, np.zeros((len(grid.matrices), 2)), size.box // 2,
                                2 * size.apix, size.band_A).astype(np.float32)
    found = _run(cryobench_case, benchmark, state, "picking",
                 lambda st: pre.run_picking(chain, st, sums, exposures, templates))
    tol = PICK_TOLERANCE_FRACTION * size.box
    result = checks.check_picks(found["template"], state["plans"], tol, "template_picks", MIN_RECALL, MIN_PRECISION)
    result += checks.check_picks(found["blob"], state["plans"], tol, "blob_picks", 0.5, 0.4)
    _record(cryobench_case, state, "picking", result, kind)
    state["out"]["picks"] = found["template"]


def test_extraction(benchmark, cryobench_case, chain_state):
    state = chain_state
    _require(state, "extraction")
    chain = state["chain"]
    ok = state["passed"].get("picking")
    picks = state["out"]["picks"] if ok else [np.round(np.asarray(p["positions"])).astype(np.int64)
                                             for p in state["plans"]]
    sums, exposures, patches = _sums(state, True), _exposures(state), _patch_defocus(state)
    cs = _run(cryobench_case, benchmark, state, "extraction",
              lambda st: pre.run_extraction(chain, st, sums, picks, exposures, patches))
    images, data = pre.read_particles(chain, cs)
    result = checks.check_centring(state["model"], state["plans"], chain.size, chain.work_apix, images, data,
                                    PICK_TOLERANCE_FRACTION)
    _record(cryobench_case, state, "extraction", result, "previous" if ok else "truth")
    cryobench_case.amounts(particles=len(images))
    state["out"]["particles"] = (images, data)


class _Untimed:
    """Spans that time nothing: the truth fallbacks run outside the measured steps."""

    def span(self, name, *tags):
        import contextlib

        return contextlib.nullcontext()


def _particles(state):
    """The extracted particles, or (extraction failed or did not run) particles extracted at the
    planted positions from the truth-aligned sums with the planted CTF."""
    if state["passed"].get("extraction"):
        return state["out"]["particles"]
    if "truth_particles" not in state["out"]:
        chain = state["chain"]
        saved = dict(state["passed"])
        state["passed"].update(motion=False, ctf=False)
        sums, exposures, patches = _sums(state, True), _exposures(state), _patch_defocus(state)
        state["passed"].update(saved)
        picks = [np.round(np.asarray(p["positions"])).astype(np.int64) for p in state["plans"]]
        cs = pre.run_extraction(chain, _Untimed(), sums, picks, exposures, patches)
        state["out"]["truth_particles"] = pre.read_particles(chain, cs)
    return state["out"]["truth_particles"]


def _on_particles(case, benchmark, state, step, run):
    """Run a step that takes the particles (``run(chain, st, images, data)``): its output and the data."""
    _require(state, step)
    images, data = _particles(state)
    return _run(case, benchmark, state, step, lambda st: run(state["chain"], st, images, data)), data


def test_classify2d(benchmark, cryobench_case, chain_state):
    state, chain = chain_state, chain_state["chain"]
    out, data = _on_particles(cryobench_case, benchmark, state, "classify2d", rec.run_classify2d)
    found = checks.check_classes(state["model"], chain.size, chain.work_apix, out, state["plans"], data,
                                 PICK_TOLERANCE_FRACTION)
    _record(cryobench_case, state, "classify2d", found, _input(state, "extraction"))


def test_abinitio(benchmark, cryobench_case, chain_state):
    state, chain = chain_state, chain_state["chain"]
    volume, _ = _on_particles(cryobench_case, benchmark, state, "abinitio", rec.run_abinitio)
    result, shell = checks.fsc_against_truth(state["model"], chain.size, chain.work_apix, volume, low=True)
    _record(cryobench_case, state, "abinitio", checks.check_fsc_to_shell("abinitio_fsc", result, shell),
            _input(state, "extraction"))
    state["out"]["abinitio"] = volume


def test_refinement(benchmark, cryobench_case, chain_state):
    state = chain_state
    _require(state, "refinement")
    images, data = _particles(state)
    chain, size = state["chain"], state["chain"].size
    start = state["out"].get("abinitio") if state["passed"].get("abinitio") else None
    if start is None:
        start = ab.low_pass_volume(truth_volume(state["model"], size.work_box, chain.work_apix, size.band_A), 3.0)
    out = _run(cryobench_case, benchmark, state, "refinement",
               lambda st: rec.run_refinement(chain, st, images, data, start))
    designed = int(size.work_box * chain.work_apix / size.band_A)
    shell = int(out["resolution"]["shell"])
    full_map = (out["halves"][0] + out["halves"][1]) / 2
    curve, _ = checks.fsc_against_truth(state["model"], size, chain.work_apix, full_map, low=False)
    result = [("half_map_resolution", abs(shell - designed) <= 1,
               f"half-map FSC 0.143 at shell {shell}, designed {designed} (within one shell)",
               {"shell": shell, "designed_shell": designed})]
    result += checks.check_fsc_to_shell("truth_fsc", curve, max(1, designed - 1))
    _record(cryobench_case, state, "refinement", result, _input(state, "abinitio"))


def test_chain(cryobench_case, chain_state):
    """The whole chain's time: the sum of the steps' times (each measured once above)."""
    state = chain_state
    if not state["times"]:
        pytest.skip("no workflow step ran")
    cryobench_case.record.samples = {**{k: [v] for k, v in state["times"].items()},
                                     "total": [sum(state["times"].values())]}
    cryobench_case.headline("chain")
    cryobench_case.check("steps", all(state["passed"].get(s, False) for s in state["times"]),
                         "failed steps: " + ", ".join(s for s in state["times"] if not state["passed"].get(s)))
    cryobench_case.info(steps=list(state["times"]), passed=state["passed"])
