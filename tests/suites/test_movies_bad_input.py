"""Real data sets and damaged movies: one clear message naming the file; other cases still run."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pytest_cryobench.data import layout, movies
from pytest_cryobench.profiles import PROFILES, MovieSize
from tests.helpers import load_results

TINY = dataclasses.replace(PROFILES["smoke"], tiff=MovieSize(3, 64, 48, 4), mrc=MovieSize(3, 32, 32, 4),
                           eer=MovieSize(3, 64, 64, 12, fractions=3))


@pytest.fixture
def real_data(tmp_path: Path) -> Path:
    """A small data set in CryoSPARC's layout: real movie formats, placeholder other files."""
    root = tmp_path / "cryosparc_benchmark"
    for pattern, _ in layout.EXPECTED:
        if pattern.startswith("movies/"):
            continue
        path = root / pattern.replace("J*", "J586").replace("*", "sample")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"placeholder")
    for fmt in movies.FORMATS:
        component = movies.movie_component(fmt, TINY, seed=5)
        for name in component.files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            component.generate(name, path, lambda done, total: None)
    return root


def _args(smoke_args, root):
    return [*smoke_args, f"--cryobench-data={root}", "-m", "fs or cpu", "-k", "not particle",
            "--cryobench-eer-fractions=3"]


def test_real_data_set_runs_with_self_consistency_checks(pytester, smoke_args, real_data, bench_dirs):
    result = pytester.runpytest(*_args(smoke_args, real_data))
    result.assert_outcomes(passed=5)
    cpu = load_results(bench_dirs["out"], "cpu")
    assert cpu["test_info"]["data"] == "cryosparc"
    assert cpu["tests"]["eer"]["checks"]["self_consistent_passed"] is True
    assert load_results(bench_dirs["out"], "fs")["tests"]["tiff"]["info"]["source"] == "real"
    assert not (bench_dirs["data"] / "synthetic-smoke").exists()  # nothing generated


def test_a_decoder_that_gives_different_totals_each_time_fails_self_consistent(pytester, smoke_args, real_data,
                                                                              bench_dirs, monkeypatch):
    import bench_suites.bench_cpu_decompress as suite

    real, calls = suite.decode_tiff, []

    def drifting(path, threads, frame_totals=True):
        sums, shape = real(path, threads, frame_totals)
        calls.append(path)
        return (None if sums is None else sums + len(calls)), shape  # a different answer every call

    monkeypatch.setattr(suite, "decode_tiff", drifting)
    result = pytester.runpytest_inprocess(*_args(smoke_args, real_data), "-k", "cpu and tiff", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    assert load_results(bench_dirs["out"], "cpu")["tests"]["tiff"]["checks"]["self_consistent_passed"] is False


def test_real_data_set_with_missing_files_is_one_error(pytester, smoke_args, real_data):
    for path in (real_data / "movies" / "eer").iterdir():
        path.unlink()
    (real_data / "gpu_fsc_test" / "half_map_B.mrc").unlink()
    result = pytester.runpytest(*_args(smoke_args, real_data))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"*--cryobench-data {real_data} is not a complete CryoSPARC benchmark data set (2 problem(s)):*",
        f"*missing: {real_data}/gpu_fsc_test/half_map_B.mrc*",
        f"*missing: {real_data}/movies/eer/[*].eer*",
    ])


def _truncate(path: Path, keep: float = 0.6) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(int(os.path.getsize(path) * keep))


@pytest.mark.parametrize("fmt, words", [
    ("tiff", "truncated TIFF movie"),
    ("eer", "truncated or damaged"),
    ("mrc", "truncated MRC file"),
])
def test_truncated_movie_fails_only_its_cases(pytester, smoke_args, real_data, bench_dirs, fmt, words):
    victim = sorted((real_data / "movies" / fmt).iterdir())[1]
    _truncate(victim)
    result = pytester.runpytest(*_args(smoke_args, real_data))
    failing = 1 if fmt == "mrc" else 2  # the fs read, and the cpu decode where there is one
    result.assert_outcomes(passed=5 - failing, failed=failing)
    result.stdout.fnmatch_lines([f"*{victim}*{words}*"])
    assert "Traceback" not in result.stdout.str()
    assert "During handling of the above exception" not in result.stdout.str()
    fs = load_results(bench_dirs["out"], "fs")
    assert fs["tests"][fmt]["outcome"] == "failed" and str(victim) in fs["tests"][fmt]["reason"]
    other = "mrc" if fmt != "mrc" else "tiff"
    assert fs["tests"][other]["outcome"] == "passed"


def test_tiff_with_unexpected_compression(pytester, smoke_args, real_data):
    victim = sorted((real_data / "movies" / "tiff").iterdir())[0]
    frames = tifffile.imread(victim)
    tifffile.imwrite(victim, frames, compression="zlib", photometric="minisblack")
    result = pytester.runpytest(*_args(smoke_args, real_data))
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([f"*{victim}: TIFF compression is ADOBE_DEFLATE, expected LZW*"])


def test_eer_frames_that_do_not_decode(pytester, smoke_args, real_data):
    victim = sorted((real_data / "movies" / "eer").iterdir())[2]
    from pytest_cryobench.data.eer import open_eer

    with open_eer(victim) as frames:
        offset = int(frames.offsets[5])
        length = int(frames.bytecounts[5])
    with open(victim, "r+b") as handle:  # frame 5's bitstream replaced by noise
        handle.seek(offset)
        handle.write(np.random.default_rng(3).integers(0, 256, length, dtype=np.uint8).tobytes())
    result = pytester.runpytest(*_args(smoke_args, real_data), "-k", "cpu and eer")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{victim}*"])
    text = result.stdout.str()
    assert "does not decode" in text or "self_consistent" in text or "differ" in text
