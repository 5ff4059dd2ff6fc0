"""The link between host and GPU: PCIe generation and width from NVML, copy bandwidth measured
with CUDA events, and the NUMA node a GPU hangs off.

Copies are timed as nvbandwidth times copy-engine transfers: one ``cudaMemcpyAsync`` on a
stream of its own between a device buffer and a host buffer that is pinned
(``cupyx.empty_pinned``: the DMA engine reads it directly) or pageable (a NumPy array: the
driver stages it through a pinned bounce buffer), bracketed by CUDA events, best of a few
repeats (``docs/design.md``, host link).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

DIRECTIONS = ("h2d", "d2h")
SIZES = {"smoke": (1 << 20, 16 << 20), "standard": (1 << 20, 16 << 20, 256 << 20),
         "full": (1 << 20, 16 << 20, 256 << 20, 1 << 30)}
"""Transfer sizes per profile, bytes: 1 MB (latency-bound) to 1 GB (the link's sustained rate)."""


def link_info(bus_id: str, nvml: ModuleType | None = None) -> dict[str, Any]:
    """PCIe generation and width of the GPU at ``bus_id``, current and max, from NVML; never raises.

    Returns
    -------
    dict
        ``pcie_gen_current``, ``pcie_gen_max``, ``pcie_width_current``, ``pcie_width_max``
        (ints), or ``pcie_error`` with why NVML could not say. An idle GPU lowers its current
        link generation to save power; read it while copying for the working value.
    """
    try:
        nvml = nvml or importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception as exc:
        return {"pcie_error": f"NVML is not usable ({type(exc).__name__}: {exc})"}
    try:
        handle = nvml.nvmlDeviceGetHandleByPciBusId(bus_id)
        return {"pcie_gen_current": int(nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle)),
                "pcie_gen_max": int(nvml.nvmlDeviceGetMaxPcieLinkGeneration(handle)),
                "pcie_width_current": int(nvml.nvmlDeviceGetCurrPcieLinkWidth(handle)),
                "pcie_width_max": int(nvml.nvmlDeviceGetMaxPcieLinkWidth(handle))}
    except Exception as exc:
        return {"pcie_error": f"NVML has no PCIe link figures ({type(exc).__name__}: {exc})"}
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def link_verdict(info: dict[str, Any]) -> str | None:
    """A sentence when the link runs below what the card supports (a x8 slot, Gen3), else None."""
    if "pcie_width_max" not in info:
        return None
    problems = []
    if info["pcie_width_current"] < info["pcie_width_max"]:
        problems.append(f"x{info['pcie_width_current']} of x{info['pcie_width_max']} lanes")
    if info["pcie_gen_current"] < info["pcie_gen_max"]:
        problems.append(f"Gen{info['pcie_gen_current']} of Gen{info['pcie_gen_max']} (an idle card may "
                        "lower it; read under load)")
    return "; ".join(problems) or None


def host_buffer(cupy: ModuleType, nbytes: int, pinned: bool) -> Any:
    """A host byte buffer: pinned (``cupyx.empty_pinned``) or pageable (NumPy), touched once."""
    import numpy

    if pinned:
        cupyx = importlib.import_module("cupyx")
        buffer = cupyx.empty_pinned((nbytes,), dtype=numpy.uint8)
    else:
        buffer = numpy.empty(nbytes, dtype=numpy.uint8)
    buffer[::4096] = 1  # fault the pages in before any timing
    return buffer


def copy_seconds(cupy: ModuleType, direction: str, nbytes: int, pinned: bool, repeats: int = 5) -> float:
    """Best time of one ``nbytes`` copy in ``direction`` over ``repeats`` (seconds, CUDA events),
    on the current device."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    host = host_buffer(cupy, nbytes, pinned)
    device = cupy.empty(nbytes, dtype=cupy.uint8)
    stream = cupy.cuda.Stream(non_blocking=True)
    best = float("inf")
    for i in range(repeats + 1):  # the first copy is a warm-up
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record(stream)
        if direction == "h2d":
            device.set(host, stream=stream)
        else:
            device.get(stream=stream, out=host)
        end.record(stream)
        end.synchronize()
        if i:
            best = min(best, cupy.cuda.get_elapsed_time(start, end) / 1e3)
    del device
    return best


def bandwidth_table(cupy: ModuleType, direction: str, sizes: Sequence[int], repeats: int = 5,
                    seconds_of: Callable[..., float] = copy_seconds) -> dict[str, dict[int, float]]:
    """GB/s (1e9 bytes per second) per buffer kind and size: ``{"pinned": {size: GB/s}, "pageable": ...}``."""
    return {kind: {size: size / seconds_of(cupy, direction, size, kind == "pinned", repeats) / 1e9 for size in sizes}
            for kind in ("pinned", "pageable")}


# --- NUMA ---------------------------------------------------------------------------------------

PCI_DEVICES = Path("/sys/bus/pci/devices")
NODES = Path("/sys/devices/system/node")


def parse_cpulist(text: str) -> set[int]:
    """``"0-3,8,10-11"`` -> ``{0, 1, 2, 3, 8, 10, 11}`` (the kernel's cpulist format)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _sysfs_bus_id(bus_id: str) -> str:
    """NVML's ``00000000:1B:00.0`` as sysfs names it: ``0000:1b:00.0``."""
    domain, bus, rest = bus_id.split(":")
    return f"{int(domain, 16):04x}:{bus.lower()}:{rest.lower()}"


def gpu_numa_node(bus_id: str, pci_devices: Path = PCI_DEVICES) -> int | None:
    """The NUMA node of the PCI device (``numa_node`` in sysfs; ``None`` when the kernel does not
    say: -1, a single-node machine, or no such file)."""
    try:
        node = int((pci_devices / _sysfs_bus_id(bus_id) / "numa_node").read_text())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def numa_nodes(nodes: Path = NODES) -> dict[int, set[int]]:
    """The host's NUMA nodes and their CPUs (``{0: {0, .., 31}, 1: {..}}``); ``{}`` without sysfs."""
    out = {}
    try:
        entries = sorted(nodes.glob("node[0-9]*"))
    except OSError:
        return {}
    for entry in entries:
        try:
            out[int(entry.name[4:])] = parse_cpulist((entry / "cpulist").read_text())
        except (OSError, ValueError):
            continue
    return out


def thread_cpus() -> set[int]:
    """The CPUs this process's threads may run on (``sched_getaffinity``)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def topology(bus_ids: Sequence[str], pci_devices: Path = PCI_DEVICES, nodes: Path = NODES) -> dict[str, Any]:
    """Which node each GPU hangs off and whether the benchmark's threads may run there.

    Returns
    -------
    dict
        ``nodes`` ({node: cpu count}), ``thread_cpus`` (count), ``gpus`` (one dict per bus id:
        ``bus_id``, ``numa_node``, ``threads_on_node``: all / some / none of the allowed CPUs are
        on the GPU's node, or ``None`` when the node is unknown).
    """
    host = numa_nodes(nodes)
    allowed = thread_cpus()
    gpus = []
    for bus_id in bus_ids:
        node = gpu_numa_node(bus_id, pci_devices)
        local = host.get(node, set()) if node is not None else set()
        on = None
        if node is not None and local:
            inside = allowed & local
            on = "all" if inside == allowed else ("some" if inside else "none")
        gpus.append({"bus_id": bus_id, "numa_node": node, "threads_on_node": on})
    return {"nodes": {str(k): len(v) for k, v in host.items()}, "thread_cpus": len(allowed), "gpus": gpus}


def on_node_cpus(cpus: set[int], run: Callable[[], float]) -> float:
    """``run()`` with this thread pinned to ``cpus`` (then restored): host buffers it allocates
    and touches land on that node under the default first-touch policy."""
    before = thread_cpus()
    os.sched_setaffinity(0, cpus)
    try:
        return run()
    finally:
        os.sched_setaffinity(0, before)
