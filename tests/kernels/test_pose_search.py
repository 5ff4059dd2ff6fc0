"""The engine: scoring, pose assignment, the engine data set and a whole pass, on NumPy (and CuPy
where a GPU is present)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from pytest_cryobench.data import engine as data_engine
from pytest_cryobench.engine.passes import ENGINE_CASES, EngineCase, PassConfig, make_config, overlap_seconds, run_pass
from pytest_cryobench.kernels import pose_search as ek
from pytest_cryobench.kernels.projection import extract_slices, fourier_coords, prepare_volume
from pytest_cryobench.kernels.rotations import rotation_grid, symmetric_angle_deg, symmetry_group
from pytest_cryobench.profiles import PROFILES

N = 32
APIX = 4.0


@pytest.fixture(scope="module")
def blob():
    model = data_engine.blob_model(N, APIX, 3)
    return model, data_engine.blob_volume(model, N)


def _particles(model, grid, shifts, count, noise, seed):
    rng = np.random.default_rng(seed)
    rot = rng.integers(0, len(grid.matrices), count)
    sh = rng.integers(0, len(shifts.shifts), count)
    images = data_engine.blob_projections(model, grid.matrices[rot], shifts.shifts[sh], N)
    df = np.full(count, 15_000.0)
    ctf = ek.CtfParams(df, df, np.zeros(count))
    images = data_engine.apply_ctf(images, ctf.df1_A, ctf.df2_A, ctf.df_angle_rad, APIX)
    images += noise * rng.standard_normal(images.shape).astype(np.float32)
    return images, ctf, rot, sh


def test_case_names_are_cryosparcs_fourteen():
    assert len(ENGINE_CASES) == 14 == len(set(ENGINE_CASES))
    parsed = [EngineCase.parse(name) for name in ENGINE_CASES]
    assert [p.name for p in parsed] == list(ENGINE_CASES)
    assert {p.symmetry for p in parsed} == {"C1", "D7"} and {p.location for p in parsed} == {"disk", "memory"}
    for bad in ("disk_single_linear10_max", "tape_single_linear10_max_C1", "disk_single_linear30_max_C1",
                "disk_single_linear10_max_X9"):
        with pytest.raises(ValueError):
            EngineCase.parse(bad)


def test_shift_phases_undo_a_shift():
    """A shifted image's coefficients times the phases of its shift equal the unshifted ones."""
    rng = np.random.default_rng(1)
    image = rng.standard_normal((1, N, N)).astype(np.float32)
    coords = fourier_coords(N, 10)
    shifted = np.roll(image, (2, -1), axis=(1, 2))  # sy = 2, sx = -1
    phases = ek.shift_phases(coords, np.array([[-1.0, 2.0]]), N, np)
    np.testing.assert_allclose(ek.image_coefficients(shifted, coords) * phases,
                               ek.image_coefficients(image, coords), rtol=1e-4, atol=1e-3)


def test_score_is_the_gaussian_log_likelihood():
    """L[b, t, r] equals -1/2 sum w |X - C P shifted|^2 up to a per-particle constant."""
    rng = np.random.default_rng(2)
    coords = fourier_coords(N, 8)
    k = coords.flat.size
    x = (rng.standard_normal((3, k)) + 1j * rng.standard_normal((3, k))).astype(np.complex64)
    p = (rng.standard_normal((5, k)) + 1j * rng.standard_normal((5, k))).astype(np.complex64)
    c = rng.uniform(-1, 1, (3, k)).astype(np.float32)
    w = rng.uniform(0.5, 2, k).astype(np.float32)
    shifts = ek.shift_grid(1).shifts
    phases = ek.shift_phases(coords, shifts, N, np)
    got = ek.score_poses(x, c, ek.projection_bank(p), w, phases)
    assert got.shape == (3, len(shifts), 5)
    model = c[:, None, None, :] * p[None, None, :, :] * np.conj(phases)[None, :, None, :]  # (B, T, R, K)
    direct = -0.5 * (w * np.abs(x[:, None, None, :] - model) ** 2).sum(axis=-1)
    constant = -0.5 * (w * np.abs(x) ** 2).sum(axis=-1)
    np.testing.assert_allclose(got, direct - constant[:, None, None], rtol=1e-4, atol=1e-2)


def test_assign_max_and_marg():
    scores = np.full((2, 3, 4), -50.0, dtype=np.float32)
    scores[0, 1, 2] = 0.0  # particle 0: one dominant pose
    scores[1, 0, 0] = scores[1, 2, 3] = 0.0  # particle 1: two equal poses
    best = ek.assign_max(scores)
    assert best.rotation.tolist()[0] == 2 and best.shift.tolist()[0] == 1
    m = ek.assign_marg(scores)
    np.testing.assert_allclose(m.total, 1.0)
    assert m.kept.tolist() == [1, 2]
    assert np.all(m.kept_mass >= 0.999)
    np.testing.assert_allclose(np.bincount(m.particle, weights=m.weight), 1.0, rtol=1e-6)
    assert sorted(zip(m.rotation[m.particle == 1].tolist(), m.shift[m.particle == 1].tolist(), strict=True)) == [(0, 0), (3, 2)]
    flat = np.zeros((1, 1, 1000), dtype=np.float32)  # a flat posterior keeps 999 of 1000 poses
    assert ek.assign_marg(flat).kept.tolist() == [999]
    with pytest.raises(ValueError):
        ek.assign_marg(scores, mass=0)


def test_search_finds_noise_free_poses(blob):
    """Noise-free particles at grid poses and shifts: the search returns exactly those."""
    model, volume = blob
    grid = rotation_grid(30, 45.0)
    shifts = ek.shift_grid(1)
    images, ctf, rot, sh = _particles(model, grid, shifts, 24, 0.0, 4)
    coords = fourier_coords(N, 10)
    bank = ek.projection_bank(extract_slices(prepare_volume(volume, 2, "cubic"), grid.matrices, coords))
    x = ek.image_coefficients(images, coords)
    c = ek.ctf_coefficients(ctf, coords, APIX, np)
    scores = ek.score_poses(x, c, bank, ek.noise_weights(x, coords), ek.shift_phases(coords, shifts.shifts, N, np))
    best = ek.assign_max(scores)
    angles = symmetric_angle_deg(grid.matrices[best.rotation], grid.matrices[rot], symmetry_group("D7"))
    assert np.all(angles < 1e-3), angles
    assert np.array_equal(best.shift, sh)


def test_plan_batch_respects_budget_and_cap():
    assert ek.plan_batch(128, 1000, 9, 2000, 1, 10e9, 500) == 500
    small = ek.plan_batch(128, 1000, 9, 2000, 1, 100e6, 500)
    assert 1 <= small < 500
    assert ek.plan_batch(128, 1000, 9, 2000, 1, 100e6, 500, marg=True) < small
    assert ek.plan_batch(128, 1000, 9, 2000, 1, 1, 500) == 1


def test_full_profile_plan_fits_an_11_gb_gpu():
    """The batch planned for the full profile on an 11 GB card: fixed arrays plus the batch's."""

    class FakeCupy:
        __name__ = "cupy"

    size = PROFILES["full"].engine
    for name in ("memory_single_linear20_marg_C1", "memory_single_linear10_max_D7"):
        config = make_config(size, size.box, size.apix, FakeCupy(), EngineCase.parse(name), free_device_bytes=int(11e9))
        assert 1 <= config.batch <= size.batch


def test_volume_is_d7_symmetric_and_projections_match_the_volume(blob):
    model, volume = blob
    group = symmetry_group("D7")
    centres = model["centres"]
    for s in group:  # every operator maps the blob set onto itself
        moved = centres @ s.T
        nearest = np.abs(moved[:, None, :] - centres[None, :, :]).max(axis=2).min(axis=1)
        assert nearest.max() < 1e-9
    images = data_engine.blob_projections(model, np.eye(3)[None], np.zeros((1, 2)), N)
    np.testing.assert_allclose(images[0], volume.sum(axis=0), rtol=1e-4, atol=1e-4 * volume.sum(axis=0).max())


def test_engine_data_set_reads_with_cryosparc_tools(tmp_path):
    from cryosparc.dataset import Dataset

    from pytest_cryobench.data.engine_source import ParticleReader, load_engine_dataset
    from pytest_cryobench.data.provision import ensure
    from pytest_cryobench.kernels.rotations import rotvec_to_matrix

    profile = PROFILES["smoke"]
    entry = ensure(tmp_path, data_engine.engine_component(profile, 7), 7)
    truth = entry["truth"][data_engine.TRUTH_VOLUME]
    assert truth["symmetry"] == "D7" and truth["fsc05_shell"] == profile.engine.fsc05_shell
    ds = Dataset.load(tmp_path / data_engine.PARTICLES_CS)
    assert len(ds) == profile.engine.particles
    for field in ("alignments3D/pose", "alignments3D/shift", "ctf/df1_A", "blob/path", "blob/idx"):
        assert field in ds.fields()
    dataset = load_engine_dataset(tmp_path, truth)
    np.testing.assert_allclose(np.asarray(ds["alignments3D/pose"]), dataset.poses.astype(np.float32))
    plan = data_engine.particle_plan(profile, 7)
    np.testing.assert_allclose(rotvec_to_matrix(dataset.poses), plan["matrix"], atol=1e-5)
    reader = ParticleReader(dataset)
    both = reader.read(60, 70)  # spans two stacks of 64
    assert both.shape == (10, 48, 48) and reader.bytes_read == 10 * 48 * 48 * 4
    np.testing.assert_array_equal(both, reader.preload()[60:70])


def _tiny_config(grid, shifts, batch):
    return PassConfig(grid, shifts, 10, 14, batch, APIX)


@pytest.mark.parametrize("name", ["memory_single_linear10_max_C1", "memory_multi_linear20_marg_C1",
                                  "memory_single_linear10_max_D7"])
def test_a_pass_recovers_poses_and_the_volume(blob, name):
    from pytest_cryobench.kernels.fsc import fsc_maps

    model, volume = blob
    grid = rotation_grid(30, 45.0)
    shifts = ek.shift_grid(1)
    images, ctf, rot, sh = _particles(model, grid, shifts, 300, 2.0, 5)
    spec = EngineCase.parse(name)
    result = run_pass(volume, ctf, lambda lo, hi: images[lo:hi], len(images), spec, _tiny_config(grid, shifts, 64), np)
    angles = symmetric_angle_deg(grid.matrices[result.rotation], grid.matrices[rot], symmetry_group("D7"))
    assert (angles < 1e-3).mean() >= 0.9
    assert result.batches == 5
    curve = np.asarray(fsc_maps(result.volume, volume))
    assert curve[1:6].min() > 0.5, curve  # 30 view directions fill the low shells only
    if spec.assignment == "marg":
        np.testing.assert_allclose(result.marg_total, 1.0)
        assert result.marg_kept_mass.min() >= 0.999 - 1e-9
    expected = len(images) * (14 if spec.symmetry == "D7" else 1)
    assert result.insertions >= expected


def test_multi_overlaps_reading_with_computing(blob):
    """With slow reads, the reader thread reads batch i + 1 while batch i is computed: the
    intervals overlap (a structural check, not a timing target), and a single pass does not."""
    model, volume = blob
    grid = rotation_grid(30, 45.0)
    shifts = ek.shift_grid(1)
    images, ctf, _, _ = _particles(model, grid, shifts, 128, 2.0, 6)

    def slow(lo, hi):
        time.sleep(0.05)
        return images[lo:hi]

    out = {}
    for threads in ("single", "multi"):
        spec = dataclasses.replace(EngineCase.parse("disk_single_linear10_max_C1"), threads=threads)
        out[threads] = run_pass(volume, ctf, slow, len(images), spec, _tiny_config(grid, shifts, 32), np)
    assert overlap_seconds(out["single"].intervals) == 0.0
    assert overlap_seconds(out["multi"].intervals) > 0.0
    np.testing.assert_array_equal(out["single"].rotation, out["multi"].rotation)


def test_multi_reader_error_reaches_the_caller(blob):
    model, volume = blob
    grid = rotation_grid(12, 90.0)
    shifts = ek.shift_grid(0)
    images, ctf, _, _ = _particles(model, grid, shifts, 64, 1.0, 7)

    def failing(lo, hi):
        if lo >= 32:
            raise OSError("disk went away")
        return images[lo:hi]

    spec = EngineCase.parse("disk_multi_linear10_max_C1")
    with pytest.raises(OSError, match="disk went away"):
        run_pass(volume, ctf, failing, len(images), spec, _tiny_config(grid, shifts, 16), np)


def test_engine_cupy_parity(cupy, blob):
    """The same pass on CuPy and NumPy finds the same poses; the volumes agree."""
    model, volume = blob
    grid = rotation_grid(30, 45.0)
    shifts = ek.shift_grid(1)
    images, ctf, _, _ = _particles(model, grid, shifts, 96, 2.0, 8)
    spec = EngineCase.parse("memory_multi_linear20_marg_C1")
    config = _tiny_config(grid, shifts, 32)
    host = run_pass(volume, ctf, lambda lo, hi: images[lo:hi], len(images), spec, config, np)
    device = run_pass(volume, ctf, lambda lo, hi: images[lo:hi], len(images), spec, config, cupy)
    assert (host.rotation == device.rotation).mean() >= 0.98
    np.testing.assert_allclose(device.volume, host.volume, atol=1e-3 * np.abs(host.volume).max())
