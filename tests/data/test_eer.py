"""The EER encoder and writer, proved against decoders we did not write.

``imagecodecs.eer_decode`` and tifffile's EER reader must give back exactly the events encoded,
at super-resolution 0, 1 and 2. The expected images are built here from the events alone:
superres 0 puts an event at ``(y, x)``, 1 at ``(2y + (sy >> 1), 2x + (sx >> 1))``, 2 at
``(4y + sy, 4x + sx)``.
"""

from __future__ import annotations

import numpy as np
import pytest

imagecodecs = pytest.importorskip("imagecodecs")
tifffile = pytest.importorskip("tifffile")

from pytest_cryobench.data import eer, eer_writer  # noqa: E402
from pytest_cryobench.errors import CryobenchError  # noqa: E402

SUPERRES = (0, 1, 2)


def expected_image(x, y, sx, sy, width, height, superres):
    """Count image the decoders must return, built from the events without the module."""
    s = superres
    image = np.zeros((height * 2**s, width * 2**s), dtype=np.uint16)
    rows = np.asarray(y, dtype=np.int64) * 2**s + (np.asarray(sy, dtype=np.int64) >> (2 - s))
    cols = np.asarray(x, dtype=np.int64) * 2**s + (np.asarray(sx, dtype=np.int64) >> (2 - s))
    np.add.at(image, (rows, cols), 1)
    return image


def events_at(index, width, seed=0):
    """Events on raster indices ``index`` with seeded random sub-pixels."""
    index = np.asarray(index, dtype=np.int64)
    rng = np.random.default_rng(seed)
    sub = rng.integers(0, 4, size=(2, index.size))
    return index % width, index // width, sub[0], sub[1]


def decodable(width, height, superres):
    """imagecodecs needs output sizes divisible by 4 at superres > 0: even frames at superres 1."""
    return superres != 1 or (width % 2 == 0 and height % 2 == 0)


def assert_roundtrip(x, y, sx, sy, width, height):
    data = eer_writer.encode_frame(x, y, sx, sy, width, height)
    assert len(data) % 8 == 0 and data[-2:] == b"\0\0"
    for s in SUPERRES:
        shape = (height * 2**s, width * 2**s)
        if not decodable(width, height, s):
            with pytest.raises(ValueError, match="shape not compatible"):
                imagecodecs.eer_decode(data, shape, 7, 2, 2, superres=s)
            continue
        want = expected_image(x, y, sx, sy, width, height, s)
        got = imagecodecs.eer_decode(data, shape, 7, 2, 2, superres=s)
        assert got.dtype == bool
        np.testing.assert_array_equal(got, want.astype(bool), err_msg=f"superres {s}")
        acc = np.ones(shape, dtype=np.uint16)  # a uint16 out accumulates
        imagecodecs.eer_decode(data, shape, 7, 2, 2, superres=s, out=acc)
        np.testing.assert_array_equal(acc, want + 1, err_msg=f"superres {s}, uint16 out")
    return data


def test_spec_test_vector_decodes_as_documented():
    # 7-bit skips with 1+1 sub-pixel bits: 9-bit event codes.
    decoded = imagecodecs.eer_decode(b"\x03\x1b\xfc\xb1\x35\xfb", (1, 312), 7, 1, 1)
    assert np.flatnonzero(decoded).tolist() == [3, 17, 233, 311]


@pytest.mark.parametrize("sx, sy", [(0, 0), (0, 3), (3, 0), (1, 2), (2, 1), (3, 3)])
def test_subpixel_symbol_bits_and_mapping(sx, sy):
    data = eer_writer.encode_frame([5], [2], [sx], [sy], 8, 4)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    assert int(bits[:7] @ (1 << np.arange(7))) == 2 * 8 + 5  # skip to pixel 21
    symbol = int(bits[7:11] @ (1 << np.arange(4)))
    assert symbol == (sx ^ 2) | ((sy ^ 2) << 2)
    assert np.argwhere(imagecodecs.eer_decode(data, (16, 32), 7, 2, 2, superres=2)).tolist() == [[8 + sy, 20 + sx]]
    assert np.argwhere(imagecodecs.eer_decode(data, (8, 16), 7, 2, 2, superres=1)).tolist() == [
        [4 + (sy >> 1), 10 + (sx >> 1)]]
    assert np.argwhere(imagecodecs.eer_decode(data, (4, 8), 7, 2, 2)).tolist() == [[2, 5]]


@pytest.mark.parametrize("width, height", [(64, 48), (1, 1), (127, 1), (508, 2)])
def test_empty_frame(width, height):
    empty = np.array([], dtype=np.int64)
    assert_roundtrip(empty, empty, empty, empty, width, height)


@pytest.mark.parametrize("where", ["first", "last", "both"])
@pytest.mark.parametrize("width, height", [(64, 48), (127, 2), (254, 1), (1, 1)])
def test_events_on_first_and_last_pixel(where, width, height):
    n = width * height
    index = {"first": [0], "last": [n - 1], "both": sorted({0, n - 1})}[where]
    assert_roundtrip(*events_at(index, width), width, height)


@pytest.mark.parametrize("gap", [0, 1, 126, 127, 128, 253, 254, 255, 127 * 5 - 1, 127 * 5, 127 * 5 + 1])
def test_gaps_around_multiples_of_127(gap):
    # One row: three events, each after `gap` empty pixels, and `gap` empty pixels after the last.
    width = 3 * (gap + 1) + gap
    index = gap + np.arange(3) * (gap + 1)
    assert_roundtrip(*events_at(index, width, seed=gap), width, 1)
    # Two rows of even width (decodable at every superres): gaps gap, gap, gap + 1, then gap to the end.
    width = 2 * gap + 2
    index = np.cumsum([gap, gap + 1, gap + 2])
    assert width * 2 - 1 - index[-1] == gap
    assert_roundtrip(*events_at(index, width, seed=gap + 1), width, 2)


def test_gaps_of_every_length_up_to_three_overflows():
    width, height = 400, 300
    gaps = np.tile(np.arange(0, 3 * 127 + 3), 2)
    index = np.cumsum(gaps + 1) - 1
    index = index[index < width * height]
    assert_roundtrip(*events_at(index, width, seed=1), width, height)


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_dense_frames(fraction):
    width, height = 64, 48
    rng = np.random.default_rng(7)
    index = np.sort(rng.choice(width * height, size=int(fraction * width * height), replace=False))
    assert_roundtrip(*events_at(index, width, seed=2), width, height)


@pytest.mark.parametrize("width, height, mean", [(64, 48, 60.0), (48, 64, 300.0), (256, 8, 2.0), (4, 1024, 80.0)])
def test_random_frames_non_square(width, height, mean):
    rng = np.random.default_rng([11, width, height])
    for _ in range(4):
        assert_roundtrip(*eer_writer.random_frame_events(rng, width, height, mean), width, height)


def test_random_4096_frame():
    width = height = 4096
    rng = np.random.default_rng(4096)
    x, y, sx, sy = eer_writer.random_frame_events(rng, width, height, 0.02 * width * height)
    data = eer_writer.encode_frame(x, y, sx, sy, width, height)
    for s in SUPERRES:
        got = imagecodecs.eer_decode(data, (height * 2**s, width * 2**s), 7, 2, 2, superres=s)
        want = (y * 2**s + (sy >> (2 - s))) * (width * 2**s) + x * 2**s + (sx >> (2 - s))
        # flatnonzero of a bool image equals its full contents: every event, and nothing else.
        np.testing.assert_array_equal(np.flatnonzero(got), np.sort(want), err_msg=f"superres {s}")


def test_events_in_any_order_encode_the_same():
    rng = np.random.default_rng(3)
    x, y, sx, sy = eer_writer.random_frame_events(rng, 64, 48, 200)
    perm = rng.permutation(x.size)
    assert eer_writer.encode_frame(x[perm], y[perm], sx[perm], sy[perm], 64, 48) == eer_writer.encode_frame(x, y, sx, sy, 64, 48)


@pytest.mark.parametrize("bad, match", [
    (([1, 1], [2, 2], [0, 0], [0, 0]), "more than one event on pixel"),
    (([64], [0], [0], [0]), "x out of range"),
    (([0], [48], [0], [0]), "y out of range"),
    (([-1], [0], [0], [0]), "x out of range"),
    (([0], [0], [4], [0]), "sub_x out of range"),
    (([0], [0], [0], [-1]), "sub_y out of range"),
    (([0, 1], [0], [0], [0]), "differ in length"),
    (([0.5], [0], [0], [0]), "integers"),
])
def test_encode_rejects_bad_events(bad, match):
    with pytest.raises(ValueError, match=match):
        eer_writer.encode_frame(*bad, 64, 48)


def test_random_frame_events_deterministic_unique_and_sorted():
    a = eer_writer.random_frame_events(np.random.default_rng(5), 64, 48, 500.0)
    b = eer_writer.random_frame_events(np.random.default_rng(5), 64, 48, 500.0)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    x, y, sx, sy = a
    index = y * 64 + x
    assert np.all(np.diff(index) > 0)
    assert 400 < x.size < 600
    assert x.min() >= 0 and x.max() < 64 and y.min() >= 0 and y.max() < 48
    assert set(np.unique(sx)) == {0, 1, 2, 3} and set(np.unique(sy)) == {0, 1, 2, 3}
    full = eer_writer.random_frame_events(np.random.default_rng(5), 8, 4, 1e6)  # capped at every pixel
    assert full[0].size == 32


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    """A 23-frame 64 x 48 movie: frames 0 and 22 empty, frame 1 full, the rest random."""
    width, height = 64, 48
    rng = np.random.default_rng(2024)
    frames = [eer_writer.random_frame_events(rng, width, height, 150.0) for _ in range(23)]
    empty = np.array([], dtype=np.int64)
    frames[0] = frames[22] = (empty, empty, empty, empty)
    frames[1] = events_at(np.arange(width * height), width, seed=9)
    path = tmp_path_factory.mktemp("eer") / "movie.eer"
    counts = eer_writer.write_eer(path, iter(frames), width, height,
                           {"sensorPixelSize.width": 1.0e-10, "sensorPixelSize.height": 1.0e-10,
                            "exposureTime": 23 / 248, "numberOfFrames": 23, "detectorMode": ("Counting", None),
                            "note": "a < b & \"c\""})
    return path, frames, counts, width, height


def test_writer_counts_and_metadata(movie):
    path, frames, counts, width, height = movie
    assert counts.tolist() == [len(f[0]) for f in frames]
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and tif.is_eer
        page = tif.pages[0]
        assert page.is_eer
        assert page.compression == 65001
        assert page.photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert len(tif.pages) == 23
        meta = tif.eer_metadata
    assert meta["numberOfFrames"] == 23
    assert meta["sensorImageWidth"] == width and meta["sensorImageHeight"] == height
    assert meta["sensorPixelSize.width"] == pytest.approx(1e-10) and meta["sensorPixelSize.width.unit"] == "m"
    assert meta["exposureTime"] == pytest.approx(23 / 248) and meta["exposureTime.unit"] == "s"
    assert meta["detectorMode"] == "Counting" and meta["note"] == "a < b & \"c\""


@pytest.mark.parametrize("superres", SUPERRES)
def test_tifffile_series_reads_every_frame(movie, superres):
    path, frames, _, width, height = movie
    with tifffile.TiffFile(path, superres=superres) as tif:
        series = tif.series[0]
        assert series.name == "frames" and series.kind == "eer"
        got = series.asarray()
    want = np.stack([expected_image(*f, width, height, superres) for f in frames])
    assert got.shape == (23, height * 2**superres, width * 2**superres)
    np.testing.assert_array_equal(got, want.astype(bool))


@pytest.mark.parametrize("superres", SUPERRES)
@pytest.mark.parametrize("n_fractions", [1, 4, 23])
def test_decode_fractions_sums_frames(movie, superres, n_fractions):
    path, frames, counts, width, height = movie
    got = eer.decode_fractions(path, n_fractions, superres=superres, threads=2)
    assert got.dtype == np.uint16 and got.shape == (n_fractions, height * 2**superres, width * 2**superres)
    bounds = [i * 23 // n_fractions for i in range(n_fractions + 1)]
    for i in range(n_fractions):
        group = range(bounds[i], bounds[i + 1])
        want = sum(expected_image(*frames[j], width, height, superres) for j in group)
        np.testing.assert_array_equal(got[i], want)
        assert int(got[i].sum()) == int(counts[bounds[i]:bounds[i + 1]].sum())


def test_decode_fractions_threads_and_sources_agree(movie):
    path = movie[0]
    one = eer.decode_fractions(path, 5, superres=1, threads=1)
    np.testing.assert_array_equal(eer.decode_fractions(path, 5, superres=1, threads=2), one)
    np.testing.assert_array_equal(eer.decode_fractions(path.read_bytes(), 5, superres=1, threads=3), one)
    assert eer.fraction_bounds(23, 5) == [(0, 4), (4, 9), (9, 13), (13, 18), (18, 23)]
    assert eer.fraction_bounds(5, 5) == [(i, i + 1) for i in range(5)]
    np.testing.assert_array_equal(eer.frame_event_counts(path), movie[2])


def test_decode_fractions_rejects_bad_arguments(movie):
    path = movie[0]
    for kwargs in ({"n_fractions": 0}, {"n_fractions": 24}, {"n_fractions": 2, "superres": 3},
                   {"n_fractions": 2, "threads": 0}):
        with pytest.raises(ValueError):
            eer.decode_fractions(path, **kwargs)


@pytest.mark.parametrize("where", ["header", "first IFD", "XML", "first strip", "IFD 9", "strip 9", "last strip",
                                   "last byte"])
def test_truncated_file_raises_cryobench_error(movie, tmp_path, where):
    path = movie[0]
    with tifffile.TiffFile(path) as tif:
        xml_at = tif.pages[0].tags[65001].valueoffset
        strip = [(p.dataoffsets[0], p.databytecounts[0]) for p in tif.pages]
        ifd_9 = tif.pages[9].offset
    data = path.read_bytes()
    keep = {"header": 9, "first IFD": 16 + 60, "XML": xml_at + 30, "first strip": strip[0][0] + 10,
            "IFD 9": ifd_9 + 50, "strip 9": strip[9][0] + strip[9][1] // 2, "last strip": strip[22][0] + 8,
            "last byte": len(data) - 1}[where]
    cut = tmp_path / "cut.eer"
    cut.write_bytes(data[:keep])
    with pytest.raises(CryobenchError, match="cut.eer: .*truncated") as info:
        eer.decode_fractions(cut, 1)
    if "strip" in where:
        frame = {"first strip": 0, "strip 9": 9, "last strip": 22}[where]
        assert f"frame {frame}'s data" in str(info.value)
    with pytest.raises(CryobenchError, match="cut.eer: .*truncated"):
        eer.frame_event_counts(cut)


def test_file_cut_between_frames_is_caught_by_the_frame_count(movie, tmp_path):
    path = movie[0]
    with tifffile.TiffFile(path) as tif:
        ifd_12 = tif.pages[12].offset
    cut = tmp_path / "cut.eer"
    cut.write_bytes(path.read_bytes()[:ifd_12])
    with pytest.raises(CryobenchError, match="cut.eer: 12 frames readable but the metadata says 23"):
        eer.decode_fractions(cut, 1)


def test_odd_frames_refused_at_superres_1(tmp_path):
    path = tmp_path / "odd.eer"
    eer_writer.write_eer(path, [events_at([0, 5], 7)], 7, 3)
    for s in (0, 2):
        assert int(eer.decode_fractions(path, 1, superres=s).sum()) == 2
    with pytest.raises(CryobenchError, match="odd.eer: frames of 7 x 3 pixels cannot be decoded at super-resolution 1"):
        eer.decode_fractions(path, 1, superres=1)


def test_metadata_that_outgrows_its_room_goes_to_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(eer_writer.EerWriter, "XML_SLACK", 0)
    moved = 0
    for note in ("", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"):  # one has no padding
        path = tmp_path / f"n{len(note)}.eer"
        eer_writer.write_eer(path, (events_at([i], 8, seed=i) for i in range(10)), 8, 4,
                      {"note": note, "exposureTime": 1.0})
        with tifffile.TiffFile(path) as tif:
            moved += tif.pages[0].tags[65001].valueoffset > tif.pages[9].dataoffsets[0]
            assert tif.eer_metadata["numberOfFrames"] == 10 and tif.eer_metadata.get("note") == (note or None)
        np.testing.assert_array_equal(eer.frame_event_counts(path), np.ones(10))
    assert moved >= 1


def test_missing_and_empty_and_non_eer_files(tmp_path):
    with pytest.raises(CryobenchError, match="nothing.eer"):
        eer.decode_fractions(tmp_path / "nothing.eer", 1)
    (tmp_path / "empty.eer").write_bytes(b"")
    with pytest.raises(CryobenchError, match="empty.eer"):
        eer.decode_fractions(tmp_path / "empty.eer", 1)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((4, 8, 8), dtype=np.uint8), bigtiff=True, photometric="minisblack")
    with pytest.raises(CryobenchError, match="plain.tif.*not an EER file"):
        eer.decode_fractions(plain, 1)


def test_undecodable_frame_names_file_and_frame(movie, tmp_path):
    path, frames, _, width, height = movie
    with tifffile.TiffFile(path) as tif:
        offset, size = tif.pages[7].dataoffsets[0], tif.pages[7].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = b"\xff" * size  # overflow codes that run past the last pixel
    bad = tmp_path / "bad.eer"
    bad.write_bytes(bytes(data))
    with pytest.raises(CryobenchError, match=r"bad.eer: EER frame 7 does not decode"):
        eer.decode_fractions(bad, 3, threads=2)


def test_writer_refuses_wrong_frame_count_and_no_frames(tmp_path):
    x, y, sx, sy = events_at([3, 9], 8)
    with pytest.raises(ValueError, match="numberOfFrames=3"):
        eer_writer.write_eer(tmp_path / "a.eer", [(x, y, sx, sy)], 8, 4, {"numberOfFrames": 3})
    with pytest.raises(ValueError, match="at least one frame"):
        eer_writer.write_eer(tmp_path / "b.eer", [], 8, 4)


def test_writer_accepts_encoded_frames(tmp_path):
    x, y, sx, sy = events_at([0, 5, 31], 8, seed=4)
    path = tmp_path / "c.eer"
    counts = eer_writer.write_eer(path, [eer_writer.encode_frame(x, y, sx, sy, 8, 4), (x, y, sx, sy)], 8, 4)
    assert counts.tolist() == [-1, 3]
    with tifffile.TiffFile(path, superres=2) as tif:
        got = tif.series[0].asarray()
    want = expected_image(x, y, sx, sy, 8, 4, 2).astype(bool)
    np.testing.assert_array_equal(got, np.stack([want, want]))
