"""References and baselines with impossible numbers (NaN, infinite, zero or negative times and
rates) are refused when loaded and by ``cryobench validate``, naming the file and the place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.errors import ResultFileError
from pytest_cryobench.record.references import impossible_number, load_baseline, load_reference

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "references" / "ci-2core-epyc-numpy-smoke.json"
BAD = [float("nan"), float("inf"), 0.0, -1.0]


def _v1_reference_with(tmp_path, value) -> Path:
    doc = json.loads(SMOKE.read_text())
    doc["tests"]["fs"]["mrc"]["metrics"]["mrc"]["value"] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))  # json writes NaN and Infinity as the bare words Python reads back
    return path


@pytest.mark.parametrize("value", BAD)
def test_a_v1_reference_with_an_impossible_time_is_refused(tmp_path, capsys, value):
    path = _v1_reference_with(tmp_path, value)
    # the schema refuses a negative number itself; NaN, infinity and zero pass JSON-schema's number type
    with pytest.raises(ResultFileError, match=r"(impossible number|does not match its schema) at "
                                               r"tests/fs/mrc/metrics/mrc/value"):
        load_reference(str(path))
    assert main(["validate", str(path)]) == 1
    assert str(path) in capsys.readouterr().out


@pytest.mark.parametrize("value", BAD)
def test_a_v2_run_with_an_impossible_round_is_refused_as_a_baseline(tmp_path, value, fs_doc):
    fs_doc["tests"]["particle_cache"]["samples"]["total"][1] = value
    path = tmp_path / "cb1_fs_benchmark_data.json"
    path.write_text(json.dumps(fs_doc, default=lambda v: v.tolist()))
    with pytest.raises(ResultFileError, match=str(path)):
        load_baseline(path)


def test_a_sub_timing_of_zero_is_possible_but_a_total_of_zero_is_not(fs_doc):
    fs_doc["tests"]["particle_cache"]["samples"]["copy_particles"][0] = 0.0
    assert impossible_number(fs_doc) is None
    fs_doc["tests"]["particle_cache"]["samples"]["total"][0] = 0.0
    assert impossible_number(fs_doc) == "tests/particle_cache/samples/total/0: 0.0"


def test_the_shipped_references_hold_no_impossible_number():
    for path in sorted((REPO / "references").glob("*.json")):
        assert impossible_number(json.loads(path.read_text())) is None, path
