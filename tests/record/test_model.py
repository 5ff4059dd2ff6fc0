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
    csv_rows,
    group_document,
    result_paths,
    write_group,
)
from pytest_cryobench.record.references import load_result


def test_group_document_shape(fs_doc, run_id, test_info):
    assert fs_doc["schema_version"] == RESULT_SCHEMA_VERSION == 2
    assert fs_doc["kind"] == RESULT_KIND == "cryobench-result"
    assert fs_doc["type"] == "fs"
    assert fs_doc["run_id"] == run_id
    assert fs_doc["test_info"] is test_info
    tests = ["particle_random_read", "particle_cache", "particle_sequential_read"]
    assert list(fs_doc["tests"]) == tests  # one object per case
    cache = fs_doc["tests"]["particle_cache"]
    assert cache["samples"] == {"copy_particles": [1.15, 1.25, 1.35], "total": [1.2, 1.3, 1.4]}
    assert cache["tags"] == {"copy_particles": ["IO"]}
    assert cache["amounts"] == {"bytes": 130e6} and cache["rates"] == ["mb_per_s"]
    assert cache["headline"] == {"name": "particle_cache_time", "per": None}
    skipped = fs_doc["tests"]["particle_sequential_read"]
    assert skipped["outcome"] == "skipped" and skipped["reason"] == "no space" and skipped["samples"] == {}
    read = fs_doc["tests"]["particle_random_read"]
    assert read["residency"] == [0.0, 0.001, 0.0]
    assert read["nodeid"].endswith("::test_particle_random_read")
    assert read["warm"] is False
    # no figure is stored twice: medians, stats and rates are not in the case objects
    assert not {"timings", "stats", "metrics"} & set(read)


def test_cryosparc_view_is_derived_medians(fs_doc):
    """``type``, ``timings`` (median seconds per sub-timing and total) and ``test_info``, as
    CryoSPARC's files have them."""
    assert fs_doc["timings"] == {
        "particle_random_read": {"read_particles": 0.5, "total": 0.51},
        "particle_cache": {"copy_particles": 1.25, "total": 1.3}}  # a case that did not run has none


def test_group_document_copies_the_record_dicts(records_fs, test_info, run_id):
    doc = group_document("fs", records_fs, test_info, run_id)
    records_fs[1].samples["total"][1] = 99.0
    records_fs[1].tags["copy_particles"].append("CPU")
    assert doc["tests"]["particle_cache"]["samples"]["total"][1] == 1.3
    assert doc["tests"]["particle_cache"]["tags"]["copy_particles"] == ["IO"]


def test_write_group_produces_valid_json_and_csv(fs_doc, tmp_path, run_id):
    paths = write_group(tmp_path, fs_doc)
    json_path, csv_path = paths
    assert json_path == tmp_path / f"{run_id}_fs_benchmark_data.json"
    assert csv_path == tmp_path / f"{run_id}_fs_benchmark_data.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files
    loaded = load_result(json_path)  # schema-validated
    for key in ("type", "timings", "tests", "test_info"):
        assert key in loaded
    assert loaded["type"] == "fs"
    assert loaded["timings"]["particle_random_read"] == {"read_particles": 0.5, "total": 0.51}
    assert len(loaded["tests"]["particle_random_read"]["samples"]["total"]) == 3
    assert loaded["tests"]["particle_random_read"]["checks"] == {
        "passed": True, "bytes_read_passed": True, "bytes_read_expected": 40960}
    assert loaded["test_info"]["profile"] == "smoke"
    assert json_path.read_text().endswith("}\n")


def test_numpy_scalars_and_arrays_serialise(fs_doc, tmp_path):
    json_path, _ = write_group(tmp_path, fs_doc)
    loaded = json.loads(json_path.read_text())
    read = loaded["tests"]["particle_random_read"]
    assert read["amounts"]["particles"] == 2000
    assert read["info"]["threads"] == 8 and isinstance(read["info"]["threads"], int)
    assert all(isinstance(t, float) for t in read["samples"]["total"])


def test_numpy_arrays_serialise_as_lists(tmp_path, test_info):
    record = CaseRecord("fs", "t", "n", info={"shape": np.array([10, 16, 16]), "one": np.array([7])})
    json_path, _ = write_group(tmp_path, group_document("fs", [record], test_info, "r1"))
    info = json.loads(json_path.read_text())["tests"]["t"]["info"]
    assert info == {"shape": [10, 16, 16], "one": [7]}


def test_paths_serialise_as_text(tmp_path, test_info):
    record = CaseRecord("fs", "t", "n", info={"where": Path("/a/b")})
    json_path, _ = write_group(tmp_path, group_document("fs", [record], test_info, "r1"))
    assert json.loads(json_path.read_text())["tests"]["t"]["info"]["where"] == "/a/b"


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


def test_csv_one_row_per_test_and_timing_then_figures(fs_doc, tmp_path):
    _, csv_path = write_group(tmp_path, fs_doc)
    with open(csv_path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS == ("type", "test", "timing", "value", "unit", "tags")
    assert rows[1:] == [
        ["fs", "particle_random_read", "read_particles", "0.5", "s", "IO"],
        ["fs", "particle_random_read", "total", "0.51", "s", ""],
        ["fs", "particle_random_read", "particle_random_read_time", "0.51", "s", ""],
        ["fs", "particle_random_read", "particles_per_s", str(2000 / 0.51), "particles/s", ""],
        ["fs", "particle_random_read", "mb_per_s", str(40960 * 1e-6 / 0.51), "MB/s", ""],
        ["fs", "particle_cache", "copy_particles", "1.25", "s", "IO"],
        ["fs", "particle_cache", "total", "1.3", "s", ""],
        ["fs", "particle_cache", "particle_cache_time", "1.3", "s", ""],
        ["fs", "particle_cache", "mb_per_s", str(130e6 * 1e-6 / 1.3), "MB/s", ""],
    ]


def test_csv_rows_join_several_tags(test_info):
    record = CaseRecord("gpu", "k", "n", samples={"upload": [0.1], "total": [0.1]}, tags={"upload": ["PCIe", "Alloc"]})
    rows = csv_rows(group_document("gpu", [record], test_info, "r"))
    assert rows == [("gpu", "k", "upload", 0.1, "s", "PCIe Alloc"), ("gpu", "k", "total", 0.1, "s", "")]


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


def test_record_defaults():
    record = CaseRecord("fs", "t", "n")
    assert record.outcome == "passed" and record.checks_passed
    record.checks["passed"] = False
    assert not record.checks_passed
    assert CaseRecord("fs", "u", "n").checks == {}  # no shared mutable defaults


def test_empty_group_is_valid(tmp_path, test_info):
    json_path, csv_path = write_group(tmp_path, group_document("cpu", [], test_info, "r2"))
    assert load_result(json_path)["timings"] == {}
    assert csv_path.read_text().splitlines() == [",".join(CSV_COLUMNS)]


def test_numpy_float64_samples_are_exact(tmp_path, test_info):
    value = np.float64(0.1) + np.float64(0.2)
    record = CaseRecord("fs", "t", "n", samples={"total": [value]})
    json_path, _ = write_group(tmp_path, group_document("fs", [record], test_info, "r3"))
    assert load_result(json_path)["tests"]["t"]["samples"]["total"] == [float(value)]


def test_record_round_trips_through_json(records_fs):
    for record in records_fs:
        again = CaseRecord.from_json(record.group, record.test, json.loads(json.dumps(record.to_json(), default=float)))
        assert again.samples == {k: [float(x) for x in v] for k, v in record.samples.items()}
        assert (again.headline, again.rates, again.outcome) == (record.headline, record.rates, record.outcome)
