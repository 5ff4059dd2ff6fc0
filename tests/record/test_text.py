"""The terminal summary table, checked cell by cell and against a golden file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.text import (
    format_rate,
    format_seconds,
    primary_metric,
    render_notes,
    render_table,
    table_rows,
    verdict_cell,
)

GOLDEN = Path(__file__).with_name("golden") / "fs_table.txt"
COMPARISONS = ["lab-h100", "baseline cb20240101-000000"]


def verdict(kind, slowdown=None, detail=""):
    return {"verdict": kind, "slowdown": slowdown, "metric": "m", "tolerance": 1.5, "detail": detail}


def three_rounds(median, iqr):
    """Seconds of three rounds with this median and (inclusive-quartile) IQR."""
    return [median - iqr, median, median + iqr]


def fs_table_records() -> list[CaseRecord]:
    # amounts are chosen so that each rate at the median is the figure shown (812.49 MB/s, ...)
    cache = CaseRecord(
        "fs", "particle_cache", "n1", samples={"copy_particles": [12.3] * 3, "total": three_rounds(12.3456, 0.5)},
        headline={"name": "particle_cache_time"}, amounts={"bytes": 812.49e6 * 12.3456}, rates=["mb_per_s"],
        verdicts={COMPARISONS[0]: verdict("pass", 1.0234), COMPARISONS[1]: verdict("faster", 0.61)})
    sequential = CaseRecord(
        "fs", "particle_sequential_read", "n2",
        samples={"read_particles": three_rounds(0.0456, 0.0012), "total": three_rounds(0.0456, 0.0012)},
        warm=True, residency=[0.97, 0.98, 0.99], headline={"name": "particle_sequential_read_time"},
        amounts={"particles": 219298.2 * 0.0456, "bytes": 224.56e6 * 0.0456}, rates=["particles_per_s", "mb_per_s"],
        info={"warm_warning": "particle_sequential_read: 3 of 3 cold round(s) found up to 99% of the "
                              "files still in the page cache (--cryobench-drop-caches none)"},
        verdicts={COMPARISONS[0]: verdict("not comparable", 0.9, "files were still in the page cache: "
                                                                 "not a cold-read figure"),
                  COMPARISONS[1]: verdict("pass", 1.0)})
    random_read = CaseRecord(
        "fs", "particle_random_read", "n3",
        samples={"read_particles": three_rounds(3.21, 0.2), "total": three_rounds(3.21, 0.2)},
        outcome="failed", reason="slower than lab-h100: ...", headline={"name": "particle_random_read_time"},
        amounts={"bytes": 0.85e6 * 3.21}, rates=["mb_per_s"],
        verdicts={COMPARISONS[0]: verdict("slower", 1.6213, "particle_random_read_time 1.62x slower"),
                  COMPARISONS[1]: verdict("slower", 1.3, "particle_random_read_time 1.30x slower")})
    skipped = CaseRecord(
        "gpu", "fsc_loose[gpu]", "n4", outcome="skipped",
        reason="no usable GPU: NVML is not usable; run them on the CPU with --cryobench-backend numpy",
        verdicts={COMPARISONS[0]: verdict("could not run", None, "no usable GPU"),
                  COMPARISONS[1]: verdict("could not run", None, "no usable GPU")})
    tiny = CaseRecord("cpu", "decompress_lzw", "n5", samples={"total": [0.000123]},
                      verdicts={COMPARISONS[0]: verdict("pass", 0.95)})
    return [cache, sequential, random_read, skipped, tiny]


def test_golden_fs_table():
    lines = render_table(fs_table_records(), COMPARISONS)
    text = "\n".join(lines) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":  # pragma: no cover - manual only
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_header_and_rule():
    lines = render_table(fs_table_records(), COMPARISONS)
    assert lines[0].split() == ["test", "metric", "median", "spread", "unit", "rate", "vs", "lab-h100",
                                "vs", "baseline", "cb20240101-000000"]
    assert set(lines[1]) == {"-", " "}
    assert len(lines) == 2 + 5
    # the rule has one dash run per column, each as wide as the column
    assert len(lines[1].split()) == 6 + len(COMPARISONS)


def _columns(lines):
    """Start offsets of each column, from the dash runs of the rule line."""
    starts, ends, inside = [], [], False
    for i, ch in enumerate(lines[1] + " "):
        if ch == "-" and not inside:
            starts.append(i)
            inside = True
        elif ch != "-" and inside:
            ends.append(i)
            inside = False
    return list(zip(starts, ends, strict=True))


def test_numeric_columns_are_right_aligned_and_text_left_aligned():
    lines = render_table(fs_table_records(), COMPARISONS)
    cols = _columns(lines)
    body = [line.ljust(len(lines[1])) for line in lines[2:]]
    (median_start, median_end), (_, spread_end) = cols[2], cols[3]
    for line in body:
        assert line[median_end - 1] != " "      # right-aligned: last char of the column is filled
        assert line[spread_end - 1] != " "
        assert line[cols[0][0]] != " "          # left-aligned: first char of the column is filled
        assert line[cols[4][0]] != " "          # the unit column
    assert lines[0][median_start:median_start + 6] == "median"  # the header is left-aligned


def test_cells():
    rows = table_rows(fs_table_records(), COMPARISONS)
    by_test = {row[0]: row for row in rows[1:]}
    cache = by_test["fs/particle_cache"]
    assert cache[1:] == ["particle_cache_time", "12.346", "±0.2500", "s", "812 MB/s", "pass 1.02x",
                        "faster 0.61x"]
    warm = by_test["fs/particle_sequential_read (warm)"]
    assert warm[2:4] == ["0.0456", "±6.00e-04"]
    assert warm[5] == "219,298 particles/s, 225 MB/s"
    assert warm[6:] == ["not comparable", "pass 1.00x"]
    slower = by_test["fs/particle_random_read [FAILED]"]
    assert slower[5] == "0.85 MB/s"
    assert slower[6:] == ["SLOWER 1.62x", "SLOWER 1.30x"]
    skipped = by_test["gpu/fsc_loose[gpu]"]
    assert skipped[1:] == ["could not run", "-", "-", "-", "-", "could not run", "could not run"]
    tiny = by_test["cpu/decompress_lzw"]
    assert tiny[1:] == ["total", "1.23e-04", "-", "s", "-", "pass 0.95x", "-"]


def test_table_without_comparisons():
    lines = render_table(fs_table_records()[:1], [])
    assert lines[0].split() == ["test", "metric", "median", "spread", "unit", "rate"]
    assert lines[2].split() == ["fs/particle_cache", "particle_cache_time", "12.346", "±0.2500", "s",
                                "812", "MB/s"]


def test_failed_case_without_stats():
    record = CaseRecord("fs", "particle_cache", "n", outcome="error", reason="boom",
                        verdicts={"x": verdict("pass", 1.0)})
    assert table_rows([record], ["x"])[1] == ["fs/particle_cache", "ERROR", "-", "-", "-", "-", "pass 1.00x"]


@pytest.mark.parametrize("value, text", [
    (None, "-"), (123.456, "123.5"), (100.0, "100.0"), (12.3456, "12.346"), (1.0, "1.000"),
    (0.0456, "0.0456"), (0.001, "0.0010"), (0.000123, "1.23e-04"), (0.0, "0")])
def test_format_seconds(value, text):
    assert format_seconds(value) == text


@pytest.mark.parametrize("value, unit, text", [
    (219298.2, "particles/s", "219,298 particles/s"), (100.0, "MB/s", "100 MB/s"),
    (99.994, "MB/s", "99.99 MB/s"), (1.0, "MB/s", "1.00 MB/s"), (0.85, "GB/s", "0.85 GB/s"),
    (0.123456, "MB/s", "0.123 MB/s")])
def test_format_rate(value, unit, text):
    assert format_rate(value, unit) == text


@pytest.mark.parametrize("v, text", [
    (None, "-"), ({}, "-"), (verdict("pass", 1.234), "pass 1.23x"), (verdict("slower", 2.0), "SLOWER 2.00x"),
    (verdict("faster", 0.5), "faster 0.50x"), (verdict("not comparable", 0.9), "not comparable"),
    (verdict("could not run"), "could not run"), (verdict("pass", None), "pass")])
def test_verdict_cell(v, text):
    assert verdict_cell(v) == text


def test_primary_metric_is_the_declared_headline_when_a_time():
    record = CaseRecord("fs", "t", "n", samples={"total": [8.0, 9.0, 10.0]}, headline={"name": "time", "per": "movies"},
                        amounts={"movies": 3, "bytes": 3e6}, rates=["mb_per_s"])
    figure = primary_metric(record)
    assert (figure.name, figure.value, figure.unit) == ("time", 3.0, "s")
    assert figure.spread == pytest.approx(1.0 / 3 / 2)  # per movie: the IQR of the totals / 3, halved
    measured = CaseRecord("requirements", "r", "n", values={"bandwidth": {"value": 5.0, "unit": "GB/s"}})
    assert primary_metric(measured) is None
    assert primary_metric(CaseRecord("fs", "t", "n")) is None


def test_spread_of_a_per_movie_headline_is_per_movie():
    record = CaseRecord("fs", "mrc", "n", samples={"total": [0.9, 1.2, 1.5]}, headline={"name": "mrc", "per": "movies"},
                        amounts={"movies": 3})
    row = table_rows([record], [])[1]
    assert row[1:4] == ["mrc", "0.4000", "±0.0500"]  # median 1.2 s / 3 movies; IQR 0.3 s / 3, halved


def test_notes_name_skips_and_warm_reads():
    notes = render_notes(fs_table_records(), COMPARISONS)
    assert ("gpu/fsc_loose[gpu]: could not run: no usable GPU: NVML is not usable; run them on the CPU "
            "with --cryobench-backend numpy") in notes
    assert any(note.startswith("warm: particle_sequential_read: 3 of 3 cold round(s)") for note in notes)
    assert any(note.startswith("fs/particle_random_read: FAILED: slower than lab-h100") for note in notes)
