"""``cryobench data verify`` checks every file a run reads; a damaged file or manifest is one line
naming it (exit status 1), never a traceback; every generated profile is checked unless one is named."""

from __future__ import annotations

import dataclasses
import json

import mrcfile
import numpy as np
import pytest

from pytest_cryobench.cli import main
from pytest_cryobench.data import engine, maps, movies, picking
from pytest_cryobench.data.maps import write_map
from pytest_cryobench.profiles import PROFILES, MovieSize

TINY = dataclasses.replace(PROFILES["smoke"], tiff=MovieSize(2, 64, 48, 4), mrc=MovieSize(2, 32, 32, 4),
                           eer=MovieSize(2, 64, 64, 12, fractions=3), fsc_box=24, nu_box=24)


def _generate(root, component):
    for name in component.files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        component.generate(name, path, lambda done, total: None)


@pytest.fixture
def real_set(tmp_path):
    """A complete small data set in CryoSPARC's layout, every file a real one of its kind."""
    root = tmp_path / "cryosparc_benchmark"
    for component in (*[movies.movie_component(f, TINY, 5) for f in movies.FORMATS],
                      maps.fsc_component(TINY, 5), engine.engine_component(TINY, 5),
                      picking.picking_component(TINY, 5)):
        _generate(root, component)
    (root / "class2D_test").mkdir()
    write_map(root / "class2D_test" / "maps.mrc", np.zeros((4, 4, 4), np.float32), 1.0)
    with mrcfile.new(root / "picking_test" / "sample_background.mrc") as mrc:
        mrc.set_data(np.zeros((16, 16), np.float32))
    np.save(root / "picking_test" / "sample_ctf_spline.npy", np.zeros(8))
    return root


def _verify(*argv):
    return main(["data", "verify", *argv])


def test_complete_real_data_set_is_ok(real_set, capsys):
    assert _verify("--data", str(real_set)) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.strip().endswith(": OK")


def _truncate(path, keep=0.5):
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))


DAMAGE = {
    "truncated .cs": (lambda root: _truncate(root / engine.PARTICLES_CS), "abinit_particles.cs: damaged or truncated"),
    "half maps of different shapes": (
        lambda root: write_map(root / "gpu_fsc_test" / "half_map_B.mrc", np.zeros((20, 20, 20), np.float32), 1.0),
        "half maps of different shapes"),
    "NaN half map": (
        lambda root: write_map(root / "gpu_fsc_test" / "half_map_A.mrc", np.full((24, 24, 24), np.nan, np.float32),
                               1.0), "half_map_A.mrc: the map holds NaN"),
    "truncated particle stack": (lambda root: _truncate(root / engine.particle_file_name(0), 0.7),
                                 "000_particles.mrc"),
    "truncated picking exposures": (lambda root: _truncate(root / picking.EXPOSURES_FILE),
                                    "exposure_dataset_for_picking.cs: damaged or truncated"),
}


@pytest.mark.filterwarnings("ignore:Data array contains NaN values")
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_real_data_set_file_is_named(real_set, capsys, damage):
    make, says = DAMAGE[damage]
    make(real_set)
    assert _verify("--data", str(real_set)) == 1
    out = capsys.readouterr().out
    assert says in out and "Traceback" not in out and "problem(s)" in out


def test_every_generated_profile_is_verified_unless_one_is_named(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["data", "generate", "--profile", "smoke", "--dir", str(data), "--only", "mrc"]) == 0
    capsys.readouterr()
    assert _verify("--dir", str(data)) == 0
    assert f"{data / 'synthetic-smoke'}: 3 file(s) checked, OK" in capsys.readouterr().out
    assert _verify("--dir", str(data), "--profile", "standard") == 1
    assert "no generated data" in capsys.readouterr().out
    assert _verify("--dir", str(tmp_path / "empty")) == 1
    assert "no generated data" in capsys.readouterr().out


@pytest.mark.parametrize("manifest", [b"{\"kind\": \"cryobench-data\", \"sche", b"\xff\xfe\x00binary",
                                      json.dumps({"kind": "cryobench-data", "schema_version": 1,
                                                  "components": {"movies/mrc": {"files": {"a.mrc": 3}}}}).encode(),
                                      json.dumps({"kind": "cryobench-data", "schema_version": 1,
                                                  "components": {"movies/mrc": []}}).encode()])
def test_corrupt_manifest_is_one_line_not_a_traceback(tmp_path, capsys, manifest):
    root = tmp_path / "synthetic-smoke"
    root.mkdir()
    (root / "cryobench-manifest.json").write_bytes(manifest)
    assert _verify("--dir", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "cryobench-manifest.json" in out and "problem(s)" in out and "Traceback" not in out
