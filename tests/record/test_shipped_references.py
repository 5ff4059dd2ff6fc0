"""The references shipped in ``references/``: valid, measured (not typed in), listed and found by name."""

from __future__ import annotations

import json
import shlex

import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.locations import bundled_dir
from pytest_cryobench.record.migrate import reference_to_2
from pytest_cryobench.record.references import load_reference

SHIPPED = sorted(bundled_dir("references").glob("*.json"))
REQUIRED = {("smoke", "numpy"), ("standard", "numpy")}


def test_smoke_and_standard_cpu_references_are_shipped():
    found = {(json.loads(p.read_text())["profile"], json.loads(p.read_text())["backend"]) for p in SHIPPED}
    assert REQUIRED <= found


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_shipped_reference_was_measured_by_the_suite(path):
    doc = json.loads(path.read_text())
    assert doc["name"] == path.stem
    # the command that measured it and the one that saved it are recorded, not typed in
    run = shlex.split(doc["command"])
    assert "--cryobench" in run and f"--cryobench-profile={doc['profile']}" in run
    assert f"--cryobench-backend={doc['backend']}" in run
    saved = shlex.split(doc["reference_command"])
    assert saved[:2] == ["cryobench", "save-reference"]
    assert f"--name={doc['name']}" in saved or saved[saved.index("--name") + 1] == doc["name"]
    assert doc["source_run"].startswith("cb") and doc["cryobench_version"]
    info = doc["instance_information"]
    assert info["cpu_model"] and info["physical_cores"] >= 1
    assert info["platform_node"] == "<redacted>"  # shipped anonymized
    # every case ran, passed its checks and has positive times (schema 1 read through the
    # migration); a case that could not run on that machine (no GPU) says why
    records = reference_to_2(doc) if doc["schema_version"] == 1 else doc
    for group, tests in records["tests"].items():
        ran = {test: entry for test, entry in tests.items() if entry["outcome"] != "skipped"}
        assert ran, group
        for test, entry in tests.items():
            if entry["outcome"] == "skipped":
                assert entry["reason"], (group, test)
                continue
            assert entry["outcome"] == "passed", (group, test)
            assert entry["checks"].get("passed", True) is True, (group, test)
            figures = [v for values in entry["samples"].values() for v in values] or \
                [m["value"] for m in doc["tests"][group][test]["metrics"].values()]
            assert figures and all(v > 0 for v in figures), (group, test)
    comparison = load_reference(doc["name"], [bundled_dir("references")])
    assert comparison.path == path


def test_cli_lists_them_with_machine_profile_backend_and_date(capsys, tmp_path):
    assert main(["references", "--data-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "profile", "backend", "data", "machine", "date", "file"]
    for path in SHIPPED:
        doc = json.loads(path.read_text())
        row = next(line for line in lines if line.startswith(doc["name"] + " "))
        assert doc["profile"] in row and doc["backend"] in row and doc["instance_information"]["cpu_model"] in row
        assert str(path) in row


def test_own_references_are_listed_before_shipped_ones_and_bad_ones_are_named(capsys, tmp_path):
    own = tmp_path / "references"
    own.mkdir()
    source = json.loads(SHIPPED[0].read_text())
    (own / "mine.json").write_text(json.dumps({**source, "name": "mine"}))
    (own / "broken.json").write_text("{")
    assert main(["references", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "mine " in out
    assert f"skipped: {own / 'broken.json'}" in out and "is not valid JSON" in out
