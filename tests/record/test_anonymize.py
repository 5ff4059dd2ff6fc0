"""Stripping identifying fields from result documents."""

from __future__ import annotations

import copy
import json

from pytest_cryobench.record.anonymize import REDACTED, anonymize_document
from pytest_cryobench.record.model import write_group
from pytest_cryobench.record.references import load_result


def _json(doc) -> str:
    return json.dumps(doc, default=lambda v: v.item())


def test_identifying_fields_are_redacted(fs_doc):
    out = anonymize_document(fs_doc)
    info = out["test_info"]
    machine = info["instance_information"]
    assert machine["platform_node"] == REDACTED
    assert machine["user"] == REDACTED
    assert [gpu["bus_id"] for gpu in machine["gpus"]] == [REDACTED, REDACTED]
    assert machine["project_dir"] == REDACTED
    assert machine["project_dir_device"] == REDACTED
    assert machine["project_dir_mountpoint"] == REDACTED
    assert info["gpu_bus_id"] == REDACTED
    # the command keeps its options, not its paths
    assert info["command"] == "pytest --cryobench --cryobench-project-dir <redacted>"
    assert info["job_params"]["project_dir"] == REDACTED
    assert info["job_params"]["benchmark_data_dir"] == REDACTED
    assert all(case["nodeid"] == REDACTED for case in out["tests"].values())
    assert info["anonymized"] is True


def test_what_compares_machines_is_kept(fs_doc):
    out = anonymize_document(fs_doc)
    machine = out["test_info"]["instance_information"]
    assert machine["cpu_model"] == "AMD EPYC 7543 32-Core Processor"
    assert machine["project_dir_fstype"] == "nfs4"
    assert machine["nvidia_driver_version"] == "550.54.15"
    assert [gpu["name"] for gpu in machine["gpus"]] == ["NVIDIA H100 80GB HBM3"] * 2
    assert [gpu["memory_total"] for gpu in machine["gpus"]] == [85_520_809_984] * 2
    assert out["test_info"]["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert out["test_info"]["profile"] == "smoke"


def test_unset_fields_stay_none(fs_doc):
    out = anonymize_document(fs_doc)
    assert out["test_info"]["instance_information"]["cache_dir"] is None
    assert out["test_info"]["job_params"]["cache_dir"] is None


def test_figures_are_untouched(fs_doc):
    out = anonymize_document(fs_doc)
    for key in ("timings", "type", "run_id", "schema_version", "kind"):
        assert out[key] == fs_doc[key], key
    for test, case in fs_doc["tests"].items():
        for key in ("samples", "amounts", "headline", "rates", "checks", "tags", "outcome", "reason", "warm",
                    "residency", "verdicts"):
            assert out["tests"][test][key] == case[key]


def test_input_is_not_mutated(fs_doc):
    before = copy.deepcopy(fs_doc)
    out = anonymize_document(fs_doc)
    assert fs_doc == before
    assert "anonymized" not in fs_doc["test_info"]
    out["tests"]["particle_cache"]["info"]["x"] = 1
    assert "x" not in fs_doc["tests"]["particle_cache"]["info"]


def test_anonymized_document_is_still_a_valid_result(fs_doc, tmp_path):
    json_path, _ = write_group(tmp_path, anonymize_document(fs_doc))
    loaded = load_result(json_path)
    assert loaded["test_info"]["anonymized"] is True


def test_document_without_test_info():
    out = anonymize_document({"user": "bob", "nested": [{"bus_id": "0000:01:00.0"}, {"bus_id": None}]})
    # A document without test_info (a reference) gets the flag at its top level.
    assert out == {"user": REDACTED, "nested": [{"bus_id": REDACTED}, {"bus_id": None}],
                   "anonymized": True}


def test_host_name_and_bus_ids_appear_nowhere(fs_doc):
    text = _json(anonymize_document(fs_doc))
    for secret in ("alice-workstation", "00000000:1B:00.0", "00000000:43:00.0", "fileserver.lab"):
        assert secret not in text


def test_paths_appear_nowhere(fs_doc):
    text = _json(anonymize_document(fs_doc))
    assert "/home/alice" not in text


def test_commands_lose_paths_but_keep_options():
    doc = {"test_info": {"command": "pytest --cryobench --cryobench-output=/srv/x/out -k 'engine and D7' "
                                    "--cryobench-data ~/bench ./here --cryobench-profile=standard"},
           "reference_command": "cryobench save-reference /home/bob/r_gpu.json --name lab"}
    out = anonymize_document(doc)
    assert out["test_info"]["command"] == ("pytest --cryobench --cryobench-output=<redacted> -k 'engine and D7' "
                                           "--cryobench-data <redacted> <redacted> --cryobench-profile=standard")
    assert out["reference_command"] == "cryobench save-reference <redacted> --name lab"
    assert anonymize_document({"command": "pytest 'unbalanced"})["command"] == REDACTED


def test_words_that_are_not_paths_survive(fs_doc):
    doc = copy.deepcopy(fs_doc)
    doc["test_info"]["instance_information"]["user"] = "root"
    doc["test_info"]["instance_information"]["platform_node"] = "vm"
    doc["tests"]["particle_cache"]["info"]["source"] = "synthetic"
    doc["tests"]["particle_cache"]["reason"] = "running as a regular (non-root) user; see vmlinuz on vm"
    out = anonymize_document(doc)
    assert out["test_info"]["data"] == "synthetic"  # still comparable with references
    assert out["tests"]["particle_cache"]["info"]["source"] == "synthetic"
    assert out["tests"]["particle_cache"]["reason"] == "running as a regular (non-root) user; see vmlinuz on <redacted>"
    assert out["test_info"]["instance_information"]["user"] == REDACTED


def test_paths_in_reason_texts_are_scrubbed_relative_ones_included():
    from pytest_cryobench.record.anonymize import REDACTED, anonymize_document

    reason = ("../venv/lib/python3.11/site-packages/mrcfile/mrcinterpreter.py:383: OSError; see ./data/x.mrc, "
              "~/bench/y and /srv/lab/alice/z.cs; 1.2 MB/s for fs/mrc, https://example.org/a/b")
    doc = {"type": "fs", "test_info": {}, "tests": {"mrc": {"outcome": "failed", "reason": reason}}}
    out = anonymize_document(doc)["tests"]["mrc"]["reason"]
    assert out == (f"{REDACTED}: OSError; see {REDACTED}, {REDACTED} and {REDACTED}; 1.2 MB/s for fs/mrc, "
                   "https://example.org/a/b")
