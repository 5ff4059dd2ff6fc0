"""Movie reads (fs) and decompression (cpu) through pytester, on generated smoke data."""

from __future__ import annotations

import os

import pytest

from tests.helpers import figures_of, load_results


def test_movie_reads_and_tiff_decompression(pytester, smoke_args, bench_dirs):
    result = pytester.runpytest(*smoke_args, "-k", "tiff or mrc", "--cryobench-run-id=movies-e2e")
    result.assert_outcomes(passed=3)
    result.stderr.fnmatch_lines(["*generated movies/tiff*"])
    result.stdout.fnmatch_lines(["cpu/tiff*tiff*MB/s*", "fs/tiff*tiff*MB/s*", "fs/mrc*mrc*MB/s*"])
    fs = load_results(bench_dirs["out"], "fs")
    cpu = load_results(bench_dirs["out"], "cpu")
    assert set(fs["timings"]) == {"tiff", "mrc"} and set(cpu["timings"]) == {"tiff"}
    assert set(fs["timings"]["tiff"]) == {"read_movie_0", "read_movie_1", "read_movie_2", "total"}
    assert fs["tests"]["mrc"]["tags"]["read_movie_0"] == ["IO"]
    headline = figures_of(fs, "tiff")["tiff"]
    assert headline.value > 0 and headline.unit == "s"
    assert fs["tests"]["tiff"]["headline"] == {"name": "tiff", "per": "movies"}
    assert headline.value == pytest.approx(fs["timings"]["tiff"]["total"] / 3)  # per movie
    assert max(fs["tests"]["tiff"]["residency"]) < 0.02
    checks = cpu["tests"]["tiff"]["checks"]
    assert checks["passed"] is True
    assert checks["totals_synthetic_movie_000_decoded"] == checks["totals_synthetic_movie_000_written"] > 0
    info = cpu["tests"]["tiff"]["info"]
    assert info["threads"] >= 1 and info["frames_or_fractions"] == 3 * 8
    assert cpu["tests"]["tiff"]["tags"]["decode_movie_0"] == ["CPU"]
    # The RAM copies are gone, and the generated movies stay cached for the next run.
    assert not os.path.exists("/dev/shm/cryobench-movies-e2e")
    assert len(list((bench_dirs["data"] / "synthetic-smoke" / "movies" / "tiff").glob("*.tiff"))) == 3


def test_generated_movies_are_reused_then_regenerated_when_changed(pytester, smoke_args, bench_dirs):
    pytester.runpytest(*smoke_args, "-k", "mrc").assert_outcomes(passed=1)
    movie = bench_dirs["data"] / "synthetic-smoke" / "movies" / "mrc" / "synthetic_movie_001.mrc"
    first_mtime = movie.stat().st_mtime_ns
    result = pytester.runpytest(*smoke_args, "-k", "mrc")
    result.assert_outcomes(passed=1)
    assert "generating" not in result.stderr.str() and movie.stat().st_mtime_ns == first_mtime
    with open(movie, "r+b") as handle:  # a damaged file is never used silently
        handle.truncate(os.path.getsize(movie) // 2)
    result = pytester.runpytest(*smoke_args, "-k", "mrc")
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines([f"*regenerating movies/mrc*{movie}*changed since it was generated*"])
    assert os.path.getsize(movie) > 512 * 512 * 8


def test_wrong_decode_fails_the_case(pytester, smoke_args, bench_dirs, monkeypatch):
    """A decoder that loses counts is caught by the known-answer check, whatever its speed."""
    import numpy as np

    from pytest_cryobench.data import movies

    real = movies.decode_tiff

    def lossy(path, threads, frame_totals=True):
        sums, counts = real(path, threads, frame_totals)
        return (None if sums is None else sums - (np.arange(len(sums)) == 0)), counts

    monkeypatch.setattr(movies, "decode_tiff", lossy)
    import bench_suites.bench_cpu_decompress as suite

    monkeypatch.setattr(suite, "decode_tiff", lossy)
    result = pytester.runpytest_inprocess(*smoke_args, "-k", "cpu and tiff", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wrong answer: totals_synthetic_movie_000: synthetic_movie_000.tiff: decoded totals*differ*"])
