"""Synthetic movies: Poisson counts, TIFF/MRC writers, ground truth, reading, decoding and checks."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from pytest_cryobench import profiles
from pytest_cryobench.data import movies
from pytest_cryobench.errors import CryobenchError

TIFF_SIZE = profiles.MovieSize(2, 64, 48, 5)
MRC_SIZE = profiles.MovieSize(2, 40, 32, 4)
TINY = dataclasses.replace(profiles.PROFILES["smoke"], name="tiny", tiff=TIFF_SIZE, mrc=MRC_SIZE)


def generate(fmt: str, tmp_path: Path, seed: int = 17, index: int = 0) -> tuple[Path, dict]:
    """Write movie ``index`` of ``fmt`` for the tiny profile; returns its path and truth."""
    component = movies.movie_component(fmt, TINY, seed)
    name = component.files[index]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    progress: list[tuple[int, int]] = []
    truth = component.generate(name, path, lambda done, total: progress.append((done, total)))
    frames = getattr(TINY, fmt).frames
    # progress counts up by frame towards the total (completion is checked separately)
    assert progress == [(i + 1, frames) for i in range(len(progress))]
    assert len(progress) >= frames - 1
    return path, truth


@pytest.mark.parametrize("fmt", ["mrc", "tiff"])
def test_progress_reaches_the_total(tmp_path, fmt):
    component = movies.movie_component(fmt, TINY, 1)
    progress: list[tuple[int, int]] = []
    component.generate(component.files[0], tmp_path / "m", lambda done, total: progress.append((done, total)))
    frames = getattr(TINY, fmt).frames
    assert progress == [(i + 1, frames) for i in range(frames)]


@pytest.fixture
def tiff_movie(tmp_path):
    return generate("tiff", tmp_path)


@pytest.fixture
def mrc_movie(tmp_path):
    return generate("mrc", tmp_path)


# --------------------------------------------------------------------------- Poisson table

@pytest.mark.parametrize("rate", [0.8, 1.0, 3.0])
def test_poisson_table_mean_and_variance(rate):
    table = movies.poisson_table(rate)
    assert table.shape == (65536,) and table.dtype == np.uint16
    values = table.astype(np.float64)
    assert values.mean() == pytest.approx(rate, rel=0.01)
    assert values.var() == pytest.approx(rate, rel=0.01)
    assert np.all(np.diff(values) >= 0)  # an inverse CDF is monotonic


@pytest.mark.parametrize("rate", [0.8, 3.0])
def test_poisson_table_probabilities(rate):
    counts = np.bincount(movies.poisson_table(rate), minlength=10)
    for k in range(10):
        pmf = math.exp(k * math.log(rate) - rate - math.lgamma(k + 1))
        assert abs(counts[k] / 65536 - pmf) <= 1.01 / 65536, k


def test_count_frames_are_deterministic_and_sums_are_exact():
    sums_a: list[int] = []
    sums_b: list[int] = []
    gen_a = movies.count_frames(np.random.default_rng(5), 24, 32, 4, 1.0, np.uint16, sums_a)
    first = next(gen_a)
    assert sums_a == [int(first.sum())]  # appended as each frame is yielded
    frames_a = [first, *gen_a]
    frames_b = list(movies.count_frames(np.random.default_rng(5), 24, 32, 4, 1.0, np.uint16, sums_b))
    assert len(frames_a) == 4
    for a, b in zip(frames_a, frames_b, strict=True):
        assert a.shape == (24, 32) and a.dtype == np.uint16
        np.testing.assert_array_equal(a, b)
    assert sums_a == sums_b == [int(f.sum(dtype=np.int64)) for f in frames_a]
    assert len(set(sums_a)) > 1  # frames differ from each other
    other: list[int] = []
    list(movies.count_frames(np.random.default_rng(6), 24, 32, 4, 1.0, np.uint16, other))
    assert other != sums_a
    mean = np.mean([f.mean() for f in frames_a])
    assert mean == pytest.approx(1.0, abs=0.1)


def test_count_frames_uint8_dtype():
    sums: list[int] = []
    frames = list(movies.count_frames(np.random.default_rng(1), 16, 16, 2, 0.8, np.uint8, sums))
    assert all(f.dtype == np.uint8 for f in frames)
    assert sums == [int(f.sum(dtype=np.int64)) for f in frames]


# --------------------------------------------------------------------------- TIFF

def test_generated_tiff_is_lzw_one_page_per_frame(tiff_movie):
    path, truth = tiff_movie
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == TIFF_SIZE.frames
        for page in tif.pages:
            assert page.compression == tifffile.COMPRESSION.LZW
            assert page.shape == (TIFF_SIZE.height, TIFF_SIZE.width)
            assert page.dtype == np.uint8
    data = tifffile.imread(path)
    assert data.shape == (TIFF_SIZE.frames, TIFF_SIZE.height, TIFF_SIZE.width)
    assert data.dtype == np.uint8
    assert truth["shape"] == [TIFF_SIZE.frames, TIFF_SIZE.height, TIFF_SIZE.width]
    assert truth["dtype"] == "uint8"
    assert truth["frame_sums"] == data.sum(axis=(1, 2), dtype=np.int64).tolist()
    assert data.mean() == pytest.approx(movies.COUNT_RATE["tiff"], rel=0.1)


def test_tiff_movies_are_deterministic_per_seed_and_index(tmp_path):
    _, a = generate("tiff", tmp_path / "a", seed=3)
    _, b = generate("tiff", tmp_path / "b", seed=3)
    _, c = generate("tiff", tmp_path / "c", seed=4)
    _, d = generate("tiff", tmp_path / "d", seed=3, index=1)
    assert a == b
    assert a["frame_sums"] != c["frame_sums"]
    assert a["frame_sums"] != d["frame_sums"]


def test_decode_tiff_returns_truth_and_frame_shape(tiff_movie):
    path, truth = tiff_movie
    data = tifffile.imread(path)
    for threads in (1, 2, 3, 8):  # more threads than frames, too
        sums, shape = movies.decode_tiff(path, threads)
        assert sums.dtype == np.int64 and sums.tolist() == truth["frame_sums"]
        assert sums.tolist() == data.reshape(len(data), -1).sum(axis=1).tolist()
        assert shape == (TIFF_SIZE.height, TIFF_SIZE.width)


def test_decode_tiff_sums_a_full_frame_of_255_without_overflow(tmp_path):
    """The per-frame total goes through uint32 row sums: 255 * width (K3 super-resolution is
    11520 wide) must not wrap, nor may the frame total (beyond uint32 here)."""
    path = tmp_path / "bright.tiff"
    frames = np.full((2, 1600, 11520), 255, dtype=np.uint8)
    frames[1, 0, 0] = 0
    tifffile.imwrite(path, frames, compression="lzw", photometric="minisblack")
    sums, _ = movies.decode_tiff(path, 2)
    total = 255 * 1600 * 11520
    assert total > 2**32 and sums.tolist() == [total, total - 255]


def test_check_tiff_accepts_the_generated_movie(tiff_movie):
    path, _ = tiff_movie
    assert movies.check_tiff(path) == (TIFF_SIZE.frames, TIFF_SIZE.height, TIFF_SIZE.width)


def test_check_tiff_rejects_zlib(tmp_path):
    path = tmp_path / "zlib.tiff"
    tifffile.imwrite(path, np.ones((3, 16, 16), np.uint8), compression="zlib", photometric="minisblack")
    with pytest.raises(CryobenchError) as info:
        movies.check_tiff(path)
    assert str(path) in str(info.value) and "expected LZW" in str(info.value)


def test_check_tiff_rejects_uncompressed(tmp_path):
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, np.ones((2, 8, 8), np.uint8), photometric="minisblack")
    with pytest.raises(CryobenchError, match="expected LZW"):
        movies.check_tiff(path)


def test_check_tiff_rejects_frames_that_are_not_2d(tmp_path):
    path = tmp_path / "rgb.tiff"
    tifffile.imwrite(path, np.ones((2, 8, 8, 3), np.uint8), compression="lzw", photometric="rgb")
    with pytest.raises(CryobenchError) as info:
        movies.check_tiff(path)
    assert str(path) in str(info.value) and "2-D" in str(info.value)


NO_PAGES = b"II*\x00\xff\xff\xff\x7f"  # a TIFF header whose first IFD lies past the end


@pytest.mark.parametrize("data", [b"", b"not a tiff at all" * 10], ids=["empty", "text"])
def test_check_and_decode_tiff_reject_non_tiff(tmp_path, data):
    path = tmp_path / "movie.tiff"
    path.write_bytes(data)
    with pytest.raises(CryobenchError) as info:
        movies.check_tiff(path)
    assert str(path) in str(info.value)
    with pytest.raises(CryobenchError) as info:
        movies.decode_tiff(path, 1)
    assert str(path) in str(info.value) and "cannot decode this TIFF movie" in str(info.value)


def test_check_tiff_rejects_a_tiff_without_pages(tmp_path):
    path = tmp_path / "movie.tiff"
    path.write_bytes(NO_PAGES)
    with pytest.raises(CryobenchError) as info:
        movies.check_tiff(path)
    assert str(path) in str(info.value)


def test_decode_tiff_rejects_a_tiff_without_pages(tmp_path):
    path = tmp_path / "movie.tiff"
    path.write_bytes(NO_PAGES)
    with pytest.raises(CryobenchError) as info:
        movies.decode_tiff(path, 1)
    assert str(path) in str(info.value)


def _truncations(path: Path) -> dict[str, int]:
    """Cut points: half the file, and exactly at the start of the last page's IFD."""
    with tifffile.TiffFile(path) as tif:
        last_ifd = tif.pages[-1].offset
    return {"half": path.stat().st_size // 2, "at-last-ifd": last_ifd}


@pytest.mark.parametrize("where", ["half", "at-last-ifd"])
def test_decode_truncated_tiff_never_passes_as_correct(tiff_movie, tmp_path, where):
    path, truth = tiff_movie
    cut = _truncations(path)[where]
    short = tmp_path / "short.tiff"
    short.write_bytes(path.read_bytes()[:cut])
    try:
        sums, _ = movies.decode_tiff(short, 1)
    except CryobenchError as exc:
        assert str(short) in str(exc)
        outcome = "error"
    else:
        assert sums.tolist() != truth["frame_sums"]
        outcome = "wrong sums"
    # what happens today: a cut inside a strip is an error; a cut between pages silently loses frames
    assert outcome == {"half": "error", "at-last-ifd": "wrong sums"}[where]


@pytest.mark.parametrize("where", ["half", "at-last-ifd"])
def test_check_tiff_rejects_truncated_tiff(tiff_movie, tmp_path, where):
    path, _ = tiff_movie
    cut = _truncations(path)[where]
    short = tmp_path / "short.tiff"
    short.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(CryobenchError) as info:
        movies.check_tiff(short)
    assert str(short) in str(info.value)


@pytest.mark.parametrize("read", [movies.check_tiff, lambda path: movies.decode_tiff(path, 1)],
                         ids=["check_tiff", "decode_tiff"])
def test_tiff_readers_reject_frames_of_different_shapes(tmp_path, read):
    path = tmp_path / "mixed.tiff"
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.ones((16, 16), np.uint8), compression="lzw", photometric="minisblack")
        tw.write(np.ones((8, 16), np.uint8), compression="lzw", photometric="minisblack")
    with pytest.raises(CryobenchError) as info:
        read(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- MRC

def test_generated_mrc_is_mode_6_with_truth(mrc_movie):
    path, truth = mrc_movie
    with mrcfile.open(path, permissive=False) as mrc:
        assert int(mrc.header.mode) == 6
        assert mrc.data.dtype == np.uint16
        assert mrc.data.shape == (MRC_SIZE.frames, MRC_SIZE.height, MRC_SIZE.width)
        sums = mrc.data.sum(axis=(1, 2), dtype=np.int64).tolist()
        mean = float(mrc.data.mean())
    assert truth["frame_sums"] == sums
    assert truth["shape"] == [MRC_SIZE.frames, MRC_SIZE.height, MRC_SIZE.width]
    assert truth["dtype"] == "uint16"
    assert mean == pytest.approx(movies.COUNT_RATE["mrc"], rel=0.1)
    assert path.stat().st_size == 1024 + MRC_SIZE.frames * MRC_SIZE.pixels * 2


def test_check_mrc_accepts_the_generated_movie(mrc_movie):
    path, _ = mrc_movie
    assert movies.check_mrc(path) == (MRC_SIZE.frames, MRC_SIZE.height, MRC_SIZE.width)


@pytest.mark.parametrize("keep", [0.5, 0.99, 600], ids=["half", "one-percent-short", "inside-header"])
def test_check_mrc_rejects_truncated(mrc_movie, tmp_path, keep):
    path, _ = mrc_movie
    data = path.read_bytes()
    short = tmp_path / "short.mrc"
    short.write_bytes(data[:int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(CryobenchError) as info:
        movies.check_mrc(short)
    assert str(short) in str(info.value)


def test_check_mrc_rejects_a_non_mrc_file(tmp_path):
    path = tmp_path / "movie.mrc"
    path.write_bytes(b"\x00" * 2048)
    with pytest.raises(CryobenchError) as info:
        movies.check_mrc(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- EER check (no writing)

def test_check_eer_rejects_a_regular_lzw_tiff(tiff_movie, tmp_path):
    path, _ = tiff_movie
    eer_path = tmp_path / "movie.eer"
    eer_path.write_bytes(path.read_bytes())
    with pytest.raises(CryobenchError) as info:
        movies.check_eer(eer_path)
    assert str(eer_path) in str(info.value) and "not an EER file" in str(info.value)


def test_check_eer_rejects_garbage(tmp_path):
    path = tmp_path / "movie.eer"
    path.write_bytes(b"garbage" * 100)
    with pytest.raises(CryobenchError) as info:
        movies.check_eer(path)
    assert str(path) in str(info.value)


def test_checks_cover_every_format():
    assert set(movies.CHECKS) == set(movies.FORMATS)
    assert movies.CHECKS["tiff"] is movies.check_tiff and movies.CHECKS["mrc"] is movies.check_mrc
    assert movies.CHECKS["eer"] is movies.check_eer


# --------------------------------------------------------------------------- reading

@pytest.mark.parametrize("block", [None, 7, 1000])
def test_read_whole_file(tiff_movie, monkeypatch, block):
    path, _ = tiff_movie
    if block is not None:
        monkeypatch.setattr(movies, "READ_BLOCK", block)
    expected = path.read_bytes()
    buffer = bytearray(len(expected) + 100)
    buffer[len(expected):] = b"\xaa" * 100
    n = movies.read_whole_file(path, buffer)
    assert n == os.path.getsize(path) == len(expected)
    assert bytes(buffer[:n]) == expected
    assert bytes(buffer[n:]) == b"\xaa" * 100  # nothing written past the file
    exact = bytearray(len(expected))
    assert movies.read_whole_file(path, exact) == len(expected)
    assert bytes(exact) == expected


def test_read_whole_file_of_an_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert movies.read_whole_file(path, bytearray(10)) == 0


# --------------------------------------------------------------------------- component

@pytest.mark.parametrize("fmt", ["tiff", "mrc"])
def test_movie_component_names_and_estimate(tmp_path, fmt):
    size = getattr(TINY, fmt)
    component = movies.movie_component(fmt, TINY, 2)
    suffix = {"tiff": ".tiff", "mrc": ".mrc"}[fmt]
    assert component.name == f"movies/{fmt}"
    assert component.files == tuple(f"movies/{fmt}/synthetic_movie_{i:03d}{suffix}" for i in range(size.n_movies))
    assert component.files == movies.movie_names(fmt, size)
    assert component.version == movies.GENERATOR_VERSION[fmt]
    assert component.params == {"n_movies": size.n_movies, "width": size.width, "height": size.height,
                                 "frames": size.frames, "rate": movies.COUNT_RATE[fmt]}
    total = sum(generate(fmt, tmp_path, seed=2, index=i)[0].stat().st_size for i in range(size.n_movies))
    assert component.estimated_bytes > total
    assert component.estimated_bytes == movies.estimated_bytes(fmt, size)


def test_tiff_estimate_covers_lzw_output_per_pixel(tmp_path):
    # Without the 1 MiB slack: the per-pixel estimate must hold for a larger frame too.
    size = profiles.MovieSize(1, 512, 512, 1)
    profile = dataclasses.replace(TINY, tiff=size)
    component = movies.movie_component("tiff", profile, 1)
    path = tmp_path / "m.tiff"
    component.generate(component.files[0], path, lambda done, total: None)
    assert path.stat().st_size < movies.estimated_bytes("tiff", size) - (1 << 20)


def test_movie_component_params_differ_by_profile():
    bigger = dataclasses.replace(TINY, tiff=profiles.MovieSize(2, 64, 48, 6))
    a = movies.movie_component("tiff", TINY, 1)
    b = movies.movie_component("tiff", bigger, 1)
    assert a.signature(1) != b.signature(1)
    assert a.signature(1) != a.signature(2)


def test_usable_threads():
    n = movies.usable_threads()
    assert isinstance(n, int) and n >= 1
    if hasattr(os, "sched_getaffinity"):
        assert n == len(os.sched_getaffinity(0))


def test_sixteen_bit_lzw_tiff_decodes_in_its_own_sample_type(tmp_path):
    """K2 counting movies are often 16-bit: counts above 255 must survive the decode."""
    import tifffile

    from pytest_cryobench.data.movies import CHECKS, decode_tiff

    rng = np.random.default_rng(2)
    frames = rng.integers(0, 4000, size=(3, 40, 56), dtype=np.uint16)
    path = tmp_path / "k2.tif"
    tifffile.imwrite(path, frames, compression="lzw", photometric="minisblack")
    CHECKS["tiff"](path)
    sums, shape = decode_tiff(path, threads=2)
    assert shape == (40, 56) and sums.tolist() == frames.reshape(3, -1).sum(axis=1).tolist()
    assert decode_tiff(path, threads=2, frame_totals=False) == (None, (40, 56))
