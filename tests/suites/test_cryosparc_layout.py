"""A data dir in CryoSPARC's layout whose ``.cs`` files cryosparc-tools wrote runs every group.

The data set is generated (smoke sizes), laid out under CryoSPARC's names, stripped of what a real
set lacks (the truth volume), and every ``.cs`` file is rewritten by cryosparc-tools itself with
CryoSPARC's full field set (``ctf/type`` as text, vector ``ctf`` fields). Also here: the picking
case's real-data checks, each failed by a planted wrong answer.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from pytest_cryobench.data import layout, movies
from pytest_cryobench.profiles import PROFILES, MovieSize
from tests.helpers import load_results, save_with_cryosparc_tools

# Minutes, not seconds, on 2 cores: left out of the default run, run by .ci/run (pytest -m slow).
pytestmark = pytest.mark.slow

pytest.importorskip("cryosparc.dataset", reason="cryosparc-tools (the test extra) is not installed")

TINY = dataclasses.replace(PROFILES["smoke"], tiff=MovieSize(3, 64, 48, 4), mrc=MovieSize(3, 32, 32, 4),
                           eer=MovieSize(3, 64, 64, 12, fractions=3))


@pytest.fixture(scope="module")
def cryosparc_set(tmp_path_factory) -> Path:
    from pytest_cryobench.data.engine import TRUTH_VOLUME, engine_component
    from pytest_cryobench.data.maps import fsc_component
    from pytest_cryobench.data.picking import picking_component
    from pytest_cryobench.data.provision import ensure

    tmp = tmp_path_factory.mktemp("cryosparc")
    generated, root = tmp / "generated", tmp / "cryosparc_benchmark"
    for component in (engine_component(TINY, 3), picking_component(TINY, 3), fsc_component(TINY, 3)):
        ensure(generated, component, 3)
    for directory in ("gpu_engine_test", "picking_test", "gpu_fsc_test"):
        shutil.copytree(generated / directory, root / directory)
    (root / TRUTH_VOLUME).unlink()  # CryoSPARC's set has no truth
    (root / "gpu_fsc_test" / "signal.mrc").unlink()
    for fmt in movies.FORMATS:
        component = movies.movie_component(fmt, TINY, seed=5)
        for name in component.files:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            component.generate(name, root / name, lambda done, total: None)
    for pattern, _ in layout.EXPECTED:  # the files no case reads
        if not layout.matches(root, pattern):
            path = root / pattern.replace("*", "sample")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"placeholder")
    for path in root.rglob("*.cs"):
        save_with_cryosparc_tools(path, np.load(path))
    return root


def _args(smoke_args, root):
    return [*smoke_args, f"--cryobench-data={root}", "--cryobench-backend=numpy", "--cryobench-eer-fractions=3",
            "-p", "no:randomly"]


def test_every_group_runs_on_a_cryosparc_layout_without_a_traceback(pytester, smoke_args, bench_dirs,
                                                                    cryosparc_set):
    ctf = np.load(cryosparc_set / "picking_test" / "exposure_dataset_for_picking.cs")
    assert ctf.dtype["ctf/type"].kind == "S" and ctf.dtype["ctf/tetra_A"].shape == (4,)
    result = pytester.runpytest(*_args(smoke_args, cryosparc_set), "-k", "not engine or memory_single_linear10")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()[-3000:]
    assert "Traceback" not in result.stdout.str()
    for group in ("fs", "cpu", "gpu"):
        doc = load_results(bench_dirs["out"], group)
        assert doc["test_info"]["data"] == "cryosparc"
        # every case passed, but those that need a GPU whatever the data (host-device copies)
        assert all(case["outcome"] == "passed" or (case["outcome"] == "skipped" and "needs a GPU" in case["reason"])
                   for case in doc["tests"].values()), group
    gpu = load_results(bench_dirs["out"], "gpu")["tests"]
    assert {"picking[cpu]", "fsc_noisesub[cpu]", "matched_cv_filter_estimation[cpu]",
            "memory_single_linear10_marg_C1[cpu]"} <= set(gpu)
    assert gpu["picking[cpu]"]["checks"]["picks_sane_passed"] is True


@pytest.mark.parametrize("check", ["picks_sane", "rounds_agree"])
def test_real_picking_checks_catch_wrong_picks(pytester, smoke_args, bench_dirs, cryosparc_set, monkeypatch, check):
    import bench_suites.bench_gpu_picking as suite

    real, calls = suite.pick, []

    def wrong(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if check == "picks_sane":
            return {**out, "scores": out["scores"] * 0 + 2.0}  # correlations above 1
        return {**out, "coords": out["coords"] + len(calls)}  # other picks every round

    monkeypatch.setattr(suite, "pick", wrong)
    result = pytester.runpytest_inprocess(*_args(smoke_args, cryosparc_set), "-k", "picking")
    result.assert_outcomes(failed=1)
    assert load_results(bench_dirs["out"], "gpu")["tests"]["picking[cpu]"]["checks"][f"{check}_passed"] is False
