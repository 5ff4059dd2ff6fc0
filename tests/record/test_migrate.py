"""Schema-1 files read as schema 2: every v1 file in the repository loads, and compares exactly as
the v1 code did.

``fixtures/v1/`` holds a smoke ``-m "fs or cpu"`` run written by the schema-1 writer (anonymised),
``expected_compare.json``: the ``compare`` cells the schema-1 code gave for the column pairs below
(both tolerances), and ``v1_compare*.txt``: its ``cryobench compare`` output for that run against
the shipped smoke reference.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.record import derive
from pytest_cryobench.record.compare import build_table
from pytest_cryobench.record.migrate import new_metric_name, update_to_2
from pytest_cryobench.record.references import load_baseline, load_column, load_result, read_json
from pytest_cryobench.record.verdicts import judge, resolve_tolerance

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures") / "v1"
FILES = {"smoke": REPO / "references" / "ci-2core-epyc-numpy-smoke.json",
         "standard": REPO / "references" / "ci-2core-epyc-numpy-standard.json",
         "run": FIXTURES / "v1run_fs_benchmark_data.json"}


def v1_files() -> list[Path]:
    """Every schema-1 result or reference file in the repository."""
    found = []
    for path in sorted([*REPO.glob("references/*.json"), *REPO.glob("tests/**/*.json")]):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and doc.get("schema_version") == 1 and str(doc.get("kind", "")).startswith("cryobench-"):
            found.append(path)
    return found


def test_the_repository_has_v1_files():
    names = {p.name for p in v1_files()}
    assert {"ci-2core-epyc-numpy-smoke.json", "ci-2core-epyc-numpy-standard.json",
            "v1run_fs_benchmark_data.json", "v1run_cpu_benchmark_data.json"} <= names


@pytest.mark.parametrize("path", v1_files(), ids=lambda p: p.name)
def test_every_v1_file_loads_and_validates(path, capsys):
    column = load_column(str(path))
    assert column.tests
    for record in column.tests.values():
        assert record.samples == {} and record.summary["from"] == 1  # medians only, said so
        figures = derive.figures(record)
        assert all(f.samples is None for f in figures.values())
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def _cells(a: str, b: str, tolerance):
    columns = [load_column(str(FILES[a])), load_column(str(FILES[b]))]
    table = build_table(columns, reference=1, tolerance=tolerance, detail=True)
    return [[r.group, r.test, r.timing, r.cells[0].mark, r.cells[0].speedup, r.cells[0].seconds, r.cells[0].detail]
            for r in table.rows]


EXPECTED = json.loads((FIXTURES / "expected_compare.json").read_text())


@pytest.mark.parametrize("key", list(EXPECTED))
def test_compare_verdicts_are_those_of_schema_1(key):
    a, _, b, _, tolerance = key.split()
    got = json.loads(json.dumps(_cells(a, b, None if tolerance == "None" else float(tolerance))))
    assert got == EXPECTED[key]


@pytest.mark.parametrize("detail", [False, True])
def test_compare_output_is_that_of_schema_1(detail, capsys):
    args = ["compare", *(["--detail"] if detail else []), str(FILES["run"]), "ci-2core-epyc-numpy-smoke"]
    main(args)
    expected = (FIXTURES / ("v1_compare_detail.txt" if detail else "v1_compare.txt")).read_text()
    out = capsys.readouterr().out
    # the legend now explains the interval and "can't tell"; every table row and note is the same
    legend = [line for line in out.splitlines() if line.startswith("Speedup = ")]
    assert len(legend) == 1 and "99% interval" in legend[0]
    assert _without_legend(out) == _without_legend(expected)


def _without_legend(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("Speedup = ")]


def test_the_run_judged_again_gets_the_verdicts_it_was_written_with():
    """The v1 run was made with ``--cryobench-reference ci-2core-epyc-numpy-smoke``: judging its
    migrated records against the migrated reference gives back every stored verdict."""
    run = load_baseline(FILES["run"], kind="run")
    ref = load_column(str(FILES["smoke"]))
    checked = 0
    for (group, test), record in run.tests.items():
        stored = record.verdicts[ref.name]
        entry = ref.entry(group, test)
        # the verdict was made before the outcome became "failed" for being slower
        record = dataclasses.replace(record, outcome="passed" if record.outcome == "failed" else record.outcome)
        again = judge(run=record, run_context=run.context, ref_context=ref.context, ref=entry,
                      tolerance=resolve_tolerance(None, entry, record.tolerance)).to_json()
        # neither side has samples (both v1): the ratio of the recorded figures decides, as in v1
        assert {key: again[key] for key in stored} == stored, (group, test)
        assert again["interval"] is None and again["method"] in (None, "point"), (group, test)
        checked += 1
    assert checked == 8


def test_migrated_time_spread_is_on_the_figures_scale():
    """Schema 1 kept the IQR of a movie case's *total* next to its per-movie time; migrated, the
    spread is rescaled to the figure (IQR is linear in the samples)."""
    ref = load_column(str(FILES["smoke"]))
    raw = read_json(FILES["smoke"], "reference")["tests"]["fs"]["mrc"]
    figure = derive.headline(ref.entry("fs", "mrc"))
    movies = raw["timings"]["total"] / raw["metrics"]["mrc"]["value"]
    assert movies == pytest.approx(round(movies))  # the total is over whole movies
    assert figure.spread == pytest.approx(raw["metrics"]["mrc"]["iqr"] / movies / 2)


@pytest.mark.parametrize("old, new", [
    ("tiff_read_rate", "mb_per_s"), ("eer_decode_rate", "mb_per_s"), ("particle_cache_rate", "mb_per_s"),
    ("particle_random_read_rate", "particles_per_s"), ("particle_sequential_read_rate_mb", "mb_per_s"),
    ("voxels_per_s", "voxel_candidates_per_s"), ("correlations_per_s", "template_angles_per_s"),
    ("memory_bandwidth", "gb_per_s"), ("project_storage_read", "mb_per_s"), ("ssd_random_read_rate", "mb_per_s"),
    ("particles_per_s", "particles_per_s"), ("mrc", "mrc"), ("seconds_per_movie", "seconds_per_movie")])
def test_renamed_rates(old, new):
    assert new_metric_name(old) == new


def test_migrated_rates_carry_their_new_names_and_units():
    ref = load_column(str(FILES["smoke"]))
    figures = derive.figures(ref.entry("fs", "particle_random_read"))
    assert list(figures) == ["particle_random_read_time", "particles_per_s", "mb_per_s"]
    assert (figures["particles_per_s"].unit, figures["mb_per_s"].unit) == ("particles/s", "MB/s")
    for name, figure in figures.items():
        if name.endswith("_per_s"):
            assert derive.rate_unit(name)[2] == figure.unit


def test_a_migrated_result_file_is_a_valid_schema_2_document():
    from pytest_cryobench.record.references import validate

    doc = load_result(FILES["run"])
    validate(doc, "result-2.schema.json", FILES["run"], "migrated")
    assert update_to_2(doc) == doc  # already current
    assert doc["timings"] == read_json(FILES["run"], "r")["timings"]  # the CryoSPARC view is kept
