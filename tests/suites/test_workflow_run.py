"""The workflow chain through pytester on the NumPy backend (smoke profile), and a subset of it."""

from __future__ import annotations

import pytest

from pytest_cryobench.workflow.preprocess import STEPS
from tests.helpers import load_results

# Minutes, not seconds, on 2 cores: left out of the default run, run by .ci/run (pytest -m slow).
pytestmark = pytest.mark.slow


def test_the_chain_runs_with_every_check_passing(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-m", "workflow")
    result.assert_outcomes(passed=len(STEPS) + 1)
    doc = load_results(bench_dirs["out"], "workflow")
    for step in STEPS:
        test = doc["tests"][f"{step}[cpu]"]
        assert test["checks"]["passed"] is True, (step, test["checks"])
        assert test["info"]["input"] in ("previous", "movies"), step
        assert test["tags"], step  # sub-timings with component tags
    chain = doc["tests"]["chain[cpu]"]
    assert chain["checks"]["passed"] is True
    assert set(doc["timings"]["chain[cpu]"]) >= set(STEPS)
    assert doc["tests"]["picking[cpu]"]["checks"]["template_picks_recall"] >= 0.8
    assert {"read_movie", "patch_motion", "write_sums"} <= set(doc["timings"]["motion[cpu]"])
    ctf = doc["tests"]["ctf[cpu]"]["checks"]
    assert ctf["patch_defocus_passed"] is True and ctf["patch_defocus_max_tilt_error_A"] < 200
    _report_has_the_timeline(bench_dirs)


def _report_has_the_timeline(bench_dirs):
    import json
    import re

    from pytest_cryobench.cli import main

    (result,) = bench_dirs["out"].glob("*_workflow_benchmark_data.json")
    page_path = bench_dirs["out"] / "report.html"
    main(["report", str(result), "--html", str(page_path)])
    page = page_path.read_text()
    payload = re.search(r'<script type="application/json" id="cryobench-data">(.*?)</script>', page, re.S)
    data = json.loads(payload.group(1).replace("<\\/", "</"))
    (workflow,) = [g for g in data["groups"] if g["group"] == "workflow"]
    assert [t["test"] for t in workflow["tests"]][:len(STEPS)] == [f"{s}[cpu]" for s in STEPS]  # timeline order
    assert "function timeline(g)" in page


def test_a_subset_runs_on_the_planted_truth(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-m", "workflow",
                                "--cryobench-workflow-steps=extraction")
    result.assert_outcomes(passed=2, skipped=len(STEPS) - 1)
    doc = load_results(bench_dirs["out"], "workflow")
    extraction = doc["tests"]["extraction[cpu]"]
    assert extraction["info"]["input"] == "truth" and extraction["checks"]["centring_passed"] is True


def test_steps_left_out_prepare_none_of_their_inputs(pytester, smoke_args, bench_dirs):
    """``--cryobench-workflow-steps=ctf``: the truth-aligned sums are made once for the CTF step;
    picking, extraction and the rest skip before building their truth inputs (no picks, stacks)."""
    basetemp = pytester.path / "inner-basetemp"
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-m", "workflow",
                                "--cryobench-workflow-steps=ctf", f"--basetemp={basetemp}")
    result.assert_outcomes(passed=2, skipped=len(STEPS) - 1)
    result.stdout.no_fnmatch_line("*Error*")
    work = basetemp / "workflow0"  # the chain's tmp_path_factory.mktemp("workflow")
    assert (work / "ctf" / "exposures.cs").is_file()
    assert not (work / "picking").exists() and not (work / "extract").exists()
    doc = load_results(bench_dirs["out"], "workflow")
    skipped = [doc["tests"][f"{s}[cpu]"] for s in STEPS if s != "ctf"]
    assert all("not in --cryobench-workflow-steps" in t.get("reason", "") for t in skipped), skipped


def test_an_unknown_step_is_a_usage_error(pytester, smoke_args):
    result = pytester.runpytest(*smoke_args, "--cryobench-backend=numpy", "-m", "workflow",
                                "--cryobench-workflow-steps=motion,denoise")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown step(s)*denoise*"])
