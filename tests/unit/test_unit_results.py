"""Group documents and the JSON/CSV result files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pytest_cryobench.record.model import (
    CSV_COLUMNS,
    RESULT_KIND,
    RESULT_SCHEMA_VERSION,
    CaseRecord,
    Metric,
    csv_rows,
    group_document,
    result_paths,
    write_group,
)
from pytest_cryobench.record.references import load_result


def test_group_document_shape(fs_doc, run_id, test_info):
    assert fs_doc["schema_version"] == RESULT_SCHEMA_VERSION == 1
    assert fs_doc["kind"] == RESULT_KIND == "cryobench-result"
    assert fs_doc["type"] == "fs"
    assert fs_doc["run_id"] == run_id
    assert fs_doc["test_info"] is test_info
    tests = ["particle_random_read", "particle_cache", "particle_sequential_read"]
    for key in ("timings", "tags", "stats", "metrics", "checks", "status"):
        assert list(fs_doc[key]) == tests, key
    assert fs_doc["timings"]["particle_cache"] == {"copy_particles": 1.25, "total": 1.3}
    assert fs_doc["tags"]["particle_cache"] == {"copy_particles": ["IO"]}
    assert fs_doc["metrics"]["particle_cache"]["particle_cache_rate"] == {
        "value": 100.0, "unit": "MB/s", "better": "higher"}
    status = fs_doc["status"]["particle_sequential_read"]
    assert status["outcome"] == "skipped" and status["reason"] == "no space"
    assert fs_doc["timings"]["particle_sequential_read"] == {}
    read = fs_doc["status"]["particle_random_read"]
    assert read["residency"] == [0.0, 0.001, 0.0]
    assert read["nodeid"].endswith("::test_particle_random_read")
    assert read["warm"] is False


def test_group_document_copies_the_record_dicts(records_fs, test_info, run_id):
    doc = group_document("fs", records_fs, test_info, run_id)
    records_fs[1].timings["total"] = 99.0
    records_fs[1].tags["copy_particles"].append("CPU")
    assert doc["timings"]["particle_cache"]["total"] == 1.3
    assert doc["tags"]["particle_cache"]["copy_particles"] == ["IO"]


def test_write_group_produces_valid_json_and_csv(fs_doc, tmp_path, run_id):
    paths = write_group(tmp_path, fs_doc)
    json_path, csv_path = paths
    assert json_path == tmp_path / f"{run_id}_fs_benchmark_data.json"
    assert csv_path == tmp_path / f"{run_id}_fs_benchmark_data.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files
    loaded = load_result(json_path)  # schema-validated
    for key in ("type", "timings", "stats", "checks", "test_info"):
        assert key in loaded
    assert loaded["type"] == "fs"
    assert loaded["timings"]["particle_random_read"] == {"read_particles": 0.5, "total": 0.51}
    assert loaded["stats"]["particle_random_read"]["rounds"] == 3
    assert loaded["checks"]["particle_random_read"] == {
        "passed": True, "bytes_read_passed": True, "bytes_read_expected": 40960}
    assert loaded["test_info"]["profile"] == "smoke"
    assert json_path.read_text().endswith("}\n")


def test_numpy_scalars_and_arrays_serialise(fs_doc, tmp_path):
    json_path, _ = write_group(tmp_path, fs_doc)
    loaded = json.loads(json_path.read_text())
    rate = loaded["metrics"]["particle_random_read"]["particle_random_read_rate"]["value"]
    assert isinstance(rate, float) and rate == pytest.approx(3921.5)
    info = loaded["status"]["particle_random_read"]["info"]
    assert info["particles"] == 2000 and isinstance(info["particles"], int)
    assert info["threads"] == 8 and isinstance(info["threads"], int)
    assert isinstance(loaded["stats"]["particle_random_read"]["min"], float)


def test_numpy_arrays_serialise_as_lists(tmp_path, test_info):
    record = CaseRecord("fs", "t", "n", info={"shape": np.array([10, 16, 16]), "one": np.array([7])})
    json_path, _ = write_group(tmp_path, group_document("fs", [record], test_info, "r1"))
    info = json.loads(json_path.read_text())["status"]["t"]["info"]
    assert info == {"shape": [10, 16, 16], "one": [7]}


def test_paths_serialise_as_text(tmp_path, test_info):
    record = CaseRecord("fs", "t", "n", info={"where": Path("/a/b")})
    json_path, _ = write_group(tmp_path, group_document("fs", [record], test_info, "r1"))
    assert json.loads(json_path.read_text())["status"]["t"]["info"]["where"] == "/a/b"


def test_unserialisable_value_leaves_no_file(tmp_path, test_info):
    record = CaseRecord("fs", "t", "n", info={"bad": object()})
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        write_group(tmp_path, group_document("fs", [record], test_info, "r1"))
    assert list(tmp_path.iterdir()) == []


def test_write_group_replaces_an_earlier_file(fs_doc, tmp_path, run_id):
    json_path, _ = result_paths(tmp_path, run_id, "fs")
    json_path.write_text("stale")
    write_group(tmp_path, fs_doc)
    assert load_result(json_path)["run_id"] == run_id


def test_csv_one_row_per_test_and_timing_then_metrics(fs_doc, tmp_path):
    _, csv_path = write_group(tmp_path, fs_doc)
    with open(csv_path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS == ("type", "test", "timing", "value", "unit", "tags")
    assert rows[1:] == [
        ["fs", "particle_random_read", "read_particles", "0.5", "s", "IO"],
        ["fs", "particle_random_read", "total", "0.51", "s", ""],
        ["fs", "particle_random_read", "particle_random_read_time", "0.51", "s", ""],
        ["fs", "particle_random_read", "particle_random_read_rate", "3921.5", "particles/s", ""],
        ["fs", "particle_cache", "copy_particles", "1.25", "s", "IO"],
        ["fs", "particle_cache", "total", "1.3", "s", ""],
        ["fs", "particle_cache", "particle_cache_time", "1.3", "s", ""],
        ["fs", "particle_cache", "particle_cache_rate", "100.0", "MB/s", ""],
    ]


def test_csv_rows_join_several_tags(test_info):
    record = CaseRecord("gpu", "k", "n", timings={"upload": 0.1}, tags={"upload": ["PCIe", "Alloc"]})
    rows = csv_rows(group_document("gpu", [record], test_info, "r"))
    assert rows == [("gpu", "k", "upload", 0.1, "s", "PCIe Alloc")]


def test_result_paths():
    assert result_paths(Path("/out"), "cb20240101-120000", "gpu") == (
        Path("/out/cb20240101-120000_gpu_benchmark_data.json"),
        Path("/out/cb20240101-120000_gpu_benchmark_data.csv"))


def test_result_paths_with_a_dot_in_the_run_id():
    assert result_paths(Path("/out"), "v1.2", "gpu") == (
        Path("/out/v1.2_gpu_benchmark_data.json"), Path("/out/v1.2_gpu_benchmark_data.csv"))


def test_groups_of_a_dotted_run_id_do_not_overwrite_each_other(tmp_path, test_info):
    for group in ("fs", "gpu"):
        write_group(tmp_path, group_document(group, [], test_info, "nightly.3"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "nightly.3_fs_benchmark_data.csv", "nightly.3_fs_benchmark_data.json",
        "nightly.3_gpu_benchmark_data.csv", "nightly.3_gpu_benchmark_data.json"]


def test_metric_and_record_defaults():
    assert Metric(1.0, "s").to_json() == {"value": 1.0, "unit": "s", "better": "lower"}
    record = CaseRecord("fs", "t", "n")
    assert record.outcome == "passed" and record.checks_passed
    record.checks["passed"] = False
    assert not record.checks_passed
    assert CaseRecord("fs", "u", "n").timings == {}  # no shared mutable defaults


def test_empty_group_is_valid(tmp_path, test_info):
    json_path, csv_path = write_group(tmp_path, group_document("cpu", [], test_info, "r2"))
    assert load_result(json_path)["timings"] == {}
    assert csv_path.read_text().splitlines() == [",".join(CSV_COLUMNS)]


def test_numpy_float64_timings_are_exact(tmp_path, test_info):
    value = np.float64(0.1) + np.float64(0.2)
    record = CaseRecord("fs", "t", "n", timings={"total": value})
    json_path, _ = write_group(tmp_path, group_document("fs", [record], test_info, "r3"))
    assert load_result(json_path)["timings"]["t"]["total"] == float(value)
