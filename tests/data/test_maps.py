"""Half-map files: reading, and the checks a bad map must fail."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from pytest_cryobench.data.maps import read_half_maps, read_map, write_map
from pytest_cryobench.errors import CryobenchError


def _volume(n=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, n, n)).astype(np.float32)


def test_round_trip(tmp_path):
    path = tmp_path / "a.mrc"
    write_map(path, _volume(), 1.25)
    data, apix = read_map(path)
    np.testing.assert_array_equal(data, _volume())
    assert apix == pytest.approx(1.25)


def test_half_maps_of_different_shapes(tmp_path):
    write_map(tmp_path / "a.mrc", _volume(16), 1.0)
    write_map(tmp_path / "b.mrc", _volume(18), 1.0)
    with pytest.raises(CryobenchError, match=r"half maps of different shapes: .*a\.mrc \(16, 16, 16\), .*b\.mrc \(18, 18, 18\)"):
        read_half_maps(tmp_path / "a.mrc", tmp_path / "b.mrc")


def test_half_maps_of_different_voxel_sizes(tmp_path):
    write_map(tmp_path / "a.mrc", _volume(), 1.0)
    write_map(tmp_path / "b.mrc", _volume(seed=1), 1.1)
    with pytest.raises(CryobenchError, match="different voxel sizes"):
        read_half_maps(tmp_path / "a.mrc", tmp_path / "b.mrc")


def test_non_cubic_map(tmp_path):
    path = tmp_path / "box.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((16, 16, 20), dtype=np.float32))
    with pytest.raises(CryobenchError, match=r"box\.mrc: the map is not cubic \(shape \(16, 16, 20\)\)"):
        read_map(path)


@pytest.mark.filterwarnings("ignore:Data array contains NaN values:RuntimeWarning")
def test_nan_in_map(tmp_path):
    volume = _volume()
    volume[3, 4, 5] = np.nan
    path = tmp_path / "nan.mrc"
    write_map(path, volume, 1.0)
    with pytest.raises(CryobenchError, match=r"nan\.mrc: the map holds NaN"):
        read_map(path)


def test_truncated_map(tmp_path):
    path = tmp_path / "cut.mrc"
    write_map(path, _volume(), 1.0)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CryobenchError, match=r"cut\.mrc: cannot read this map"):
        read_map(path)


def test_two_dimensional_map(tmp_path):
    path = tmp_path / "flat.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((16, 16), dtype=np.float32))
    with pytest.raises(CryobenchError, match="must be 3-D"):
        read_map(path)
