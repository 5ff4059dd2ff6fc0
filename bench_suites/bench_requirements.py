"""Requirements: does this worker meet CryoSPARC's minimum and recommended specification, and can
it keep up with the microscope in CryoSPARC Live?

One case per requirement (see :mod:`pytest_cryobench.requirements.tiers` for the tiers and where they
come from). ``below minimum`` fails the case, ``below recommended`` passes with a warning, and a
requirement that needs a GPU on a machine without one is skipped with the reason (``could not
run``); the CPU, memory, storage and system requirements are checked all the same. These cases
run only when asked for: ``pytest --cryobench -m requirements`` or ``cryobench requirements``.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from pytest_cryobench.measure.backend import select_gpus
from pytest_cryobench.requirements import probes
from pytest_cryobench.requirements.tiers import (
    GB,
    LIVE_JOB_MEMORY_GB,
    REQUIREMENTS,
    live_memory_requirement,
    parse_version,
    report,
)

pytestmark = pytest.mark.requirements
SEED = 4242


def _gpus(run):
    """The selected GPUs NVML lists (whatever the array backend)."""
    return select_gpus(run.inventory, run.settings.gpus)


def _need_gpus(run):
    gpus = _gpus(run)
    if not gpus:
        reason = run.inventory.error or "NVML lists no GPU"
        pytest.skip(f"no GPU: {reason}; the CPU, memory, storage and system requirements are still checked")
    return gpus


def _gpu(run, label):
    if label == "gpu":
        _need_gpus(run)
    return next(g for g in _gpus(run) if f"gpu{g.index}" == label)


# --- system ---------------------------------------------------------------------------------

def test_platform(cryobench_case):
    facts = probes.platform_facts()
    ok = facts["system"] == "Linux" and facts["machine"].lower() in ("x86_64", "amd64") and facts["python_bits"] == 64
    report(cryobench_case, REQUIREMENTS["platform"], ok,
           f"{facts['system']} on {facts['machine']}, {facts['python_bits']}-bit Python",
           system=facts["system"], machine=facts["machine"])


def test_kernel(cryobench_case):
    release = probes.platform_facts()["kernel"]
    version = parse_version(release) or (0,)
    report(cryobench_case, REQUIREMENTS["kernel"], version, f"kernel {release}", release=release)


def test_non_root(cryobench_case):
    facts = probes.platform_facts()
    report(cryobench_case, REQUIREMENTS["non_root"], not facts["root"],
           "running as root: run as a regular user that owns the project dirs" if facts["root"]
           else f"uid {facts['uid']}", uid=facts["uid"])


def test_open_files(cryobench_case):
    soft, hard = probes.open_file_limits()
    report(cryobench_case, REQUIREMENTS["open_files"], soft, f"soft {soft}, hard {hard} (ulimit -n)",
           soft=soft, hard=hard)


def test_dev_shm(cryobench_case, cryobench_run):
    info = probes.shm_info()
    scale = max(1, len(_gpus(cryobench_run)))
    requirement = REQUIREMENTS["dev_shm"].scaled(scale)
    if not info["present"] or not info["writable"]:
        value, detail = -1.0, ("/dev/shm does not exist" if not info["present"] else "/dev/shm is not writable")
    else:
        value = info["size"] / GB
        detail = f"{info['fstype']}, {info['free'] / GB:.1f} GB free; room for a movie on each of {scale} GPU(s)"
    report(cryobench_case, requirement, value, detail, **info)


# --- CPU and memory -------------------------------------------------------------------------

def test_cpu_cores_per_gpu(cryobench_case, cryobench_run):
    import psutil

    gpus = _need_gpus(cryobench_run)
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    report(cryobench_case, REQUIREMENTS["cpu_cores_per_gpu"], cores / len(gpus),
           f"{cores} physical cores for {len(gpus)} GPU(s)", cores=cores, gpus=len(gpus))


def test_ram_per_gpu(cryobench_case, cryobench_run):
    import psutil

    gpus = _need_gpus(cryobench_run)
    total = psutil.virtual_memory().total
    report(cryobench_case, REQUIREMENTS["ram_per_gpu"], total / GB / len(gpus),
           f"{total / GB:.1f} GB for {len(gpus)} GPU(s)", total_bytes=total, gpus=len(gpus))


def test_memory_bandwidth(cryobench_case, cryobench_profile):
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    result = probes.stream_triad(cryobench_profile.requirements.triad_elements, threads)
    cryobench_case.metric("gb_per_s", result.gb_per_s, "GB/s", "higher")
    report(cryobench_case, REQUIREMENTS["memory_bandwidth"], result.gb_per_s,
           f"STREAM triad, {threads} thread(s), 3 x {result.elements * 8 / 2**20:.0f} MiB arrays, best of "
           f"{len(result.seconds)}", threads=threads, elements=result.elements, seconds=result.seconds)


# --- storage --------------------------------------------------------------------------------

def test_project_storage_read(cryobench_case, cryobench_run, cryobench_profile, project_work_dir):
    from pytest_cryobench.measure.fsutil import require_free_space

    size = cryobench_profile.requirements.storage_bytes
    require_free_space(cryobench_run.settings.project_dir, size, "project dir")
    path = probes.write_test_file(project_work_dir / "sequential_read.bin", size, SEED)
    try:
        result = probes.cold_read(path, cryobench_run.settings.drop_caches)
    finally:
        path.unlink()
    gpus = max(1, len(_gpus(cryobench_run)))
    base = REQUIREMENTS["project_storage_read"]
    requirement = dataclasses.replace(base, recommended=base.recommended * gpus)
    cryobench_case.metric("mb_per_s", result.mb_per_s, "MB/s", "higher")
    warm = f"; {result.residency:.0%} of the file was still cached: not a cold read" if result.residency > 0.05 else ""
    report(cryobench_case, requirement, result.mb_per_s,
           f"{result.bytes / 2**20:.0f} MiB read cold from {cryobench_run.settings.project_dir} in "
           f"{result.seconds:.2f} s; recommended scaled to {gpus} GPU(s){warm}",
           bytes=result.bytes, seconds=result.seconds, residency=result.residency)


def test_ssd_cache(cryobench_case, cryobench_run, cryobench_profile, request):
    from pytest_cryobench.measure.fsutil import require_free_space

    s = cryobench_run.settings
    requirement = REQUIREMENTS["ssd_cache"]
    if s.cache_dir is None:
        report(cryobench_case, requirement, False, "--cryobench-no-ssd: no particle cache is configured")
        return
    directory = request.getfixturevalue("cache_work_dir")
    where = probes.local_ssd(s.cache_dir)
    size = cryobench_profile.requirements.random_bytes
    require_free_space(s.cache_dir, size, "cache dir")
    path = probes.write_test_file(directory / "random_read.bin", size, SEED + 1)
    try:
        result = probes.cold_read(path, s.drop_caches, pattern="random", seed=SEED)
    finally:
        path.unlink()
    cryobench_case.metric("mb_per_s", result.mb_per_s, "MB/s", "higher")
    if where["network"]:
        why = f"{s.cache_dir} is on a network file system ({where['fstype']})"
    elif where["rotational"] is None:
        why = f"{s.cache_dir} is on {where['device']}, whose kind (SSD or disk) is unknown"
    elif where["rotational"]:
        why = f"{s.cache_dir} is on {where['device']}, which the kernel reports as a spinning disk"
    else:
        why = f"{s.cache_dir} is on the local SSD {where['device']}"
    report(cryobench_case, requirement, bool(where["local_ssd"]),
           f"{why}; random 256 KiB reads at {result.mb_per_s:,.0f} MB/s", random_read_mb_per_s=result.mb_per_s,
           fstype=where["fstype"], device=where["device"], rotational=where["rotational"])


# --- GPUs -----------------------------------------------------------------------------------

def test_gpu_compute_capability(cryobench_case, cryobench_run, cryobench_gpu):
    gpu = _gpu(cryobench_run, cryobench_gpu)
    if gpu.compute_capability is None:
        pytest.skip(f"NVML does not report the compute capability of {gpu.name}")
    report(cryobench_case, REQUIREMENTS["gpu_compute_capability"], tuple(gpu.compute_capability), gpu.name,
           gpu=gpu.name)


def test_gpu_memory(cryobench_case, cryobench_run, cryobench_gpu):
    gpu = _gpu(cryobench_run, cryobench_gpu)
    report(cryobench_case, REQUIREMENTS["gpu_memory"], gpu.memory_total / GB, gpu.name, gpu=gpu.name)


def test_nvidia_driver(cryobench_case, cryobench_run):
    _need_gpus(cryobench_run)
    text = cryobench_run.inventory.driver_version
    report(cryobench_case, REQUIREMENTS["nvidia_driver"], parse_version(text) or (0,), f"driver {text}",
           driver=text)


def test_cuda_version(cryobench_case, cryobench_run):
    from pytest_cryobench.measure.backend import import_cupy

    _need_gpus(cryobench_run)
    text = cryobench_run.inventory.cuda_driver_version
    driver = parse_version(text) or (0,)
    cupy, _ = import_cupy()
    detail = f"the driver supports CUDA {text}"
    value = driver
    if cupy is not None:
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        needed = (runtime // 1000, (runtime % 1000) // 10)
        detail += f"; CuPy is built for CUDA {needed[0]}.{needed[1]}"
        if needed > driver:
            detail += ": the driver is too old for it"
            value = (0,)
    report(cryobench_case, REQUIREMENTS["cuda_version"], value, detail, driver_cuda=text)


def test_largest_box(cryobench_case, cryobench_run, cryobench_profile, cryobench_gpu):
    from pytest_cryobench.engine.passes import largest_box, refinement_device_bytes

    gpu = _gpu(cryobench_run, cryobench_gpu)
    size = cryobench_profile.engine
    planned = largest_box(gpu.memory_total, size)
    confirmed, how = _confirm_by_allocation(gpu, planned, size, refinement_device_bytes)
    report(cryobench_case, REQUIREMENTS["largest_box"], confirmed,
           f"{gpu.name}, {gpu.memory_total / GB:.0f} GB: the engine's plan fits {planned}^3 "
           f"({refinement_device_bytes(planned, size) / GB:.1f} GB); {how}. The guide: a 12 GB GPU handles "
           f"about 700^3 in CryoSPARC; this engine pads its reference twice, so it needs more per voxel",
           planned=planned, gpu=gpu.name)


def _confirm_by_allocation(gpu, planned, size, bytes_of):
    """Allocate the plan's bytes on the GPU, stepping the box down until it fits."""
    from pytest_cryobench.measure.backend import import_cupy

    cupy, _ = import_cupy()
    if cupy is None:
        return planned, "not confirmed on the GPU (CuPy is not installed)"
    box = planned
    with cupy.cuda.Device(gpu.index):
        pool = cupy.get_default_memory_pool()
        while box > 0:
            try:
                block = cupy.empty(bytes_of(box, size), dtype=cupy.uint8)
                block[::1 << 20] = 1  # touch it
                del block
                pool.free_all_blocks()
                return box, f"an allocation of {bytes_of(box, size) / GB:.1f} GB on the GPU succeeded"
            except cupy.cuda.memory.OutOfMemoryError:
                pool.free_all_blocks()
                box -= 16
    return 0, "no allocation fitted on the GPU"


# --- CryoSPARC Live -------------------------------------------------------------------------

def test_live_gpu_lanes(cryobench_case, cryobench_run):
    gpus = _need_gpus(cryobench_run)
    n = len(gpus)
    lanes = ("1 preprocessing, 2 streaming reconstruction, 1 auxiliary" if n >= 4 else
             "1 preprocessing, 2 streaming reconstruction; auxiliary jobs share the reconstruction lane"
             if n == 3 else "lanes must be switched by hand: no streaming 2D/3D while preprocessing")
    report(cryobench_case, REQUIREMENTS["live_gpu_lanes"], n, f"{n} GPU(s): {lanes}", gpus=n)


@pytest.mark.parametrize("job", ["preprocessing", *LIVE_JOB_MEMORY_GB])
@pytest.mark.cryobench_name("live_gpu_memory_{job}")
def test_live_gpu_memory(cryobench_case, cryobench_run, job):
    from pytest_cryobench.requirements.live import camera

    gpus = _need_gpus(cryobench_run)
    chosen = cryobench_run.settings.live_camera
    cam = camera(chosen) if chosen else None
    requirement = live_memory_requirement(job, cam.min_gpu_memory_gb if cam else None)
    smallest = min(gpus, key=lambda g: g.memory_total)
    what = f" for {cam.name} data" if cam and job == "preprocessing" else ""
    report(cryobench_case, requirement, smallest.memory_total / GB,
           f"smallest GPU: {smallest.name}{what}", gpu=smallest.name)


def test_live_throughput(cryobench_case, cryobench_run, cryobench_profile, project_work_dir, benchmark):
    s = cryobench_run.settings
    if s.live_camera is None or s.live_rate is None:
        pytest.skip("give --cryobench-live-camera and --cryobench-live-rate (movies per hour) to check "
                    "whether preprocessing keeps up with the microscope")
    from pytest_cryobench.requirements.live_readiness import measure_throughput

    measure_throughput(cryobench_case, cryobench_run, cryobench_profile, project_work_dir, SEED, benchmark)
