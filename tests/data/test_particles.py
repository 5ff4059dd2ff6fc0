"""The random particle stack: writing, layout, read plans, preadv reads, content checks, copies."""

from __future__ import annotations

import collections
import hashlib
import io
import os

import mrcfile
import numpy as np
import pytest

from pytest_cryobench.data import particles
from pytest_cryobench.data.particles import (
    MRC_HEADER_BYTES,
    ParticleReader,
    copy_stack,
    make_read_plan,
    mrc_stack_layout,
    particle_file_name,
    remove_stack_files,
    remove_tree,
    verify_sample,
    write_particle_stack,
)
from pytest_cryobench.errors import CryobenchError, NotEnoughSpace
from pytest_cryobench.measure import fsutil
from pytest_cryobench.profiles import ParticleStackSize

SIZE = ParticleStackSize(40, 16, 4)   # 4 files of 10 particles of 16x16 float32 (1 KiB each)
SEED = 1234
PARTICLE_BYTES = 16 * 16 * 4
DiskUsage = collections.namedtuple("DiskUsage", "total used free")


def expected_file_data(f: int, seed: int = SEED) -> np.ndarray:
    return np.random.default_rng([seed, f]).standard_normal((10, 16, 16), dtype=np.float32)


@pytest.fixture
def stack(tmp_path):
    return write_particle_stack(tmp_path / "project", SIZE, SEED)


def flip_byte(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


# --------------------------------------------------------------------------- writing

def test_write_creates_exactly_the_stack_files(stack, tmp_path):
    directory = tmp_path / "project"
    names = [f"particles_{i:05d}.mrc" for i in range(4)]
    assert sorted(p.name for p in directory.iterdir()) == names
    assert [p.name for p in stack.files] == names
    assert particle_file_name(12) == "particles_00012.mrc"
    assert stack.size == SIZE
    assert stack.particle_bytes_total == 40 * PARTICLE_BYTES
    assert stack.total_bytes == 4 * (MRC_HEADER_BYTES + 10 * PARTICLE_BYTES)


def test_files_are_valid_mrc_with_the_seeded_data(stack):
    for f, path in enumerate(stack.files):
        with mrcfile.open(path, permissive=False) as mrc:
            assert mrc.data.shape == (10, 16, 16)
            assert mrc.data.dtype == np.float32
            np.testing.assert_array_equal(mrc.data, expected_file_data(f))
        assert mrcfile.validate(str(path), print_file=io.StringIO())


def test_files_differ_from_each_other_and_depend_on_the_seed(stack, tmp_path):
    first = stack.files[0].read_bytes()
    assert first != stack.files[1].read_bytes()
    other = write_particle_stack(tmp_path / "other", SIZE, SEED + 1)
    assert other.files[0].read_bytes()[MRC_HEADER_BYTES:] != first[MRC_HEADER_BYTES:]
    again = write_particle_stack(tmp_path / "again", SIZE, SEED)
    assert again.files[0].read_bytes()[MRC_HEADER_BYTES:] == first[MRC_HEADER_BYTES:]
    np.testing.assert_array_equal(again.digests, stack.digests)


def test_offsets_and_digests(stack):
    assert stack.data_offsets.tolist() == [MRC_HEADER_BYTES] * 4
    assert stack.digests.shape == (40, 16) and stack.digests.dtype == np.uint8
    for particle in (0, 9, 10, 25, 39):
        f, i = divmod(particle, 10)
        raw = expected_file_data(f)[i].tobytes()
        assert stack.digests[particle].tobytes() == hashlib.blake2b(raw, digest_size=16).digest()


def test_progress_is_reported_per_file(tmp_path):
    seen = []
    write_particle_stack(tmp_path / "p", SIZE, SEED, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_interrupted_write_leaves_no_files(tmp_path, monkeypatch):
    directory = tmp_path / "project"
    real_new = mrcfile.new
    calls = []

    def new(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_new(*args, **kwargs)

    monkeypatch.setattr(particles.mrcfile, "new", new)
    with pytest.raises(KeyboardInterrupt):
        write_particle_stack(directory, SIZE, SEED)
    assert len(calls) == 3
    assert list(directory.iterdir()) == []


def test_failure_after_a_file_is_complete_leaves_no_files(tmp_path):
    directory = tmp_path / "project"

    def progress(done, total):
        if done == 2:
            raise RuntimeError("disk went away")

    with pytest.raises(RuntimeError, match="disk went away"):
        write_particle_stack(directory, SIZE, SEED, progress=progress)
    assert list(directory.iterdir()) == []


def test_not_enough_space_before_writing_anything(tmp_path, monkeypatch):
    directory = tmp_path / "project"
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda path: DiskUsage(10**6, 10**6 - 100, 100))

    def new(*args, **kwargs):
        raise AssertionError("nothing may be written")

    monkeypatch.setattr(particles.mrcfile, "new", new)
    with pytest.raises(NotEnoughSpace, match="the particle stack's directory") as info:
        write_particle_stack(directory, SIZE, SEED)
    needed = int((40 * PARTICLE_BYTES + 4 * MRC_HEADER_BYTES) * 1.05)
    assert f"({needed} bytes)" in str(info.value)
    assert "(100 bytes) free" in str(info.value)
    assert list(directory.iterdir()) == []


# --------------------------------------------------------------------------- layout

def test_layout(stack):
    offset, shape, dtype = mrc_stack_layout(stack.files[0])
    assert (offset, shape, dtype) == (MRC_HEADER_BYTES, (10, 16, 16), np.dtype(np.float32))


def test_layout_of_a_truncated_file(stack):
    path = stack.files[2]
    full = path.stat().st_size
    os.truncate(path, full - 1)
    with pytest.raises(CryobenchError) as info:
        mrc_stack_layout(path)
    message = str(info.value)
    assert str(path) in message
    assert f"truncated MRC file: its header describes {full} bytes, the file has {full - 1}" in message


@pytest.mark.parametrize("content", [b"", b"abc", np.random.default_rng(5).bytes(4096),
                                     b"this is a text file\n" * 100])
def test_layout_of_a_non_mrc_file(tmp_path, content):
    path = tmp_path / "notes.mrc"
    path.write_bytes(content)
    with pytest.raises(CryobenchError, match="not a readable MRC file") as info:
        mrc_stack_layout(path)
    assert str(path) in str(info.value)


def test_layout_of_a_missing_file(tmp_path):
    with pytest.raises(CryobenchError, match="not a readable MRC file"):
        mrc_stack_layout(tmp_path / "gone.mrc")


# --------------------------------------------------------------------------- read plans

def test_sequential_plan(stack):
    plan = make_read_plan(stack, "sequential")
    assert plan.particle.tolist() == list(range(40))
    assert plan.file_index.tolist() == [p // 10 for p in range(40)]
    assert plan.offset.tolist() == [MRC_HEADER_BYTES + (p % 10) * PARTICLE_BYTES for p in range(40)]
    assert plan.particle.dtype == plan.file_index.dtype == plan.offset.dtype == np.int64


def test_random_plan_is_a_seeded_permutation(stack):
    plan = make_read_plan(stack, "random", seed=7)
    assert sorted(plan.particle.tolist()) == list(range(40))
    assert plan.particle.tolist() != list(range(40))
    assert plan.particle.tolist() == make_read_plan(stack, "random", seed=7).particle.tolist()
    assert plan.particle.tolist() != make_read_plan(stack, "random", seed=8).particle.tolist()
    for p, f, off in zip(plan.particle.tolist(), plan.file_index.tolist(), plan.offset.tolist(), strict=True):
        assert (f, off) == (p // 10, MRC_HEADER_BYTES + (p % 10) * PARTICLE_BYTES)


def test_unknown_order(stack):
    with pytest.raises(ValueError, match="unknown read order 'backwards'"):
        make_read_plan(stack, "backwards")


# --------------------------------------------------------------------------- reads and checks

@pytest.mark.parametrize("order", ["sequential", "random"])
def test_read_all_reads_every_byte_and_content_matches(stack, order):
    reader = ParticleReader(stack, make_read_plan(stack, order, seed=3))
    assert reader.expected_bytes == 40 * PARTICLE_BYTES
    assert reader.read_all() == reader.expected_bytes
    assert len(reader.kept_reads) == 40  # a tiny stack keeps every particle
    assert reader.mismatched_particles() == []
    assert reader.read_all() == reader.expected_bytes  # repeatable


def test_kept_buffers_hold_the_particles(stack):
    plan = make_read_plan(stack, "random", seed=3)
    reader = ParticleReader(stack, plan)
    reader.read_all()
    for slot, read in enumerate(reader.kept_reads.tolist()):
        particle = int(plan.particle[read])
        expected = expected_file_data(particle // 10)[particle % 10].tobytes()
        assert reader.kept[slot].tobytes() == expected


def test_reader_keeps_a_sample_within_its_budget(stack, monkeypatch):
    monkeypatch.setattr(particles, "VERIFY_BUDGET_BYTES", 5 * PARTICLE_BYTES)
    reader = ParticleReader(stack, make_read_plan(stack, "sequential"))
    assert reader.kept_reads.tolist() == [0, 10, 20, 29, 39]
    assert reader.read_all() == reader.expected_bytes
    assert reader.mismatched_particles() == []


@pytest.mark.parametrize("order", ["sequential", "random"])
def test_a_corrupted_particle_is_reported(stack, order):
    flip_byte(stack.files[2], MRC_HEADER_BYTES + 5 * PARTICLE_BYTES + 100)  # particle 25
    reader = ParticleReader(stack, make_read_plan(stack, order, seed=3))
    assert reader.read_all() == reader.expected_bytes
    assert reader.mismatched_particles() == [25]


def test_a_corrupted_first_and_last_byte(stack):
    flip_byte(stack.files[0], MRC_HEADER_BYTES)                           # particle 0, first byte
    flip_byte(stack.files[3], MRC_HEADER_BYTES + 10 * PARTICLE_BYTES - 1)  # particle 39, last byte
    reader = ParticleReader(stack, make_read_plan(stack, "sequential"))
    reader.read_all()
    assert reader.mismatched_particles() == [0, 39]
    assert verify_sample(stack, n=40) == [0, 39]


def test_a_truncated_file_reads_fewer_bytes(stack):
    path = stack.files[3]
    os.truncate(path, path.stat().st_size - 100)
    reader = ParticleReader(stack, make_read_plan(stack, "sequential"))
    assert reader.read_all() == reader.expected_bytes - 100
    assert 39 in reader.mismatched_particles()


def test_a_header_change_does_not_affect_the_content_check(stack):
    flip_byte(stack.files[1], 500)  # inside the MRC header (a label)
    reader = ParticleReader(stack, make_read_plan(stack, "sequential"))
    reader.read_all()
    assert reader.mismatched_particles() == []


# --------------------------------------------------------------------------- copies and samples

def test_copy_stack_and_verify_sample(stack, tmp_path):
    cache = tmp_path / "ssd" / "cache"
    copy = copy_stack(stack, cache)
    assert [p.parent for p in copy.files] == [cache] * 4
    assert [p.name for p in copy.files] == [p.name for p in stack.files]
    for src, dst in zip(stack.files, copy.files, strict=True):
        assert src.read_bytes() == dst.read_bytes()
    assert copy.digests is stack.digests and copy.size == stack.size
    assert verify_sample(copy) == []
    assert verify_sample(copy, n=1000) == []
    reader = ParticleReader(copy, make_read_plan(copy, "random"))
    assert reader.read_all() == reader.expected_bytes
    assert reader.mismatched_particles() == []


def test_verify_sample_finds_a_damaged_copy(stack, tmp_path):
    copy = copy_stack(stack, tmp_path / "cache")
    flip_byte(copy.files[1], MRC_HEADER_BYTES + 3 * PARTICLE_BYTES)  # particle 13
    assert verify_sample(copy, n=40) == [13]
    assert verify_sample(stack, n=40) == []  # the original is intact


def test_verify_sample_finds_a_short_file(stack):
    os.truncate(stack.files[0], MRC_HEADER_BYTES + 9 * PARTICLE_BYTES + 10)
    assert verify_sample(stack, n=40) == [9]


def test_verify_sample_is_seeded(stack):
    flip_byte(stack.files[0], MRC_HEADER_BYTES)            # particle 0
    flip_byte(stack.files[3], MRC_HEADER_BYTES + 100)      # particle 30
    found = verify_sample(stack, n=20, seed=4)
    assert found == verify_sample(stack, n=20, seed=4)
    assert set(found) <= {0, 30}


def test_relocated(stack, tmp_path):
    moved = stack.relocated(tmp_path / "elsewhere")
    assert [p.parent for p in moved.files] == [tmp_path / "elsewhere"] * 4
    assert stack.files[0].parent == tmp_path / "project"


def test_remove_helpers(stack, tmp_path):
    remove_stack_files(stack.files[:2] + (tmp_path / "never-existed.mrc",))
    assert sorted(p.name for p in (tmp_path / "project").iterdir()) == [p.name for p in stack.files[2:]]
    remove_tree(tmp_path / "project")
    assert not (tmp_path / "project").exists()
    remove_tree(tmp_path / "project")  # missing: no error
