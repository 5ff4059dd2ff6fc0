"""Reference and baseline files: making, loading, lookup by name, validation errors."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

from pytest_cryobench.errors import ResultFileError
from pytest_cryobench.record import derive
from pytest_cryobench.record.model import CaseRecord, group_document, write_group
from pytest_cryobench.record.references import (
    REFERENCE_KIND,
    Comparison,
    known_references,
    load_baseline,
    load_reference,
    load_result,
    make_reference,
    read_json,
    result_tests,
    sibling_result_files,
    validate,
)

REPO = Path(__file__).resolve().parents[2]


def write_json(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def reference(fs_doc, gpu_doc, tmp_path):
    """A reference made the way the CLI makes one: from result files read back from disk."""
    out = tmp_path / "run-files"
    out.mkdir()
    docs = [load_result(write_group(out, doc)[0]) for doc in (fs_doc, gpu_doc)]
    return make_reference(docs, "lab-h100", "the lab's H100 box")


# --------------------------------------------------------------------------- make_reference

def test_make_reference_from_result_documents(reference, run_id):
    assert reference["kind"] == REFERENCE_KIND
    assert reference["schema_version"] == 2
    assert reference["name"] == "lab-h100"
    assert reference["description"] == "the lab's H100 box"
    assert (reference["profile"], reference["backend"], reference["data"]) == ("smoke", "numpy", "synthetic")
    assert reference["source_run"] == run_id
    assert reference["cryobench_version"] == "0.1.0"
    assert reference["command"].startswith("pytest --cryobench")
    assert reference["instance_information"]["cpu_model"].startswith("AMD EPYC")
    assert set(reference["tests"]) == {"fs", "gpu"}
    assert set(reference["tests"]["fs"]) == {"particle_random_read", "particle_cache",
                                             "particle_sequential_read"}
    validate(reference, "reference-2.schema.json", Path("x"), "reference")


def test_reference_entries(reference):
    """A reference holds each case as the run did: its samples, amounts and headline, nothing derived."""
    read = reference["tests"]["fs"]["particle_random_read"]
    assert read["outcome"] == "passed"
    assert read["info"]["tolerance"] == 1.5  # the case's own tolerance
    assert read["samples"] == {"read_particles": [0.5, 0.49, 0.59], "total": [0.51, 0.5, 0.6]}
    assert read["amounts"] == {"particles": 2000, "bytes": 40960}
    assert read["verdicts"] == {}
    assert not {"metrics", "timings", "stats"} & set(read)
    assert "tolerance" not in reference["tests"]["fs"]["particle_cache"]["info"]
    skipped = reference["tests"]["fs"]["particle_sequential_read"]
    assert skipped["outcome"] == "skipped" and skipped["samples"] == {}


def test_reference_figures_are_derived_on_their_own_scale(reference, tmp_path):
    comparison = load_reference(str(write_json(tmp_path / "r.json", reference)))
    figures = derive.figures(comparison.entry("fs", "particle_random_read"))
    assert list(figures) == ["particle_random_read_time", "particles_per_s", "mb_per_s"]
    assert figures["particle_random_read_time"].value == 0.51
    assert figures["particle_random_read_time"].spread == pytest.approx(0.05 / 2)  # inclusive IQR, seconds
    rates = sorted(2000 / t for t in (0.51, 0.5, 0.6))
    assert figures["particles_per_s"].value == pytest.approx(2000 / 0.51)
    assert figures["particles_per_s"].spread == pytest.approx(((rates[1] + rates[2]) / 2 - (rates[0] + rates[1]) / 2) / 2)


def test_make_reference_does_not_change_the_result_documents(fs_doc, gpu_doc):
    before = copy.deepcopy(fs_doc)
    make_reference([fs_doc, gpu_doc], "x")
    assert fs_doc == before


def test_make_reference_refuses_mixed_runs_and_nothing(fs_doc, info_factory):
    other = group_document("gpu", [], info_factory(), "another-run")
    with pytest.raises(ResultFileError, match="different runs"):
        make_reference([fs_doc, other], "x")
    with pytest.raises(ResultFileError, match="no result file given"):
        make_reference([], "x")


def test_make_reference_validates_the_name(fs_doc):
    with pytest.raises(ResultFileError, match=r"reference <my box> does not match its schema at name"):
        make_reference([fs_doc], "my box")


# --------------------------------------------------------------------------- load_reference

def test_load_reference_by_path(reference, tmp_path, run_id):
    path = write_json(tmp_path / "anything.json", reference)
    comparison = load_reference(str(path))
    assert isinstance(comparison, Comparison)
    assert comparison.name == "lab-h100"
    assert comparison.kind == "reference"
    assert comparison.path == path
    assert comparison.context == {"profile": "smoke", "backend": "numpy", "data": "synthetic", "eer": None}
    assert set(comparison.tests) == {("fs", "particle_random_read"), ("fs", "particle_cache"),
                                     ("fs", "particle_sequential_read"), ("gpu", "fsc_loose[gpu0]")}
    assert derive.headline(comparison.entry("gpu", "fsc_loose[gpu0]")).value == 0.2
    assert comparison.entry("cpu", "nothing") is None


def test_load_reference_by_name_from_search_dirs(reference, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_json(second / "lab-h100.json", reference)
    comparison = load_reference("lab-h100", [None, tmp_path / "missing", first, second])
    assert comparison.name == "lab-h100"
    assert comparison.path == second / "lab-h100.json"


def test_earlier_search_dirs_win(reference, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_json(first / "box.json", {**reference, "name": "box-first"})
    write_json(second / "box.json", {**reference, "name": "box-second"})
    write_json(second / "other.json", reference)
    (second / "notes.txt").write_text("ignored")
    assert known_references([first, second]) == {"box": first / "box.json", "other": second / "other.json"}
    assert load_reference("box", [first, second]).name == "box-first"


def test_unknown_name_lists_the_known_ones(reference, tmp_path):
    write_json(tmp_path / "zeta.json", reference)
    write_json(tmp_path / "alpha.json", reference)
    with pytest.raises(ResultFileError) as info:
        load_reference("h200", [tmp_path])
    message = str(info.value)
    assert "--cryobench-reference h200: no such file, and no shipped reference of that name" in message
    assert "(known: alpha, zeta)" in message


def test_unknown_name_without_any_reference(tmp_path):
    with pytest.raises(ResultFileError, match=r"known: none are installed"):
        load_reference("h200", [tmp_path, None])


def test_missing_path_is_reported_like_an_unknown_name(tmp_path):
    with pytest.raises(ResultFileError, match="no such file"):
        load_reference(str(tmp_path / "ref.json"), [])


@pytest.mark.parametrize(("text", "says"), [("{", "line 1"), ('{"kind": "cryobench-reference",', "line 1"),
                                            ("", "it is empty"), ("not json at all", "line 1")])
def test_invalid_json(tmp_path, text, says):
    path = tmp_path / "ref.json"
    path.write_text(text)
    with pytest.raises(ResultFileError, match="is not valid JSON") as info:
        load_reference(str(path))
    assert str(path) in str(info.value)
    assert says in str(info.value)


@pytest.mark.parametrize(("raw", "says"), [
    (b"\xff\xfe{\x00\"\x00", "binary file"),
    (b'{"kind": "caf\xe9"}', "not UTF-8 text (byte 0xe9 at offset 13)"),
    (b"\x1f\x8b\x08\x00", "gzip-compressed"),
    (b"group,test,seconds\nfs,tiff,1.0\n", "it is CSV (first line: group,test,seconds)"),
])
def test_files_that_are_not_json_say_what_they_are(tmp_path, raw, says):
    path = tmp_path / "ref.json"
    path.write_bytes(raw)
    with pytest.raises(ResultFileError) as info:
        read_json(path, "reference")
    assert str(info.value).startswith(f"reference {path} is not valid JSON: ")
    assert says in str(info.value)


def test_read_json_missing_file(tmp_path):
    with pytest.raises(ResultFileError, match=r"baseline .*gone\.json does not exist"):
        read_json(tmp_path / "gone.json", "baseline")


def test_schema_violation_names_the_location(reference, tmp_path):
    reference["tests"]["fs"]["particle_cache"]["samples"]["total"][0] = "fast"
    path = write_json(tmp_path / "ref.json", reference)
    with pytest.raises(ResultFileError) as info:
        load_reference(str(path))
    message = str(info.value)
    assert f"reference {path} does not match its schema at " in message
    assert "tests/fs/particle_cache/samples/total/0" in message
    assert "'fast' is not of type 'number'" in message


def test_schema_violation_counts_further_problems(reference, tmp_path):
    reference["profile"] = "tiny"
    reference["backend"] = "opencl"
    path = write_json(tmp_path / "ref.json", reference)
    with pytest.raises(ResultFileError, match=r"at backend: .*\(and 1 more problem\(s\)\)"):
        load_reference(str(path))


def test_missing_required_key_is_at_top_level(reference, tmp_path):
    del reference["tests"]
    path = write_json(tmp_path / "ref.json", reference)
    with pytest.raises(ResultFileError, match=r"at \(top level\): 'tests' is a required property"):
        load_reference(str(path))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5])
def test_impossible_times_are_refused(reference, tmp_path, value):
    reference["tests"]["fs"]["particle_cache"]["samples"]["total"][1] = value
    path = write_json(tmp_path / "ref.json", reference)  # json writes NaN and Infinity as Python reads them
    with pytest.raises(ResultFileError, match="does not match its schema at tests/fs/particle_cache/samples/total/1"):
        load_reference(str(path))


def test_newer_schema_version_says_to_upgrade(reference, tmp_path):
    reference["schema_version"] = 3
    path = write_json(tmp_path / "ref.json", reference)
    with pytest.raises(ResultFileError, match=r"schema version 3; .* reads versions 1, 2: it was written by a newer pytest-cryobench; upgrade this one"):
        load_reference(str(path))


@pytest.mark.parametrize("version", [0, "1", None])
def test_other_schema_versions_do_not_say_upgrade(reference, tmp_path, version):
    reference["schema_version"] = version
    path = write_json(tmp_path / "ref.json", reference)
    with pytest.raises(ResultFileError, match="schema version") as info:
        load_reference(str(path))
    assert "upgrade this one" not in str(info.value)
    if version == 0:
        assert "written by an older pytest-cryobench" in str(info.value)


def test_wrong_kind_and_not_an_object(tmp_path, reference):
    path = write_json(tmp_path / "ref.json", {**reference, "kind": "something-else"})
    with pytest.raises(ResultFileError, match="is not a pytest-cryobench reference file"):
        load_reference(str(path))
    path = write_json(tmp_path / "list.json", [1, 2])
    with pytest.raises(ResultFileError, match="is not a JSON object"):
        load_reference(str(path))


def test_a_result_file_given_as_reference_is_compared_like_a_run(fs_doc, tmp_path, run_id):
    json_path, _ = write_group(tmp_path, fs_doc)
    comparison = load_reference(str(json_path))
    assert comparison.name == f"run {run_id}"
    assert comparison.kind == "reference"
    assert ("fs", "particle_cache") in comparison.tests


# --------------------------------------------------------------------------- results and baselines

def test_load_result_rejects_a_reference(reference, tmp_path):
    path = write_json(tmp_path / "ref.json", reference)
    with pytest.raises(ResultFileError, match="is not a pytest-cryobench result file"):
        load_result(path)


def test_load_result_schema_violation(fs_doc, tmp_path):
    path, _ = write_group(tmp_path, fs_doc)
    doc = json.loads(path.read_text())
    doc["test_info"]["profile"] = "medium"
    write_json(path, doc)
    with pytest.raises(ResultFileError, match=r"does not match its schema at test_info/profile"):
        load_result(path)


def test_result_tests(fs_doc):
    tests = result_tests(fs_doc)
    assert set(tests) == {("fs", "particle_random_read"), ("fs", "particle_cache"),
                          ("fs", "particle_sequential_read")}
    assert isinstance(tests[("fs", "particle_cache")], CaseRecord)
    assert derive.total_stats(tests[("fs", "particle_cache")])["iqr"] == pytest.approx(0.1)


def test_load_baseline_picks_up_sibling_group_files(fs_doc, gpu_doc, tmp_path, run_id, info_factory):
    fs_path, _ = write_group(tmp_path, fs_doc)
    write_group(tmp_path, gpu_doc)
    write_group(tmp_path, group_document("cpu", [], info_factory(), "other-run"))
    baseline = load_baseline(fs_path)
    assert baseline.name == f"baseline {run_id}"
    assert baseline.kind == "baseline"
    assert baseline.path == fs_path
    assert baseline.context == {"profile": "smoke", "backend": "numpy", "data": "synthetic", "eer": {}}
    assert set(baseline.tests) == {("fs", "particle_random_read"), ("fs", "particle_cache"),
                                   ("fs", "particle_sequential_read"), ("gpu", "fsc_loose[gpu0]")}
    assert baseline.entry("fs", "particle_random_read").tolerance == 1.5
    gpu_path = tmp_path / f"{run_id}_gpu_benchmark_data.json"
    assert set(load_baseline(gpu_path).tests) == set(baseline.tests)


def test_sibling_result_files(tmp_path):
    for name in ("my_run_1_fs_benchmark_data.json", "my_run_1_gpu_benchmark_data.json",
                 "my_run_2_cpu_benchmark_data.json", "my_run_1_extra_benchmark_data.json"):
        (tmp_path / name).write_text("{}")
    found = sibling_result_files(tmp_path / "my_run_1_gpu_benchmark_data.json")
    assert [p.name for p in found] == ["my_run_1_gpu_benchmark_data.json", "my_run_1_fs_benchmark_data.json"]
    odd = tmp_path / "renamed.json"
    assert sibling_result_files(odd) == [odd]


def test_load_baseline_of_an_invalid_sibling_fails(fs_doc, tmp_path, run_id):
    fs_path, _ = write_group(tmp_path, fs_doc)
    (tmp_path / f"{run_id}_gpu_benchmark_data.json").write_text("{trunc")
    with pytest.raises(ResultFileError, match=r"baseline .*_gpu_benchmark_data\.json is not valid JSON"):
        load_baseline(fs_path)


# --------------------------------------------------------------------------- shipped references

@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_no_packaged_name_collides_with_a_module():
    # Regression: the data package "pytest_cryobench.record.references" once shadowed the module
    # pytest_cryobench/references.py in a wheel, so the plugin could not import load_reference.
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = {f"pytest_cryobench.{p.stem}" for p in (REPO / "pytest_cryobench").glob("*.py")}
    assert sorted(set(config["packages"]) & modules) == []
    for package, folder in config.get("package-dir", {}).items():
        assert package in config["packages"]
        assert (REPO / folder / "__init__.py").is_file(), package
