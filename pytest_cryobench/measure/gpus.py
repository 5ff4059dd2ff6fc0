"""The GPUs a run can use, numbered as CUDA numbers them for this process.

NVML lists every GPU of the machine in its own (PCI) order and ignores ``CUDA_VISIBLE_DEVICES``;
CUDA numbers only the visible devices, fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
Under SLURM or a CryoSPARC lane (``CUDA_VISIBLE_DEVICES=2,3``) the run's ``gpu0`` is NVML's
GPU 2. This module predicts CUDA's numbering from NVML and the two environment variables
(:func:`query_gpus`), and, once CuPy is imported, replaces the prediction by CuPy's own device
list matched to NVML's by PCI bus id (:func:`resolve_with_cupy`), which is authoritative. Without
NVML the device list comes from CuPy alone, with less information (the inventory's ``note`` says
so). ``docs/design.md`` (device mapping) describes the rules.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """One GPU as this process sees it.

    Attributes
    ----------
    index : int
        The CUDA device ordinal in this process (after ``CUDA_VISIBLE_DEVICES``): what
        ``cupy.cuda.Device(index)`` opens and what the case label ``gpu<index>`` names.
    name : str
        Marketing name, e.g. ``"NVIDIA H100 80GB HBM3"``.
    bus_id : str
        PCI bus id, e.g. ``"00000000:1B:00.0"``.
    memory_total : int
        Device memory, bytes.
    compute_capability : tuple of int or None
        ``(major, minor)``.
    uuid : str or None
        ``GPU-<uuid>`` as NVML reports it.
    nvml_index : int or None
        NVML's index of the device (every GPU of the machine, PCI order); ``None`` when the
        device is known from CuPy only.
    source : {"nvml", "cupy"}
        Where the name, memory and bus id come from.
    """

    index: int
    name: str
    bus_id: str
    memory_total: int
    compute_capability: tuple[int, int] | None = None
    uuid: str | None = None
    nvml_index: int | None = None
    source: str = "nvml"


@dataclasses.dataclass(frozen=True)
class GpuInventory:
    """The GPUs of this process, the driver and CUDA versions, or why none are known.

    Attributes
    ----------
    gpus : tuple of GpuInfo
        The visible GPUs in CUDA ordinal order (``gpus[i].index == i``).
    driver_version, cuda_driver_version : str or None
    error : str or None
        Why NVML gave no list.
    machine_gpus : tuple of GpuInfo
        Every GPU NVML lists, visible or not (``index`` is NVML's), used to match CuPy's devices.
    note : str or None
        How the list was made where that limits it (from CuPy only; order predicted; MIG).
    """

    gpus: tuple[GpuInfo, ...]
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    error: str | None = None
    machine_gpus: tuple[GpuInfo, ...] = ()
    note: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def normalize_bus_id(bus_id: str) -> str:
    """``"DDDDDDDD:BB:DD.F"`` upper case, whatever the domain width (NVML gives 8 hex digits of
    domain, CUDA 4): ``"0000:1b:00.0"`` and ``"00000000:1B:00.0"`` compare equal."""
    text = _text(bus_id).strip()
    domain, _, rest = text.rpartition(":")
    domain, _, bus = domain.rpartition(":") if domain.count(":") else ("0", "", domain)
    return f"{int(domain or '0', 16):08X}:{bus.upper()}:{rest.upper()}"


def _nvml_devices(nvml: ModuleType) -> list[GpuInfo]:
    gpus = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        try:
            cc = tuple(nvml.nvmlDeviceGetCudaComputeCapability(handle))
        except Exception:
            cc = None
        try:
            raw = nvml.nvmlDeviceGetUUID(handle)
            uuid = _text(raw) if raw else None
        except Exception:
            uuid = None
        gpus.append(GpuInfo(index=index, name=_text(nvml.nvmlDeviceGetName(handle)),
                            bus_id=_text(nvml.nvmlDeviceGetPciInfo(handle).busId),
                            memory_total=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                            compute_capability=cc, uuid=uuid, nvml_index=index))
    return gpus


def cuda_order(gpus: Sequence[GpuInfo], device_order: str | None) -> list[GpuInfo]:
    """The machine's GPUs in CUDA's enumeration order.

    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``: by PCI bus id. ``FASTEST_FIRST`` (CUDA's default): by
    compute capability, highest first, ties by bus id. CUDA's fastest-first heuristic is not
    published in full, so on a machine of mixed cards this is a prediction;
    :func:`resolve_with_cupy` replaces it by CUDA's own numbering.
    """
    by_bus = sorted(gpus, key=lambda g: normalize_bus_id(g.bus_id))
    if (device_order or "FASTEST_FIRST").strip().upper() == "PCI_BUS_ID":
        return by_bus
    return sorted(by_bus, key=lambda g: tuple(-v for v in (g.compute_capability or (0, 0))))


def apply_visible(ordered: Sequence[GpuInfo], visible: str | None) -> tuple[list[GpuInfo], str | None]:
    """The GPUs ``CUDA_VISIBLE_DEVICES`` selects from ``ordered`` (CUDA's order), renumbered
    ``0 ..`` in the order listed, and a note on entries that could not be resolved.

    Entries are ordinals into ``ordered``, ``GPU-<uuid>`` (a unique prefix suffices) or
    ``MIG-<uuid>``; as in CUDA, the first entry that names no device ends the list. MIG instances
    are not resolved from NVML's list of whole GPUs: the list ends there, and the note says so
    (CuPy's bus ids resolve them, see :func:`resolve_with_cupy`).
    """
    if visible is None:
        chosen = list(ordered)
        return [dataclasses.replace(g, index=i) for i, g in enumerate(chosen)], None
    chosen: list[GpuInfo] = []
    note = None
    for entry in (e.strip() for e in visible.split(",")):
        found = None
        if entry.upper().startswith("MIG-"):
            note = (f"CUDA_VISIBLE_DEVICES names a MIG instance ({entry}): NVML lists whole GPUs, "
                    "so the devices are known only once CuPy lists them")
        elif entry.upper().startswith("GPU-"):
            matches = [g for g in ordered if g.uuid and g.uuid.upper().startswith(entry.upper())]
            found = matches[0] if len(matches) == 1 else None
        elif entry.lstrip("-").isdigit() and 0 <= int(entry) < len(ordered):
            found = ordered[int(entry)]
        if found is None or found in chosen:
            if note is None and entry:
                note = f"CUDA_VISIBLE_DEVICES={visible!r}: {entry!r} names no GPU; the devices after it are hidden"
            break
        chosen.append(found)
    return [dataclasses.replace(g, index=i) for i, g in enumerate(chosen)], note


def query_gpus(nvml: ModuleType | None = None, environ: Mapping[str, str] | None = None) -> GpuInventory:
    """The GPUs this process sees, from NVML and the CUDA environment variables; never raises.

    Parameters
    ----------
    nvml : module, optional
        The ``pynvml`` module (injected by tests); imported when omitted.
    environ : mapping, optional
        Where ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER`` are read (``os.environ``).
    """
    environ = os.environ if environ is None else environ
    try:
        if nvml is None:
            nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception as exc:  # library missing, no driver, no device: all mean "no GPU here"
        return GpuInventory((), error=f"NVML is not usable ({type(exc).__name__}: {exc})")
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        try:
            cuda = nvml.nvmlSystemGetCudaDriverVersion()
            cuda_text = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        except Exception:
            cuda_text = None
        machine = _nvml_devices(nvml)
    except Exception as exc:
        return GpuInventory((), error=f"NVML query failed ({type(exc).__name__}: {exc})")
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    ordered = cuda_order(machine, environ.get("CUDA_DEVICE_ORDER"))
    visible, note = apply_visible(ordered, environ.get("CUDA_VISIBLE_DEVICES"))
    return GpuInventory(tuple(visible), driver, cuda_text, machine_gpus=tuple(machine), note=note)


def cupy_devices(cupy: ModuleType) -> list[GpuInfo]:
    """CuPy's devices (this process's CUDA ordinals) with the properties CUDA reports."""
    out = []
    for ordinal in range(cupy.cuda.runtime.getDeviceCount()):
        props = cupy.cuda.runtime.getDeviceProperties(ordinal)
        bus_id = _text(cupy.cuda.Device(ordinal).pci_bus_id)
        out.append(GpuInfo(index=ordinal, name=_text(props["name"]), bus_id=bus_id,
                           memory_total=int(props["totalGlobalMem"]),
                           compute_capability=(int(props["major"]), int(props["minor"])), source="cupy"))
    return out


def resolve_with_cupy(inventory: GpuInventory, cupy: ModuleType) -> GpuInventory:
    """The inventory numbered by CUDA itself: each of CuPy's devices matched to the NVML device
    with its PCI bus id (NVML's name, memory, UUID), or kept as CuPy reports it where NVML has
    none (NVML not usable, or a MIG instance, whose memory is its slice's)."""
    cuda = cupy_devices(cupy)
    by_bus = {normalize_bus_id(g.bus_id): g for g in inventory.machine_gpus}
    shared = [normalize_bus_id(d.bus_id) for d in cuda]
    gpus = []
    for device, bus in zip(cuda, shared, strict=True):
        match = by_bus.get(bus)
        if match is None or shared.count(bus) > 1:  # MIG instances share their GPU's bus id
            gpus.append(device)
        else:
            gpus.append(dataclasses.replace(match, index=device.index))
    notes = []
    if not inventory.machine_gpus:
        notes.append(f"device list from CuPy: {inventory.error or 'NVML lists no GPU'} "
                     "(no driver version, UUID, PCIe link or NUMA information from NVML)")
    elif [g.bus_id for g in gpus] != [g.bus_id for g in inventory.gpus]:
        notes.append("CUDA numbers the devices otherwise than predicted from NVML "
                     "(CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER); the cases follow CUDA")
    note = "; ".join(notes) or None
    return dataclasses.replace(inventory, gpus=tuple(gpus), note=note)


def select_gpus(inventory: GpuInventory, wanted: Any) -> tuple[GpuInfo, ...]:
    """Apply ``--cryobench-gpus`` (``"all"``, a count, or a tuple of CUDA ordinals) to the inventory.

    Raises
    ------
    ValueError
        An index that does not exist, or a count larger than the number of GPUs.
    """
    gpus = inventory.gpus
    if wanted == "all" or not gpus:
        return gpus
    if isinstance(wanted, int):
        if wanted > len(gpus):
            raise ValueError(f"--cryobench-gpus {wanted}: only {len(gpus)} GPU(s) present")
        return gpus[:wanted]
    by_index = {gpu.index: gpu for gpu in gpus}
    missing = [i for i in wanted if i not in by_index]
    if missing:
        raise ValueError(f"--cryobench-gpus: no GPU with index {missing}; present: {sorted(by_index)}")
    return tuple(by_index[i] for i in wanted)


def label(gpu: GpuInfo) -> str:
    """The case label of a GPU: ``gpu<CUDA ordinal>``."""
    return f"gpu{gpu.index}"
