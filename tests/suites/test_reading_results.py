"""Reading results end to end: shipped references by name, the baseline workflow and compare."""

from __future__ import annotations

import json

import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.locations import bundled_dir

SHIPPED = {}  # profile -> the names of the NumPy references shipped for it, sorted
for _path in sorted(bundled_dir("references").glob("*.json")):
    _doc = json.loads(_path.read_text())
    if _doc["backend"] == "numpy":
        SHIPPED.setdefault(_doc["profile"], []).append(_path.stem)


@pytest.mark.parametrize("name", SHIPPED["smoke"])  # schema 1 (migrated on load) and schema 2
def test_a_shipped_reference_is_found_by_name(pytester, smoke_args, name):
    result = pytester.runpytest(*smoke_args, "-m", "cpu", f"--cryobench-reference={name}",
                                "--cryobench-no-fail", "--cryobench-run-id=vs-shipped")
    result.assert_outcomes(passed=2)
    # a verdict against it, not "not comparable": same profile, backend and data
    result.stdout.re_match_lines([rf"\S*test\s.*vs {name}$",
                                  r"cpu/tiff .*(pass|faster|SLOWER|can't tell) \d+\.\d\dx \[[-\d.]+, [-\d.]+\]$",
                                  r"cpu/eer .*(pass|faster|SLOWER|can't tell) \d+\.\d\dx \[[-\d.]+, [-\d.]+\]$"])


def test_another_profiles_reference_is_not_comparable(pytester, smoke_args):
    name = SHIPPED["standard"][-1]
    result = pytester.runpytest(*smoke_args, "-m", "cpu", f"--cryobench-reference={name}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*vs {name}: 2 case(s) not comparable: profile smoke here, standard in the reference"])


def test_unknown_reference_name_lists_the_shipped_ones(pytester, smoke_args):
    result = pytester.runpytest(*smoke_args, "-m", "cpu", "--cryobench-reference=no-such-machine")
    assert result.ret != 0
    result.stderr.fnmatch_lines([f"*no-such-machine: no such file, and no shipped reference of that name "
                                 f"(known: *{SHIPPED['smoke']}*"])


def test_baseline_workflow_then_compare(pytester, smoke_args, bench_dirs, capsys):
    """README's worked example: save a run, run again against it, read the compare table."""
    out = bench_dirs["out"]
    pytester.runpytest(*smoke_args, "-m", "cpu", "--cryobench-run-id=before").assert_outcomes(passed=2)
    before = out / "before_cpu_benchmark_data.json"
    result = pytester.runpytest(*smoke_args, "-m", "cpu", "--cryobench-run-id=after", "--cryobench-no-fail",
                                f"--cryobench-baseline={before}")
    result.assert_outcomes(passed=2)
    result.stdout.re_match_lines([r".*vs baseline before$"])
    after = out / "after_cpu_benchmark_data.json"
    status = main(["compare", str(before), str(after), "--tolerance", "100"])
    text = capsys.readouterr().out
    assert status == 0
    assert "before (reference)" in text and "after" in text
    assert [line.split()[0] for line in text.splitlines() if line.startswith(("tiff", "eer"))] == ["tiff", "eer"]
    # A shared, anonymized copy still compares, and names no host
    assert main(["anonymize", str(after)]) == 0
    shared = out / "after_cpu_benchmark_data.anon.json"
    doc = json.loads(shared.read_text())
    assert doc["test_info"]["instance_information"]["platform_node"] == "<redacted>"
    assert str(bench_dirs["out"]) not in shared.read_text()
    assert main(["compare", str(before), str(shared), "--tolerance", "100"]) == 0
