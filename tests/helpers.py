"""Helpers shared by the plugin's tests: reading result files, and hand-built records and runs.

Fixtures live in ``conftest.py`` files; plain functions live here and are imported by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.record.model import CaseRecord, group_document, write_group


def load_results(out: Path, group: str = "fs") -> dict:
    """The single result JSON of ``group`` in an output dir."""
    files = sorted(out.glob(f"*_{group}_benchmark_data.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def figures_of(doc: dict, test: str) -> dict:
    """The derived figures (headline, rates, measured values) of one case of a result document."""
    from pytest_cryobench.record import derive
    from pytest_cryobench.record.model import CaseRecord

    return derive.figures(CaseRecord.from_json(doc["type"], test, doc["tests"][test]))


def leftover_files(*dirs: Path) -> list[Path]:
    """Files left anywhere below the given directories."""
    return sorted(p for d in dirs if d.exists() for p in d.rglob("*") if p.is_file())


RUN_ID = "cb20240102-030405"


def make_test_info(**overrides: Any) -> dict[str, Any]:
    """A ``test_info`` block with every field the result schema requires."""
    info: dict[str, Any] = {
        "cryobench_version": "0.1.0",
        "created_at": 1_700_000_000.0,
        "finished_at": 1_700_000_100.0,
        "interrupted": False,
        "command": "pytest --cryobench --cryobench-project-dir /home/alice/proj",
        "profile": "smoke",
        "backend": "numpy",
        "data": "synthetic",
        "data_seed": 20231,
        "instance_information": {
            "platform_node": "alice-workstation",
            "platform_release": "6.1.0",
            "cpu_model": "AMD EPYC 7543 32-Core Processor",
            "user": "alice",
            "user_is_root": False,
            "nvidia_driver_version": "550.54.15",
            "gpus": [
                {"index": 0, "name": "NVIDIA H100 80GB HBM3", "bus_id": "00000000:1B:00.0",
                 "memory_total": 85_520_809_984, "compute_capability": [9, 0]},
                {"index": 1, "name": "NVIDIA H100 80GB HBM3", "bus_id": "00000000:43:00.0",
                 "memory_total": 85_520_809_984, "compute_capability": [9, 0]},
            ],
            "project_dir": "/home/alice/proj",
            "project_dir_fstype": "nfs4",
            "project_dir_device": "fileserver.lab:/export/alice",
            "project_dir_mountpoint": "/home/alice",
            "cache_dir": None,
        },
        "job_params": {
            "benchmark_data_dir": "/data/alice/bench",
            "gpu_num_gpus": 0,
            "use_ssd": False,
            "project_dir": "/home/alice/proj",
            "cache_dir": None,
        },
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_bus_id": "00000000:1B:00.0",
    }
    info.update(overrides)
    return info


def fs_records() -> list[CaseRecord]:
    """Two cases that ran (numpy scalars included) and one that could not run."""
    read = CaseRecord(
        group="fs", test="particle_random_read",
        nodeid="bench_suites/bench_fs_particles.py::test_particle_random_read",
        samples={"read_particles": [np.float64(0.5), 0.49, 0.59], "total": [0.51, 0.5, np.float64(0.6)]},
        tags={"read_particles": ["IO"]},
        amounts={"particles": np.int64(2000), "bytes": 40960},
        headline={"name": "particle_random_read_time", "per": None},
        rates=["particles_per_s", "mb_per_s"],
        checks={"passed": True, "bytes_read_passed": True, "bytes_read_expected": np.int64(40960)},
        info={"tolerance": 1.5, "threads": np.int32(8), "source": "/home/alice/proj/cryobench-x"},
        residency=[0.0, 0.001, 0.0],
    )
    cache = CaseRecord(
        group="fs", test="particle_cache", nodeid="bench_suites/bench_fs_particles.py::test_particle_cache",
        samples={"copy_particles": [1.15, 1.25, 1.35], "total": [1.2, 1.3, 1.4]},
        tags={"copy_particles": ["IO"]},
        amounts={"bytes": 130e6},
        headline={"name": "particle_cache_time", "per": None},
        rates=["mb_per_s"],
        checks={"passed": True},
    )
    skipped = CaseRecord(group="fs", test="particle_sequential_read",
                         nodeid="bench_suites/bench_fs_particles.py::test_particle_sequential_read",
                         outcome="skipped", reason="no space")
    return [read, cache, skipped]


def gpu_records() -> list[CaseRecord]:
    return [CaseRecord(
        group="gpu", test="fsc_loose[gpu0]", nodeid="bench_suites/bench_gpu.py::test_fsc[gpu0]",
        samples={"fsc": [0.2], "total": [0.2]}, tags={"fsc": ["GPU"]},
        headline={"name": "fsc_time", "per": None}, checks={"passed": True})]


def _record(group, test, seconds, subs, *, outcome="passed", reason=None, checks=True, tolerance=None,
            rate=None):
    """A case record of three rounds whose headline (median) is ``seconds``, with an IQR of 1% of
    it, and whose sub-timings are ``subs`` (name -> (share of the total, tag)); ``rate``: MB/s
    at the median."""
    if outcome == "skipped":
        return CaseRecord(group, test, f"bench::{test}", outcome="skipped", reason=reason)
    totals = [0.99 * seconds, seconds, 1.01 * seconds]
    samples = {name: [share * t for t in totals] for name, (share, _) in subs.items()}
    samples["total"] = totals
    return CaseRecord(group, test, f"bench::{test}", samples=samples,
                      tags={name: [tag] for name, (_, tag) in subs.items()},
                      headline={"name": f"{test.split('[')[0]}_time", "per": None},
                      amounts={"bytes": rate * 1e6} if rate else {}, rates=["mb_per_s"] if rate else [],
                      checks={"passed": checks}, outcome=outcome, reason=reason,
                      info={"tolerance": tolerance} if tolerance else {})


ENGINE_SUBS = {"setup_scales": (0.2, "PCIe"), "score": (0.5, "GPU"), "read_particles": (0.3, "IO")}


def write_run(_info, directory: Path, run_id: str, factors: dict[str, float] | None = None, *,
              profile="standard",
              backend="numpy", skipped=(), bad_checks=(), created_at=1_763_700_000.0) -> Path:
    """Result files of one run (fs and gpu groups); each test's time is its base time times
    ``factors[test]``. Returns the gpu group's JSON path."""
    factors = factors or {}
    base = {("fs", "particle_random_read"): (0.80, {"read_particles": (1.0, "IO")}),
            ("fs", "particle_cache"): (2.40, {"copy_particles": (1.0, "IO")}),
            ("gpu", "fsc_loose[cpu]"): (0.50, {"mask": (0.6, "CPU"), "fsc": (0.4, "GPU")}),
            ("gpu", "memory_single_linear10_max_C1[cpu]"): (4.00, ENGINE_SUBS),
            ("gpu", "picking[cpu]"): (60.0, {"pick": (0.95, "GPU"), "ctf": (0.05, "GPU")})}
    info = _info(profile=profile, backend=backend, created_at=created_at,
                          command=f"pytest --cryobench --cryobench-profile={profile}")
    path = None
    for group in ("fs", "gpu"):
        records = []
        for (g, test), (seconds, subs) in base.items():
            if g != group:
                continue
            records.append(_record(group, test, seconds * factors.get(test, 1.0), subs,
                                   outcome="skipped" if test in skipped else "passed",
                                   reason="no usable GPU" if test in skipped else None,
                                   checks=test not in bad_checks, tolerance=1.5 if group == "fs" else None,
                                   rate=100.0 if group == "fs" else None))
        path = write_group(directory, group_document(group, records, info, run_id))[0]
    return path


def fill_disk(directory: Path, leave_bytes: int, name: str = "other-job.bin") -> Path:
    """Take the free space of ``directory``'s filesystem, leaving about ``leave_bytes``: another
    job's file, written after the benchmark's own free-space check passed."""
    import os
    import shutil

    filler = directory / name
    free = shutil.disk_usage(directory).free
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, max(free - leave_bytes, 1))
    finally:
        os.close(fd)
    return filler


def snapshot(*dirs: Path) -> dict[Path, bytes]:
    """Every file below ``dirs`` and its bytes, to show afterwards that none changed."""
    return {p: p.read_bytes() for p in leftover_files(*dirs)}


def save_with_cryosparc_tools(path: Path, data: np.ndarray) -> None:
    """Write a structured array's rows through ``cryosparc.dataset.Dataset`` (text fields as text)."""
    from cryosparc.dataset import Dataset

    fields = []
    for name in data.dtype.names:
        if name == "uid":
            continue
        sub = data.dtype[name]
        base, shape = (sub.subdtype if sub.subdtype else (sub, ()))
        fields.append((name, "O" if base.kind == "S" else base.str, shape) if shape else
                      (name, "O" if base.kind == "S" else base.str))
    ds = Dataset.allocate(len(data), fields=fields)
    ds["uid"] = data["uid"]
    for name in data.dtype.names:
        if name == "uid":
            continue
        values = data[name]
        ds[name] = np.char.decode(values, "utf-8").tolist() if values.dtype.kind == "S" else values
    ds.save(str(path))
