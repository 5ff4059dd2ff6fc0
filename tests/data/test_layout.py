"""Validation of a real CryoSPARC benchmark data set's layout (``--cryobench-data``)."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from pytest_cryobench.data import layout

# One concrete file for every pattern of layout.EXPECTED.
CONCRETE = {
    "class2D_test/maps.mrc": "class2D_test/maps.mrc",
    "gpu_engine_test/abinit_particles.cs": "gpu_engine_test/abinit_particles.cs",
    "gpu_engine_test/abinit_volume.mrc": "gpu_engine_test/abinit_volume.mrc",
    "gpu_engine_test/J*/extract/*_particles.mrc": "gpu_engine_test/J12/extract/003_mic_particles.mrc",
    "gpu_fsc_test/half_map_A.mrc": "gpu_fsc_test/half_map_A.mrc",
    "gpu_fsc_test/half_map_B.mrc": "gpu_fsc_test/half_map_B.mrc",
    "movies/eer/*.eer": "movies/eer/FoilHole_1_fractions.eer",
    "movies/mrc/*.mrc": "movies/mrc/movie_1.mrc",
    "movies/tiff/*.tif*": "movies/tiff/movie_1.tif",
    "picking_test/*_doseweighted.mrc": "picking_test/mic_doseweighted.mrc",
    "picking_test/*_background.mrc": "picking_test/mic_background.mrc",
    "picking_test/*_ctf_spline.npy": "picking_test/mic_ctf_spline.npy",
    "picking_test/picking_templates.mrc": "picking_test/picking_templates.mrc",
    "picking_test/exposure_dataset_for_picking.cs": "picking_test/exposure_dataset_for_picking.cs",
    "picking_test/templates_dataset_for_picking.cs": "picking_test/templates_dataset_for_picking.cs",
}
EER_FILE = CONCRETE["movies/eer/*.eer"]


def write_tiff(path: Path) -> None:
    frames = np.random.default_rng(1).poisson(0.8, size=(3, 16, 24)).astype(np.uint8)
    tifffile.imwrite(path, frames, compression="lzw", photometric="minisblack")


def write_mrc(path: Path) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.random.default_rng(2).poisson(1.0, size=(3, 16, 16)).astype(np.uint16))


def write_eer(path: Path) -> None:
    eer = pytest.importorskip("pytest_cryobench.data.eer_writer")
    if not all(hasattr(eer, name) for name in ("encode_frame", "write_eer")):
        pytest.skip("pytest_cryobench.data.eer_writer has no encode_frame/write_eer yet")
    frames = [eer.encode_frame([1, 5], [2, 3], [0, 3], [1, 2], 32, 32),
              eer.encode_frame([7], [30], [2], [2], 32, 32)]
    eer.write_eer(path, frames, 32, 32)


def build(root: Path, *, real_eer: bool) -> Path:
    """A complete fake data set; the EER movie is real, or an LZW TIFF named ``.eer``."""
    for rel in CONCRETE.values():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith("movies/tiff/"):
            write_tiff(path)
        elif rel.startswith("movies/mrc/"):
            write_mrc(path)
        elif rel.startswith("movies/eer/"):
            if real_eer:
                write_eer(path)
            else:
                write_tiff(path)
        else:
            path.write_bytes(b"small file " + rel.encode())
    return root


def test_concrete_names_cover_every_expected_pattern(tmp_path):
    assert set(CONCRETE) == {pattern for pattern, _ in layout.EXPECTED}
    assert set(layout.MOVIE_PATTERNS.values()) <= set(CONCRETE)
    build(tmp_path, real_eer=False)
    for pattern, rel in CONCRETE.items():
        assert layout.matches(tmp_path, pattern) == [tmp_path / rel]


def test_complete_data_set_is_valid(tmp_path):
    root = build(tmp_path / "data", real_eer=True)
    assert layout.validate(root) == []


def test_a_non_eer_eer_file_is_a_problem_naming_it(tmp_path):
    root = build(tmp_path, real_eer=False)
    problems = layout.validate(root)
    assert len(problems) == 1
    assert str(root / EER_FILE) in problems[0] and "not an EER file" in problems[0]


def test_a_garbage_eer_file_is_a_problem_naming_it(tmp_path):
    root = build(tmp_path, real_eer=False)
    (root / EER_FILE).write_bytes(b"junk" * 10)
    problems = layout.validate(root)
    assert len(problems) == 1 and str(root / EER_FILE) in problems[0]


def test_every_missing_pattern_is_listed(tmp_path):
    root = build(tmp_path, real_eer=False)
    (root / EER_FILE).unlink()  # leave only the two problems below
    problems = layout.validate(root)
    assert len(problems) == 1 and problems[0] == f"missing: {root / 'movies/eer/*.eer'}"
    (root / CONCRETE["class2D_test/maps.mrc"]).unlink()
    (root / CONCRETE["picking_test/*_ctf_spline.npy"]).unlink()
    problems = layout.validate(root)
    assert sorted(problems) == sorted([
        f"missing: {root / 'class2D_test/maps.mrc'}",
        f"missing: {root / 'picking_test/*_ctf_spline.npy'}",
        f"missing: {root / 'movies/eer/*.eer'}",
    ])


def test_an_empty_directory_lists_every_pattern(tmp_path):
    problems = layout.validate(tmp_path)
    assert problems == [f"missing: {tmp_path / pattern}" for pattern, _ in layout.EXPECTED]


def test_a_directory_with_an_expected_name_does_not_count(tmp_path):
    root = build(tmp_path, real_eer=False)
    (root / EER_FILE).unlink()
    maps = root / "class2D_test/maps.mrc"
    maps.unlink()
    maps.mkdir()
    problems = layout.validate(root)
    assert f"missing: {maps}" in problems
    assert len(problems) == 2


def test_extra_movies_are_all_checked(tmp_path):
    root = build(tmp_path, real_eer=False)
    (root / EER_FILE).unlink()
    zlib = root / "movies/tiff/movie_2.tiff"
    tifffile.imwrite(zlib, np.ones((2, 8, 8), np.uint8), compression="zlib", photometric="minisblack")
    good = root / "movies/tiff/movie_3.tiff"
    write_tiff(good)
    short = root / "movies/mrc/movie_2.mrc"
    write_mrc(short)
    with open(short, "r+b") as handle:
        handle.truncate(short.stat().st_size - 10)
    problems = [p for p in layout.validate(root) if not p.startswith("missing:")]
    assert len(problems) == 2
    assert any(str(zlib) in p and "expected LZW" in p for p in problems)
    assert any(str(short) in p and "truncated" in p for p in problems)
    assert not any(str(good) in p for p in problems)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_problem(tmp_path):
    root = build(tmp_path, real_eer=False)
    (root / EER_FILE).unlink()
    path = root / CONCRETE["gpu_fsc_test/half_map_A.mrc"]
    path.chmod(0)
    try:
        problems = layout.validate(root)
    finally:
        path.chmod(0o644)
    assert any(p.startswith(f"unreadable: {path}") for p in problems)


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_root_that_is_not_a_directory(tmp_path, kind):
    root = tmp_path / "dataset"
    if kind == "file":
        root.write_text("not a directory")
    assert layout.validate(root) == [f"{root} is not a directory"]


def test_validation_error_lists_all_problems(tmp_path):
    problems = layout.validate(tmp_path)
    message = layout.validation_error(tmp_path, problems)
    assert message.startswith(f"--cryobench-data {tmp_path} is not a complete CryoSPARC benchmark data set")
    assert f"({len(layout.EXPECTED)} problem(s))" in message
    lines = message.splitlines()
    assert lines[1:] == [f"  {p}" for p in problems]


def test_validation_error_of_one_problem(tmp_path):
    message = layout.validation_error(tmp_path, ["missing: x"])
    assert message == (f"--cryobench-data {tmp_path} is not a complete CryoSPARC benchmark data set "
                       "(1 problem(s)):\n  missing: x")


def test_a_truncated_tiff_movie_is_a_problem(tmp_path):
    root = build(tmp_path, real_eer=False)
    (root / EER_FILE).unlink()
    movie = root / CONCRETE["movies/tiff/*.tif*"]
    with open(movie, "r+b") as handle:
        handle.truncate(movie.stat().st_size // 2)
    problems = [p for p in layout.validate(root) if not p.startswith("missing:")]
    assert len(problems) == 1 and str(movie) in problems[0]
