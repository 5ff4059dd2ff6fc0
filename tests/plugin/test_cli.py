"""The ``cryobench`` console script."""

from __future__ import annotations

import json
import subprocess
import sys

from pytest_cryobench.cli import main


def test_run_shares_the_plugin_options(tmp_path, bench_dirs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--profile", "smoke", "--data-dir", str(bench_dirs["data"]),
                 "--output", str(bench_dirs["out"]), "--project-dir", str(bench_dirs["project"]),
                 "--no-ssd", "--run-id", "clirun", "--", "-q", "-k", "sequential", "-p", "no:cacheprovider"])
    assert code == 0
    doc = json.loads((bench_dirs["out"] / "clirun_fs_benchmark_data.json").read_text())
    assert list(doc["timings"]) == ["particle_sequential_read"]
    assert doc["test_info"]["job_params"]["use_ssd"] is False


def test_validate_exit_status(tmp_path, capsys):
    good = tmp_path / "ref.json"
    good.write_text(json.dumps({"schema_version": 1, "kind": "cryobench-reference", "name": "ok",
                                "profile": "smoke", "backend": "none", "data": "synthetic",
                                "instance_information": {}, "tests": {}}))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{good}: valid reference" in out and f"{bad}: INVALID" in out and "not valid JSON" in out


def test_save_reference_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "mine.json"
    target.write_text("precious")
    result = tmp_path / "r_fs_benchmark_data.json"
    result.write_text("{}")
    assert main(["save-reference", str(result), "--name", "x", "-o", str(target)]) == 2
    assert target.read_text() == "precious"
    assert "not a pytest-cryobench result file" in capsys.readouterr().err


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "pytest_cryobench.cli", "--version"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "pytest-cryobench" in proc.stdout
