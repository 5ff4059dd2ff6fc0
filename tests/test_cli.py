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
    assert list(doc["tests"]) == list(doc["timings"]) == ["particle_sequential_read"]
    assert doc["test_info"]["job_params"]["use_ssd"] is False


def test_requirements_command_runs_the_requirements_suite(tmp_path, bench_dirs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["requirements", "--profile", "smoke", "--data-dir", str(bench_dirs["data"]),
                 "--output", str(bench_dirs["out"]), "--project-dir", str(bench_dirs["project"]),
                 "--cache-dir", str(bench_dirs["cache"]), "--run-id", "clireq", "--live-camera", "falcon4 eer",
                 "--", "-q", "-k", "kernel or platform or live_gpu_memory", "-p", "no:cacheprovider"])
    assert code == 0
    doc = json.loads((bench_dirs["out"] / "clireq_requirements_benchmark_data.json").read_text())
    assert set(doc["tests"]) >= {"kernel", "platform", "live_gpu_memory_preprocessing"}
    assert not list(bench_dirs["out"].glob("clireq_fs_*"))  # only the requirements group ran


def test_save_reference_install_puts_it_where_names_are_found(tmp_path, bench_dirs, capsys):
    from pytest_cryobench.record.references import load_reference

    main(["run", "--profile", "smoke", "--data-dir", str(bench_dirs["data"]), "--output", str(bench_dirs["out"]),
          "--project-dir", str(bench_dirs["project"]), "--no-ssd", "--run-id", "inst",
          "--", "-q", "-k", "sequential", "-p", "no:cacheprovider"])
    assert main(["save-reference", str(bench_dirs["out"] / "inst_fs_benchmark_data.json"), "--name=ws1",
                 "--install", "--data-dir", str(bench_dirs["data"])]) == 0
    installed = bench_dirs["data"] / "references" / "ws1.json"
    assert installed.exists()
    assert load_reference("ws1", [bench_dirs["data"] / "references"]).path == installed
    assert json.loads(installed.read_text())["reference_command"].startswith("cryobench save-reference ")


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


def test_data_generate_and_verify(tmp_path, capsys):
    data_dir = tmp_path / "data"
    assert main(["data", "generate", "--profile", "smoke", "--dir", str(data_dir), "--only", "tiff,eer"]) == 0
    root = data_dir / "synthetic-smoke"
    assert len(list((root / "movies" / "eer").glob("*.eer"))) == 3
    assert not (root / "movies" / "mrc").exists()
    assert main(["data", "verify", "--profile", "smoke", "--dir", str(data_dir)]) == 0
    assert "6 file(s) checked, OK" in capsys.readouterr().out
    victim = root / "movies" / "eer" / "synthetic_movie_001.eer"
    with open(victim, "r+b") as handle:  # same size, one byte changed
        handle.seek(4000)
        byte = handle.read(1)
        handle.seek(4000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert main(["data", "verify", "--profile", "smoke", "--dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert f"{victim}: checksum differs from the manifest" in out and "1 problem(s)" in out


def test_data_generate_unknown_kind(tmp_path, capsys):
    assert main(["data", "generate", "--profile", "smoke", "--dir", str(tmp_path), "--only", "tiff,avi"]) == 2
    assert "unknown kind(s) ['avi']; known: tiff, mrc, eer" in capsys.readouterr().err


def test_data_verify_real_data_set_lists_missing(tmp_path, capsys):
    (tmp_path / "movies" / "tiff").mkdir(parents=True)
    assert main(["data", "verify", "--data", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"missing: {tmp_path}/gpu_fsc_test/half_map_A.mrc" in out and "problem(s)" in out


def test_data_verify_without_generated_data(tmp_path, capsys):
    assert main(["data", "verify", "--profile", "smoke", "--dir", str(tmp_path)]) == 1
    assert "run 'cryobench data generate'" in capsys.readouterr().out
