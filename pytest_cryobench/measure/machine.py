"""Instance information: the guide's fields, plus what a comparison between machines needs."""

from __future__ import annotations

import getpass
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

from pytest_cryobench.measure.backend import GpuInventory, versions
from pytest_cryobench.measure.fsutil import filesystem_of


def _gb(n: float) -> str:
    """The guide's memory format: ``'62.80GB'`` (binary gigabytes, as psutil users print)."""
    return f"{n / 2**30:.2f}GB"


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo``; :func:`platform.processor` elsewhere."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def instance_information(project_dir: Path | None, cache_dir: Path | None,
                         inventory: GpuInventory | None) -> dict[str, Any]:
    """Describe this machine.

    Parameters
    ----------
    project_dir, cache_dir : Path or None
        Directories whose filesystem type and device are recorded.
    inventory : GpuInventory or None
        GPUs from NVML (``None``: not queried).
    """
    import psutil

    mem = psutil.virtual_memory()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    uname = platform.uname()
    info: dict[str, Any] = {
        "platform_node": uname.node,
        "platform_release": uname.release,
        "platform_version": uname.version,
        "platform_architecture": uname.machine,
        "cpu_model": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "total_memory": _gb(mem.total),
        "available_memory": _gb(mem.available),
        "used_memory": _gb(mem.used),
        "ofd_soft_limit": soft if soft != resource.RLIM_INFINITY else -1,
        "ofd_hard_limit": hard if hard != resource.RLIM_INFINITY else -1,
        "logical_cores": psutil.cpu_count(logical=True),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "total_memory_bytes": int(mem.total),
        "python_version": sys.version.split()[0],
        "numpy_version": versions(("numpy",))["numpy"],
        "cupy_version": versions(("cupy",))["cupy"],
        "user_is_root": os.geteuid() == 0 if hasattr(os, "geteuid") else None,
        "user": _user(),
    }
    if inventory is not None:
        info["nvidia_driver_version"] = inventory.driver_version
        info["cuda_driver_version"] = inventory.cuda_driver_version
        info["gpus"] = [
            {"index": g.index, "name": g.name, "bus_id": g.bus_id, "memory_total": g.memory_total,
             "compute_capability": list(g.compute_capability) if g.compute_capability else None}
            for g in inventory.gpus
        ]
        if inventory.error:
            info["gpu_error"] = inventory.error
        if inventory.note:
            info["gpu_note"] = inventory.note
    for label, path in (("project_dir", project_dir), ("cache_dir", cache_dir)):
        if path is None:
            info[f"{label}"] = None
            continue
        fs = filesystem_of(path)
        info[label] = str(path)
        info[f"{label}_fstype"] = fs["fstype"]
        info[f"{label}_device"] = fs["device"]
        info[f"{label}_mountpoint"] = fs["mountpoint"]
    return info


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None
