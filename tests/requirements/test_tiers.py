"""Requirement tiers, the machine probes, and the engine's memory plan for the largest box."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pytest_cryobench.engine.passes import largest_box, refinement_device_bytes
from pytest_cryobench.profiles import get_profile
from pytest_cryobench.requirements import probes
from pytest_cryobench.requirements.tiers import (
    BELOW_MINIMUM,
    BELOW_RECOMMENDED,
    PASS,
    REQUIREMENTS,
    Requirement,
    format_value,
    judge,
    live_memory_requirement,
    parse_version,
)


@pytest.mark.parametrize("key, value, tier", [
    ("cpu_cores_per_gpu", 1.5, BELOW_MINIMUM), ("cpu_cores_per_gpu", 2, BELOW_RECOMMENDED),
    ("cpu_cores_per_gpu", 4, PASS),
    ("ram_per_gpu", 31.9, BELOW_MINIMUM), ("ram_per_gpu", 33.5, BELOW_RECOMMENDED), ("ram_per_gpu", 67.1, PASS),
    ("memory_bandwidth", 49.9, BELOW_MINIMUM), ("memory_bandwidth", 80, BELOW_RECOMMENDED),
    ("memory_bandwidth", 120, PASS),
    ("gpu_compute_capability", (3, 0), BELOW_MINIMUM), ("gpu_compute_capability", (6, 1), BELOW_RECOMMENDED),
    ("gpu_compute_capability", (9, 0), PASS),
    ("gpu_memory", 8.0, BELOW_MINIMUM), ("gpu_memory", 11.55, PASS),
    ("kernel", (3, 10, 0), BELOW_MINIMUM), ("kernel", (4, 3), BELOW_RECOMMENDED), ("kernel", (6, 1, 0), PASS),
    ("nvidia_driver", (390, 1), BELOW_MINIMUM), ("nvidia_driver", (450, 80, 2), BELOW_RECOMMENDED),
    ("nvidia_driver", (550, 54, 15), PASS),
    ("non_root", False, BELOW_MINIMUM), ("non_root", True, PASS),
    ("ssd_cache", False, BELOW_RECOMMENDED), ("ssd_cache", True, PASS),
    ("open_files", 256, BELOW_MINIMUM), ("open_files", 1024, BELOW_RECOMMENDED), ("open_files", 1048576, PASS),
    ("live_gpu_lanes", 2, BELOW_MINIMUM), ("live_gpu_lanes", 3, BELOW_RECOMMENDED), ("live_gpu_lanes", 8, PASS),
])
def test_tiers(key, value, tier):
    assert judge(REQUIREMENTS[key], value) == tier


def test_every_requirement_says_where_it_comes_from():
    for requirement in REQUIREMENTS.values():
        assert requirement.source, requirement.key


def test_scaled_per_gpu():
    shm = REQUIREMENTS["dev_shm"].scaled(4)
    assert shm.recommended == pytest.approx(4.8) and shm.minimum == 0
    assert REQUIREMENTS["non_root"].scaled(4).minimum is True  # booleans are not scaled


def test_live_memory_per_camera_and_job():
    assert live_memory_requirement("preprocessing", 8).minimum == 8
    assert live_memory_requirement("preprocessing", None).minimum == 11
    assert live_memory_requirement("streaming_2d_classification", None).minimum == 4
    assert live_memory_requirement("ab_initio", 8).minimum == 8
    assert judge(live_memory_requirement("streaming_3d_refinement", None), 10.7) == BELOW_MINIMUM


def test_versions_and_values():
    assert parse_version("550.54.15") == (550, 54, 15)
    assert parse_version("3.10.0-1160.el7.x86_64") == (3, 10, 0)
    assert parse_version("") is None and parse_version("n/a") is None
    assert format_value((9, 0), "version") == "9.0"
    assert format_value(True, "yes/no") == "yes"
    assert format_value(1234.5, "MB/s") == "1,234 MB/s"
    assert format_value(3.14159, "GB") == "3.14 GB"
    assert Requirement("x", "x", "u", None, None).minimum is None


def test_stream_triad_counts_bytes_as_stream_does(monkeypatch):
    times = iter([1.0, 1.0, 1.0, 1.5, 1.0, 1.25, 1.0, 1.0])  # (start, stop) of one untimed + 3 timed passes
    clock = {"t": 0.0}

    def fake_clock():
        clock["t"] += next(times)
        return clock["t"]

    monkeypatch.setattr(probes.time, "perf_counter", fake_clock)
    result = probes.stream_triad(1 << 16, threads=2, repeats=3)
    # passes took 1.0, 1.0, 1.0 s after the untimed one: 24 bytes x elements per best pass
    assert result.gb_per_s == pytest.approx(24 * (1 << 16) / 1.0 / 1e9)
    assert len(result.seconds) == 3 and result.threads == 2


def test_stream_triad_really_runs():
    result = probes.stream_triad(1 << 20, threads=2, repeats=2)
    assert result.gb_per_s > 0.1
    assert result.elements == 1 << 20


def test_cold_reads_read_every_byte(tmp_path):
    path = probes.write_test_file(tmp_path / "f.bin", (4 << 20) + 12345, seed=1)
    seq = probes.cold_read(path, "fadvise")
    assert seq.bytes == os.path.getsize(path) and seq.mb_per_s > 0 and seq.pattern == "sequential"
    rand = probes.cold_read(path, "fadvise", pattern="random", random_block=256 << 10, seed=3)
    assert rand.bytes == (os.path.getsize(path) // (256 << 10)) * (256 << 10)
    data = np.fromfile(path, dtype=np.uint8)
    assert 100 < data.mean() < 155  # random bytes, not zeros


def test_rotational_reads_the_disk_of_a_partition(tmp_path):
    disk = tmp_path / "devices" / "nvme0n1"
    (disk / "queue").mkdir(parents=True)
    (disk / "queue" / "rotational").write_text("0\n")
    (disk / "nvme0n1p2").mkdir()
    classes = tmp_path / "class"
    classes.mkdir()
    (classes / "nvme0n1p2").symlink_to(disk / "nvme0n1p2")
    (classes / "sda").mkdir()
    (classes / "sda" / "queue").mkdir()
    (classes / "sda" / "queue" / "rotational").write_text("1\n")
    assert probes.rotational("/dev/nvme0n1p2", classes) is False
    assert probes.rotational("/dev/sda", classes) is True
    assert probes.rotational("/dev/sdz", classes) is None
    assert probes.rotational("server:/export", classes) is None


def test_network_filesystem_is_not_a_local_ssd(monkeypatch, tmp_path):
    from pytest_cryobench.measure import fsutil

    monkeypatch.setattr(fsutil, "filesystem_of", lambda p: {"fstype": "nfs4", "device": "srv:/x", "mountpoint": "/x"})
    info = probes.local_ssd(tmp_path)
    assert info["network"] is True and info["local_ssd"] is False


def test_shm_and_limits_and_platform(tmp_path):
    info = probes.shm_info(tmp_path)
    assert info["present"] and info["writable"] and info["size"] > 0
    assert probes.shm_info(tmp_path / "missing")["present"] is False
    soft, hard = probes.open_file_limits()
    assert 0 < soft <= hard
    facts = probes.platform_facts()
    assert facts["root"] == (os.geteuid() == 0)


def test_largest_box_from_the_engine_plan():
    size = get_profile("standard").engine
    box_12 = largest_box(12e9, size)
    assert refinement_device_bytes(box_12, size) <= 0.9 * 12e9 < refinement_device_bytes(box_12 + 2, size)
    # the plan grows as the cube of the box: twice the memory, about 2^(1/3) the box
    assert largest_box(24e9, size) / box_12 == pytest.approx(2 ** (1 / 3), rel=0.03)
    assert largest_box(80e9, size) > largest_box(12e9, size) > 256
