"""Directory checks, free space, filesystem identity, atomic writes and copies."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np
import pytest

from pytest_cryobench.errors import DirectoryError, NotEnoughSpace
from pytest_cryobench.measure import fsutil
from pytest_cryobench.measure.fsutil import (
    atomic_write,
    copy_file,
    ensure_writable_dir,
    filesystem_of,
    free_bytes,
    human_bytes,
    require_free_space,
)

DiskUsage = collections.namedtuple("DiskUsage", "total used free")


# --------------------------------------------------------------------------- ensure_writable_dir

def test_creates_a_missing_directory_with_parents(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert ensure_writable_dir(target, "project dir") == target
    assert target.is_dir()
    assert list(target.iterdir()) == []  # the write probe is gone


def test_existing_directory_is_accepted(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    assert ensure_writable_dir(tmp_path, "output dir", create=False) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_missing_without_create_is_an_error_naming_it(tmp_path):
    target = tmp_path / "ssd"
    with pytest.raises(DirectoryError) as info:
        ensure_writable_dir(target, "cache dir (--cryobench-cache-dir)", create=False)
    message = str(info.value)
    assert f"cache dir (--cryobench-cache-dir) {target} does not exist" in message
    assert not target.exists()


def test_a_regular_file_is_not_a_directory(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a dir")
    with pytest.raises(DirectoryError, match=f"output dir {target} is not a directory"):
        ensure_writable_dir(target, "output dir")


def test_a_path_below_a_regular_file_cannot_be_created(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("file")
    target = blocker / "sub" / "dir"
    with pytest.raises(DirectoryError) as info:
        ensure_writable_dir(target, "project dir")
    assert f"project dir {target} cannot be created" in str(info.value)
    assert blocker.read_text() == "file"
    with pytest.raises(DirectoryError, match="does not exist"):
        ensure_writable_dir(target, "project dir", create=False)


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs sysfs")
def test_a_directory_where_files_cannot_be_created_is_not_writable():
    # sysfs refuses new files even to root (chmod cannot be used: the tests run as root)
    with pytest.raises(DirectoryError, match=r"output dir /sys/kernel is not writable"):
        ensure_writable_dir(Path("/sys/kernel"), "output dir", create=False)


# --------------------------------------------------------------------------- free space

def test_free_bytes_is_the_filesystem_free_space(tmp_path):
    st = os.statvfs(tmp_path)
    assert abs(free_bytes(tmp_path) - st.f_bavail * st.f_frsize) < 64 << 20


def test_require_free_space_refuses_with_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda path: DiskUsage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(NotEnoughSpace) as info:
        require_free_space(tmp_path, 2_000_000, "project dir")
    message = str(info.value)
    assert f"not enough free space in project dir {tmp_path}" in message
    assert "2.10 MB (2100000 bytes)" in message  # needed plus the 5% margin
    assert "1.00 kB (1000 bytes) free" in message
    assert "--cryobench-profile" in message


def test_require_free_space_margin_boundary(tmp_path, monkeypatch):
    free = {"bytes": 10_500}
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda path: DiskUsage(10**6, 0, free["bytes"]))
    require_free_space(tmp_path, 10_000, "cache dir")  # exactly needed * 1.05: enough
    free["bytes"] = 10_499
    with pytest.raises(NotEnoughSpace):
        require_free_space(tmp_path, 10_000, "cache dir")
    require_free_space(tmp_path, 10_000, "cache dir", margin=1.0)


def test_require_free_space_real_filesystem(tmp_path):
    require_free_space(tmp_path, 1, "tmp")


# --------------------------------------------------------------------------- human_bytes

@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (999, "999 B"), (1000, "1.00 kB"), (1500, "1.50 kB"), (2_500_000, "2.50 MB"),
    (1_234_567_890, "1.23 GB"), (10**12, "1.00 TB"), (5.5e13, "55.00 TB"), (-1500, "-1.50 kB"),
    (12.7, "12 B")])
def test_human_bytes(n, text):
    assert human_bytes(n) == text


# --------------------------------------------------------------------------- filesystem_of

def test_filesystem_of_tmp_path(tmp_path):
    fs = filesystem_of(tmp_path)
    assert fs["fstype"]
    assert fs["device"]
    mount = fs["mountpoint"]
    real = os.path.realpath(tmp_path)
    assert real == mount or real.startswith(mount.rstrip("/") + "/")
    assert os.stat(mount).st_dev == os.stat(tmp_path).st_dev


def test_filesystem_of_tmp_path_is_ext4_here(tmp_path):
    with open("/proc/mounts") as handle:
        root_type = {line.split()[1]: line.split()[2] for line in handle}.get("/")
    if root_type != "ext4" or filesystem_of(tmp_path)["mountpoint"] != "/":
        pytest.skip("the temp dir is not on an ext4 root filesystem here")
    assert filesystem_of(tmp_path)["fstype"] == "ext4"


def test_filesystem_of_a_missing_path_uses_its_existing_parent(tmp_path):
    assert filesystem_of(tmp_path / "not" / "yet") == filesystem_of(tmp_path)


def test_filesystem_of_without_a_mount_table(tmp_path, monkeypatch):
    import psutil

    def fail(all=False):
        raise OSError("no /proc/mounts")

    monkeypatch.setattr(psutil, "disk_partitions", fail)
    assert filesystem_of(tmp_path) == {"fstype": None, "device": None, "mountpoint": None}


# --------------------------------------------------------------------------- atomic_write

def test_atomic_write_creates_and_replaces(tmp_path):
    target = tmp_path / "result.json"
    with atomic_write(target) as handle:
        handle.write("first")
    assert target.read_text() == "first"
    with atomic_write(target) as handle:
        handle.write("second")
        assert target.read_text() == "first"  # not replaced until the block ends
    assert target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_atomic_write_binary(tmp_path):
    target = tmp_path / "blob.bin"
    with atomic_write(target, "wb") as handle:
        handle.write(b"\x00\x01\r\n")
    assert target.read_bytes() == b"\x00\x01\r\n"


def test_atomic_write_text_keeps_newlines(tmp_path):
    target = tmp_path / "rows.csv"
    with atomic_write(target) as handle:
        handle.write("a\r\nb\n")
    assert target.read_bytes() == b"a\r\nb\n"


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_failure_keeps_the_old_file(tmp_path, exc_type):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(exc_type):
        with atomic_write(target) as handle:
            handle.write("new and incomplete")
            raise exc_type()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


@pytest.mark.parametrize("exc_type", [ValueError, KeyboardInterrupt])
def test_atomic_write_failure_without_old_file_leaves_nothing(tmp_path, exc_type):
    target = tmp_path / "result.csv"
    with pytest.raises(exc_type):
        with atomic_write(target) as handle:
            handle.write("partial")
            raise exc_type()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- copy_file

def _random_file(path: Path, size: int, seed: int) -> bytes:
    data = np.random.default_rng(seed).bytes(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("size", [0, 1, 4096, (1 << 20) + 12345, 3 << 20])
def test_copy_file_copies_exactly(tmp_path, size):
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    data = _random_file(src, size, seed=size)
    assert copy_file(src, dst) == size
    assert dst.read_bytes() == data


def test_copy_file_overwrites_a_longer_destination(tmp_path):
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    data = _random_file(src, 5000, seed=1)
    _random_file(dst, 20000, seed=2)
    assert copy_file(src, dst) == 5000
    assert dst.read_bytes() == data


def test_copy_file_falls_back_when_copy_file_range_fails(tmp_path, monkeypatch):
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    data = _random_file(src, (1 << 20) + 7, seed=3)
    calls = []

    def failing(*args):
        calls.append(args)
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(fsutil.os, "copy_file_range", failing, raising=False)
    assert copy_file(src, dst) == len(data)
    assert calls
    assert dst.read_bytes() == data


def test_copy_file_falls_back_after_a_partial_copy_that_fails(tmp_path, monkeypatch):
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    data = _random_file(src, 300_000, seed=4)
    real = os.copy_file_range
    calls = []

    def partial_then_fail(fd_in, fd_out, count, *args):
        calls.append(count)
        if len(calls) == 1:
            return real(fd_in, fd_out, 1000)
        raise OSError(5, "I/O error")

    monkeypatch.setattr(fsutil.os, "copy_file_range", partial_then_fail)
    assert copy_file(src, dst) == len(data)
    assert dst.read_bytes() == data


def test_copy_file_without_copy_file_range(tmp_path, monkeypatch):
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    data = _random_file(src, 70_000, seed=5)
    monkeypatch.delattr(fsutil.os, "copy_file_range", raising=False)
    assert copy_file(src, dst) == len(data)
    assert dst.read_bytes() == data


def test_atomic_write_goes_through_links_and_refuses_other_files(tmp_path):
    import os

    import pytest

    from pytest_cryobench.measure.fsutil import atomic_write

    target = tmp_path / "target.html"
    target.write_text("old")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    with atomic_write(link) as handle:
        handle.write("new")
    assert link.is_symlink() and target.read_text() == "new"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        with atomic_write(fifo) as handle:
            handle.write("x")
    assert not fifo.is_file() and fifo.exists()
    with pytest.raises(OSError, match="not a regular file"):
        with atomic_write(tmp_path) as handle:
            handle.write("x")
