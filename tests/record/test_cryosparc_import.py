"""``cryobench import-cryosparc``: CryoSPARC Benchmark JSON becomes a reference."""

from __future__ import annotations

import json

import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.errors import ResultFileError
from pytest_cryobench.record import derive
from pytest_cryobench.record.cryosparc_import import convert, is_cryosparc_document
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.references import load_column, load_reference
from pytest_cryobench.record.verdicts import judge

# Shaped as the guide's example of what the Benchmark job writes (its numbers are made up here).
TEST_INFO = {
    "cryosparc_version": "v4.1.0",
    "created_at": 1666985248.02303,
    "instance_information": {
        "platform_node": "server_hostname", "platform_release": "4.15.0-142-generic",
        "platform_architecture": "x86_64", "cpu_model": "Intel(R) Xeon(R) CPU E5-1630 v4 @ 3.70GHz",
        "physical_cores": 4, "total_memory": "62.80GB", "ofd_soft_limit": 1048576, "ofd_hard_limit": 1048576},
    "job_params": {"benchmark_data_dir": None, "gpu_num_gpus": 1, "send_data": True, "test_random": True,
                   "test_sequential": True, "use_all_gpus": False, "use_ssd": True},
    "gpu_name": "NVIDIA GeForce GTX 1080 Ti",
    "gpu_bus_id": "0000:02:00.0",
}
GPU_DOC = {
    "type": "gpu",
    "timings": {
        "fsc_spherical": {"put_mapr_on_gpu": 0.5858473777771, "fsc": 0.25},
        "fsc_loose": {"put_mapr_on_gpu": 0.677032470703125, "mask": 0.4, "fsc": 0.25},
        "memory_multi_linear20_marg_C1": {"total": 41.5},
        "some_future_test": {"step": 1.0},
    },
    "test_info": TEST_INFO,
}
FS_DOC = {"type": "filesystem", "timings": {"particle_cache_time": 30.0, "particle_sequential_read_time": 12.0,
                                            "particle_sequential_read_rate": 4000.0, "tiff": 0.9},
          "test_info": TEST_INFO}


def test_shape_detection():
    assert is_cryosparc_document(GPU_DOC)
    assert not is_cryosparc_document({"kind": "cryobench-result", **GPU_DOC})
    assert not is_cryosparc_document([GPU_DOC])


def test_conversion_maps_tests_that_correspond():
    ref = convert([GPU_DOC, FS_DOC], "gtx1080")
    gpu, fs = ref["tests"]["gpu"], ref["tests"]["fs"]
    # a mapping of sub-timings without a total: the total is their sum
    assert ref["schema_version"] == 2
    # CryoSPARC keeps medians, not rounds: each case holds them as its summary, with no samples
    assert gpu["fsc_spherical[gpu0]"]["samples"] == {} and gpu["fsc_spherical[gpu0]"]["summary"]["from"] == "cryosparc"
    assert gpu["fsc_spherical[gpu0]"]["summary"]["metrics"]["fsc_spherical"] == {
        "value": pytest.approx(0.8358473777771), "unit": "s", "better": "lower"}
    assert gpu["fsc_loose[gpu0]"]["summary"]["timings"]["mask"] == 0.4
    metrics = gpu["memory_multi_linear20_marg_C1[gpu0]"]["summary"]["metrics"]
    assert metrics["memory_multi_linear20_marg_C1"]["value"] == 41.5
    assert fs["particle_cache"]["summary"]["metrics"]["particle_cache_time"]["value"] == 30.0
    assert fs["tiff"]["summary"]["metrics"]["tiff"]["value"] == 0.9
    # the rest is kept, with its timings, and marked not comparable
    assert "no counterpart here" in gpu["some_future_test"]["not_comparable"]
    assert "not_comparable" in fs["particle_sequential_read_rate"]
    assert (ref["profile"], ref["backend"], ref["data"]) == ("full", "cupy", "cryosparc")
    assert ref["instance_information"]["gpus"] == [
        {"index": 0, "name": "NVIDIA GeForce GTX 1080 Ti", "bus_id": "0000:02:00.0"}]
    assert ref["created_at"] == TEST_INFO["created_at"]
    assert ref["imported_from"]["cryosparc_version"] == "v4.1.0"


def test_imported_reference_gives_verdicts_only_where_comparable(tmp_path):
    path = tmp_path / "gtx1080.json"
    path.write_text(json.dumps(convert([GPU_DOC], "gtx1080", device="gpu1")))
    ref = load_reference(str(path))
    real = {"profile": "full", "backend": "cupy", "data": "cryosparc"}
    # five rounds: enough for the interval of the ratio to exclude the tolerance (one round is not)
    run = CaseRecord("gpu", "fsc_loose[gpu1]", samples={"total": [2.0, 2.02, 1.98, 2.01, 1.99]},
                     headline={"name": "fsc_loose"})
    slower = judge(run=run, run_context=real, ref_context=ref.context, ref=ref.entry("gpu", "fsc_loose[gpu1]"),
                   tolerance=1.25)
    assert slower.verdict == "slower" and slower.method == "summary-reference"
    one_round = judge(run=CaseRecord("gpu", "fsc_loose[gpu1]", samples={"total": [2.0]},
                                     headline={"name": "fsc_loose"}),
                      run_context=real, ref_context=ref.context, ref=ref.entry("gpu", "fsc_loose[gpu1]"),
                      tolerance=1.25)
    assert one_round.verdict == "inconclusive"  # one round bounds nothing: never "slower"
    synthetic = judge(run=run, run_context={**real, "data": "synthetic"}, ref_context=ref.context,
                      ref=ref.entry("gpu", "fsc_loose[gpu1]"), tolerance=1.25)
    assert synthetic.verdict == "not comparable" and "data synthetic here, cryosparc" in synthetic.detail
    unmapped = judge(run=CaseRecord("gpu", "some_future_test"), run_context=real, ref_context=ref.context,
                     ref=ref.entry("gpu", "some_future_test"), tolerance=1.25)
    assert unmapped.verdict == "not comparable" and "no counterpart" in unmapped.detail


def test_the_cryosparc_view_of_our_own_result_files_imports(fs_doc):
    """A result file's ``type``, ``timings`` and ``test_info`` are CryoSPARC's shape: tools that read
    CryoSPARC's files (import-cryosparc among them) read that view."""
    view = {key: fs_doc[key] for key in ("type", "timings", "test_info")}
    assert is_cryosparc_document(view)
    ref = convert([view], "ours")
    case = ref["tests"]["fs"]["particle_cache"]  # CryoSPARC calls it particle_cache_time: kept, not mapped
    assert case["summary"]["timings"] == {"copy_particles": 1.25, "total": 1.3}


def test_cli_writes_a_valid_reference_and_records_the_command(tmp_path, capsys):
    src = tmp_path / "gpu_benchmark.json"
    src.write_text(json.dumps(GPU_DOC))
    out = tmp_path / "lab.json"
    assert main(["import-cryosparc", str(src), "--name", "lab-1080", "-o", str(out)]) == 0
    assert "3 test(s) mapped, 1 kept as not comparable" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["name"] == "lab-1080"
    assert doc["command"].startswith("cryobench import-cryosparc ") and str(src) in doc["command"]
    assert main(["validate", str(out)]) == 0
    # refuses to overwrite
    assert main(["import-cryosparc", str(src), "--name", "lab-1080", "-o", str(out)]) == 2
    assert "exists; use --force" in capsys.readouterr().err


def test_compare_reads_cryosparc_json_directly(tmp_path):
    src = tmp_path / "gpu benchmark (v4).json"
    src.write_text(json.dumps(GPU_DOC))
    column = load_column(str(src))
    assert column.name == "gpu-benchmark-v4"
    assert derive.headline(column.entry("gpu", "fsc_loose[gpu0]")).value == pytest.approx(1.327032470703125)


@pytest.mark.parametrize("doc, message", [
    ({"type": "gpu", "timings": {"fsc_loose": "fast"}, "test_info": {}}, "timings/fsc_loose is str"),
    ({"type": "gpu", "timings": {"fsc_loose": {"a": None}}, "test_info": {}}, "timings/fsc_loose/a is None"),
    ({"type": "tape", "timings": {}, "test_info": {}}, "unknown type 'tape'"),
    ({"timings": {}}, "is not a CryoSPARC Benchmark result"),
])
def test_bad_cryosparc_files(doc, message):
    with pytest.raises(ResultFileError, match=message.replace("(", r"\(")):
        convert([doc], "x", sources=[__import__("pathlib").Path("f.json")])


def test_two_files_of_one_group_are_refused(capsys, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        path.write_text(json.dumps(GPU_DOC))
    assert main(["import-cryosparc", str(a), str(b), "-o", str(tmp_path / "x.json")]) == 2
    assert "a second gpu result" in capsys.readouterr().err
    c = tmp_path / "c.json"
    c.write_text("{truncated")
    assert main(["import-cryosparc", str(c)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [
    ({"timings": {"fsc_loose": {"a": -1}}}, r"timings/fsc_loose/a is -1, not a time"),
    ({"timings": {"fsc_loose": {"a": float("nan")}}}, r"timings/fsc_loose/a is nan, not a time"),
    ({"timings": {"fsc_loose": float("inf")}}, r"timings/fsc_loose is inf, not a time"),
    ({"test_info": {"instance_information": "abc"}}, r"test_info/instance_information is str"),
    ({"test_info": {"created_at": 1e300}}, r"test_info/created_at is 1e\+300, not a date"),
])
def test_impossible_values_are_refused(bad, message):
    doc = {"type": "gpu", "timings": {"fsc_loose": {"a": 0.5}}, "test_info": {"cryosparc_version": "v4.4"}}
    doc = {**doc, **{k: ({**doc[k], **v} if k == "test_info" else v) for k, v in bad.items()}}
    with pytest.raises(ResultFileError, match=message):
        convert([doc], "x")
