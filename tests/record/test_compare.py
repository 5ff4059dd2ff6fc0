"""``cryobench compare``: the table's figures, marks, exit status and bad input; golden files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.record.compare import build_table, headline_seconds, render_legend, render_text
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.references import load_column, make_reference

GOLDEN = Path(__file__).with_name("golden")


def _columns(paths):
    return [load_column(str(p)) for p in paths]


def test_cells_figures_and_marks(runs):
    table = build_table(_columns(runs))
    by_test = {row.test: row for row in table.rows if row.timing is None}
    fsc = by_test["fsc_loose[cpu]"]
    assert fsc.cells[0].mark == "ref" and fsc.cells[0].speedup is None
    assert fsc.cells[1].mark == "slower"
    assert fsc.cells[1].speedup == pytest.approx(1 / 1.6)
    picking = by_test["picking[cpu]"]
    assert picking.cells[1].mark == "faster" and picking.cells[1].speedup == pytest.approx(2.0)
    # Pct: the share of the column's group total (gpu: 0.5 + 4 + 60 in the reference)
    assert picking.cells[0].pct == pytest.approx(100 * 60 / 64.5)
    assert by_test["memory_single_linear10_max_C1[cpu]"].cells[1].mark == "could not run"
    assert by_test["particle_cache"].cells[1].mark == "checks failed"
    assert by_test["particle_random_read"].cells[1].mark == "pass"
    # another profile: not comparable, never slower, and no speedup shown
    for row in by_test.values():
        assert row.cells[2].mark == "not comparable"
        assert row.cells[2].speedup is None
        assert "profile smoke in cb20251103-080000, standard in the reference" in row.cells[2].detail
    assert [(row.test, name) for row, name, _ in table.regressions()] == [("fsc_loose[cpu]", "cb20251102-080000")]


def test_headline_is_the_first_time_figure_else_the_total():
    assert headline_seconds(CaseRecord("fs", "t", values={"rate": {"value": 5, "unit": "MB/s"},
                                                          "t": {"value": 2.0, "unit": "s"}},
                                       samples={"total": [3.0]})) == 2.0
    assert headline_seconds(CaseRecord("fs", "t", samples={"total": [3.0, 4.0, 5.0]})) == 4.0
    assert headline_seconds(CaseRecord("fs", "t", samples={"total": [3.0, 6.0, 9.0]}, headline={"name": "t", "per": "n"},
                                       amounts={"n": 3})) == 2.0
    assert headline_seconds(None) is None


def test_cells_carry_the_spread_of_their_time(runs):
    table = build_table(_columns(runs[:2]))
    fsc = next(row for row in table.rows if row.test == "fsc_loose[cpu]")
    assert fsc.cells[0].spread == pytest.approx(0.01 * 0.5 / 2)  # half the IQR of the rounds, seconds


def test_detail_rows_carry_sub_timings_with_tags(runs):
    table = build_table(_columns(runs[:2]), detail=True)
    subs = [row for row in table.rows if row.test == "fsc_loose[cpu]" and row.timing]
    assert [(row.timing, row.tags) for row in subs] == [("mask", ["CPU"]), ("fsc", ["GPU"])]
    mask = subs[0]
    assert mask.cells[0].pct == pytest.approx(60.0)  # share of the test's total
    assert mask.cells[1].speedup == pytest.approx(1 / 1.6)


def test_only_changed_keeps_slower_faster_and_failed_checks(runs):
    table = build_table(_columns(runs[:2]), only_changed=True)
    assert [row.test for row in table.rows] == ["particle_cache", "fsc_loose[cpu]", "picking[cpu]"]


def test_choosing_another_reference_turns_speedups_around(runs):
    table = build_table(_columns(runs[:2]), reference=1)
    fsc = next(row for row in table.rows if row.test == "fsc_loose[cpu]")
    assert fsc.cells[1].mark == "ref"
    assert fsc.cells[0].mark == "faster" and fsc.cells[0].speedup == pytest.approx(1.6)


def test_tolerance_option_overrides_each_tests_own(runs):
    table = build_table(_columns(runs[:2]), tolerance=2.0)
    assert not table.regressions()
    assert next(r for r in table.rows if r.test == "picking[cpu]").cells[1].mark == "pass"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":  # pragma: no cover - manual only
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_golden_compare_table(runs):
    table = build_table(_columns(runs))
    _golden("compare_table.txt", "\n".join(render_text(table) + [""] + render_legend(table)) + "\n")


def test_golden_compare_detail(runs):
    table = build_table(_columns(runs[:2]), detail=True, reference=1)
    _golden("compare_detail.txt", "\n".join(render_text(table) + [""] + render_legend(table)) + "\n")


def test_cli_exit_status_is_1_on_a_regression(runs, capsys):
    before, after, smoke = runs
    assert main(["compare", str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert "0.62x [0.60, 0.65] SLOWER" in out and "1 test(s) slower than cb20251101-080000" in out
    assert "gpu/fsc_loose[cpu] in cb20251102-080000: fsc_loose_time 1.60x [1.54, 1.66] slower" in out
    # against the later run, the earlier one is faster at the FSC but slower at picking
    assert main(["compare", str(before), str(after), "--reference", "cb20251102-080000"]) == 1
    out = capsys.readouterr().out
    assert "1.60x [1.54, 1.66] faster" in out and "gpu/picking[cpu] in cb20251101-080000: picking_time 2.00x [1.93, 2.08] slower" in out
    # another profile is not comparable, not a failure
    assert main(["compare", str(before), str(smoke)]) == 0
    assert "n/c" in capsys.readouterr().out


def test_cli_reference_by_file_name_and_unknown_reference(runs, capsys):
    before, after, _ = runs
    assert main(["compare", str(before), str(after), "--reference", after.name]) == 1
    assert "cb20251102-080000 (reference)" in capsys.readouterr().out
    assert main(["compare", str(before), str(after), "--reference", "h100"]) == 2
    err = capsys.readouterr().err
    assert "--reference h100: not one of the columns given (cb20251101-080000, cb20251102-080000)" in err


def test_cli_only_changed_and_detail(runs, capsys):
    before, after, _ = runs
    main(["compare", str(before), str(after), "--only-changed", "--detail"])
    out = capsys.readouterr().out
    assert "particle_random_read" not in out.split("Speedup =")[0]
    assert "  mask" in out and "CPU" in out
    assert "Tags (the component a sub-timing depends on most)" in out


def test_a_reference_file_is_a_column(runs, tmp_path, capsys):
    before, after, _ = runs
    from pytest_cryobench.record.references import load_result, sibling_result_files

    ref = make_reference([load_result(p) for p in sibling_result_files(before)], "lab-a", "two-socket box")
    ref_path = tmp_path / "lab-a.json"
    ref_path.write_text(json.dumps(ref))
    assert main(["compare", str(ref_path), str(after)]) == 1
    out = capsys.readouterr().out
    assert "lab-a (reference)" in out and "reference, standard profile, numpy backend" in out


def test_unknown_reference_name_lists_the_known_ones(tmp_path, capsys):
    refs = tmp_path / "references"
    refs.mkdir()
    (refs / "mine.json").write_text("{}")
    assert main(["compare", "no-such-ref", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no-such-ref: no such file, and no reference of that name (known: " in err
    assert "mine" in err


@pytest.mark.parametrize("content, message", [
    ('{"kind": "cryobench-result", "schema_version": 1, "type": "gpu", "timin', "is not valid JSON"),
    ("not json at all", "is not valid JSON"),
    ('{"kind": "cryobench-result", "schema_version": 0}', "written by an older pytest-cryobench, and no upgrade"),
    ('{"kind": "cryobench-result", "schema_version": 7}', "written by a newer pytest-cryobench; upgrade this one"),
    ('{"kind": "cryobench-result"}', "schema version None"),
    ('[1, 2]', "neither a pytest-cryobench result or reference file nor a CryoSPARC Benchmark result"),
])
def test_bad_files_get_one_clear_message(tmp_path, capsys, content, message):
    path = tmp_path / "cb20250101-000000_gpu_benchmark_data.json"
    path.write_text(content)
    assert main(["compare", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cryobench compare: ") and message in err
    assert str(path) in err
    assert "Traceback" not in err


def test_one_run_named_twice_is_shown_once(runs, capsys):
    before, after, _ = runs
    fs = before.with_name(before.name.replace("_gpu_", "_fs_"))
    assert main(["compare", str(before), str(fs), str(after), "--reference", str(after.resolve())]) == 1
    captured = capsys.readouterr()
    assert f"{fs} is the same run as {before}; shown once" in captured.err
    assert "cb20251102-080000 (reference)" in captured.out and "cb20251101-080000 (" not in captured.out


@pytest.mark.parametrize("edit, where", [
    (lambda d: d["tests"]["fsc_loose[cpu]"].update({"samples": "x"}), "tests/fsc_loose[cpu]/samples"),
    (lambda d: d["tests"]["fsc_loose[cpu]"].update({"tags": 5}), "tests/fsc_loose[cpu]/tags"),
    (lambda d: d["tests"]["fsc_loose[cpu]"].update({"checks": [1]}), "tests/fsc_loose[cpu]/checks"),
    (lambda d: d["tests"]["fsc_loose[cpu]"]["samples"]["total"].append(-1.0), "tests/fsc_loose[cpu]/samples/total/3"),
    (lambda d: d["tests"]["fsc_loose[cpu]"]["samples"]["total"].append(float("inf")),
     "tests/fsc_loose[cpu]/samples/total/3"),
    (lambda d: d["test_info"].update({"instance_information": "zz"}), "test_info/instance_information"),
    (lambda d: d["test_info"].update({"created_at": 1e300}), "test_info/created_at"),
])
def test_hand_edited_files_fail_their_schema_not_the_tools(runs, capsys, edit, where):
    before = runs[0]
    doc = json.loads(before.read_text())
    edit(doc)
    before.write_text(json.dumps(doc))
    for command in (["compare", str(before)], ["validate", str(before)]):
        assert main(command) in (1, 2)
        captured = capsys.readouterr()
        assert f"does not match its schema at {where}" in captured.out + captured.err
