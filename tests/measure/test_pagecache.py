"""Page-cache eviction and residency, on real files of this machine's temp filesystem."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from pytest_cryobench.errors import PageCacheError
from pytest_cryobench.measure import pagecache
from pytest_cryobench.measure.pagecache import (
    WARM_THRESHOLD,
    Residency,
    check_sysctl_permitted,
    drop,
    drop_and_measure,
    file_residency,
    residency,
)

SIZE = 4 << 20  # 4 MiB: 1024 pages of 4 KiB

pytestmark = pytest.mark.skipif(pagecache._LIBC is None, reason="libc (mincore) not available")


def _write(path, size=SIZE, seed=0, sync=True):
    data = np.random.default_rng(seed).bytes(size)
    with open(path, "wb") as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
    return data


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def cached_file(tmp_path):
    path = tmp_path / "particles.bin"
    data = _write(path)
    assert _read(path) == data
    return path


def test_written_and_read_file_is_resident(cached_file):
    resident, size = file_residency(cached_file)
    assert size == SIZE
    assert resident > 0.9 * SIZE
    r = residency([cached_file])
    assert r.measured and r.warm
    assert r.fraction > 0.9


def test_fadvise_evicts(cached_file):
    r = drop_and_measure([cached_file], "fadvise")
    assert r.measured
    assert r.total_bytes == SIZE
    assert r.fraction < 0.02
    assert not r.warm


def test_fadvise_evicts_a_freshly_written_dirty_file(tmp_path):
    path = tmp_path / "dirty.bin"
    _write(path, sync=False)
    assert residency([path]).fraction > 0.9
    drop([path], "fadvise")
    assert residency([path]).fraction < 0.02


def test_fadvise_evicts_every_file(tmp_path):
    paths = [tmp_path / f"f{i}.bin" for i in range(3)]
    for i, path in enumerate(paths):
        _write(path, size=SIZE // 4, seed=i, sync=False)
    r = drop_and_measure(paths, "fadvise")
    assert r.total_bytes == 3 * (SIZE // 4)
    assert r.fraction < 0.02


def test_reading_after_eviction_makes_it_warm_again(cached_file):
    drop([cached_file], "fadvise")
    _read(cached_file)
    assert residency([cached_file]).warm


def test_none_leaves_the_file_resident(cached_file):
    r = drop_and_measure([cached_file], "none")
    assert r.fraction > 0.9
    assert r.warm


def test_residency_is_capped_at_the_file_size(tmp_path):
    path = tmp_path / "small.bin"
    _write(path, size=5000)
    _read(path)
    assert file_residency(path) == (5000, 5000)
    assert 5000 % mmap.PAGESIZE != 0


def test_empty_file(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    assert file_residency(path) == (0, 0)
    r = drop_and_measure([path], "fadvise")
    assert r == Residency(0, 0)
    assert r.fraction == 0.0 and not r.warm


def test_residency_sums_files(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    _write(a, size=1 << 20)
    _write(b, size=1 << 20, seed=1)
    drop([a], "fadvise")
    _read(b)
    r = residency([a, b])
    assert r.total_bytes == 2 << 20
    assert 0.45 < r.fraction < 0.55


def test_residency_without_mincore_is_unmeasured(cached_file, monkeypatch):
    monkeypatch.setattr(pagecache, "_LIBC", None)
    with pytest.raises(OSError, match="mincore is unavailable"):
        file_residency(cached_file)
    r = residency([cached_file])
    assert r == Residency(0, SIZE, measured=False)
    assert not r.warm


@pytest.mark.parametrize("resident, total, measured, warm", [
    (2, 100, True, False),     # exactly at the threshold: still cold
    (3, 100, True, True),
    (0, 100, True, False),
    (100, 100, False, False),  # unknown: never marked warm
    (0, 0, True, False),
])
def test_residency_warm_threshold(resident, total, measured, warm):
    assert WARM_THRESHOLD == 0.02
    assert Residency(resident, total, measured).warm is warm


def test_fraction():
    assert Residency(25, 100).fraction == 0.25
    assert Residency(0, 0).fraction == 0.0


def test_unknown_method(cached_file):
    with pytest.raises(ValueError, match="unknown page-cache method 'always'"):
        drop([cached_file], "always")


# --------------------------------------------------------------------------- sysctl

@pytest.mark.parametrize("where", ["missing", "readonly"])
def test_sysctl_not_permitted_names_the_option(where, tmp_path, monkeypatch, cached_file):
    if where == "missing":
        target = tmp_path / "no" / "such" / "drop_caches"
    else:
        # Tests run as root, for whom every mode bit allows writing: report this file as a
        # read-only one (as os.access does on a read-only /proc/sys) instead.
        target = tmp_path / "drop_caches"
        target.write_text("0\n")
        real_access = os.access
        monkeypatch.setattr(pagecache.os, "access", lambda path, mode: False if str(path) == str(target)
                            else real_access(path, mode))
    monkeypatch.setattr(pagecache, "DROP_CACHES_PATH", target)
    synced = []
    monkeypatch.setattr(pagecache.os, "sync", lambda: synced.append(True))
    with pytest.raises(PageCacheError, match="--cryobench-drop-caches sysctl needs write access") as info:
        drop([cached_file], "sysctl")
    assert str(target) in str(info.value)
    assert "--cryobench-drop-caches fadvise" in str(info.value)
    with pytest.raises(PageCacheError, match="--cryobench-drop-caches"):
        check_sysctl_permitted()
    assert synced == []  # refused before syncing anything
    if where == "readonly":
        assert target.read_text() == "0\n"


def test_sysctl_write_failure_is_a_page_cache_error(tmp_path, monkeypatch, cached_file):
    directory = tmp_path / "drop_caches"  # exists and is "writable", but is not a file
    directory.mkdir()
    monkeypatch.setattr(pagecache, "DROP_CACHES_PATH", directory)
    monkeypatch.setattr(pagecache.os, "sync", lambda: None)
    with pytest.raises(PageCacheError, match=r"--cryobench-drop-caches sysctl: writing .* failed"):
        drop([cached_file], "sysctl")


def test_sysctl_syncs_then_writes_one(tmp_path, monkeypatch, cached_file):
    knob = tmp_path / "drop_caches"
    knob.write_text("0\n")
    order = []
    monkeypatch.setattr(pagecache, "DROP_CACHES_PATH", knob)
    monkeypatch.setattr(pagecache.os, "sync", lambda: order.append(knob.read_text()))
    check_sysctl_permitted()
    drop([cached_file], "sysctl")
    assert order == ["0\n"]  # synced before the write
    assert knob.read_text() == "1\n"
