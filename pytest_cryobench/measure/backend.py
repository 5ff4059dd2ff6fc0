"""The GPUs that NVML sees, and the plan of which backend (NumPy, CuPy) and devices a run uses.

CuPy is imported only here, only when a GPU case asks for it: a run of ``-m fs`` or a project
that merely has the plugin installed never imports it. Which namespace an array belongs to, and
the host copies and device synchronisation the kernels use, are
:mod:`pytest_cryobench.kernels.array_api`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it.

    Attributes
    ----------
    index : int
        NVML/CUDA device index.
    name : str
        Marketing name, e.g. ``"NVIDIA H100 80GB HBM3"``.
    bus_id : str
        PCI bus id, e.g. ``"00000000:1B:00.0"``.
    memory_total : int
        Device memory, bytes.
    compute_capability : tuple of int or None
        ``(major, minor)``.
    """

    index: int
    name: str
    bus_id: str
    memory_total: int
    compute_capability: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class GpuInventory:
    """Result of asking NVML: the GPUs, the driver and CUDA versions, or why none are known."""

    gpus: tuple[GpuInfo, ...]
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    error: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def query_gpus(nvml: ModuleType | None = None) -> GpuInventory:
    """List GPUs through NVML (``nvidia-ml-py``); never raises.

    Parameters
    ----------
    nvml : module, optional
        The ``pynvml`` module (injected by tests); imported when omitted.
    """
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
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            try:
                cc = tuple(nvml.nvmlDeviceGetCudaComputeCapability(handle))
            except Exception:
                cc = None
            gpus.append(GpuInfo(
                index=index,
                name=_text(nvml.nvmlDeviceGetName(handle)),
                bus_id=_text(nvml.nvmlDeviceGetPciInfo(handle).busId),
                memory_total=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
                compute_capability=cc,
            ))
        return GpuInventory(tuple(gpus), driver, cuda_text)
    except Exception as exc:
        return GpuInventory((), error=f"NVML query failed ({type(exc).__name__}: {exc})")
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def select_gpus(inventory: GpuInventory, wanted: Any) -> tuple[GpuInfo, ...]:
    """Apply ``--cryobench-gpus`` (``"all"``, a count, or a tuple of indices) to the inventory.

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


def import_cupy() -> tuple[ModuleType | None, str | None]:
    """Import CuPy and check that it can reach a device; ``(None, reason)`` when not."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:
        return None, (f"CuPy is not installed ({type(exc).__name__}: {exc}); "
                      "install it with: pip install 'pytest-cryobench[cupy]'")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy cannot reach a CUDA device ({type(exc).__name__}: {exc})"
    if count == 0:
        return None, "CuPy sees no CUDA device"
    return cupy, None


@dataclasses.dataclass
class Backend:
    """An array namespace bound to one device.

    Attributes
    ----------
    name : {"numpy", "cupy"}
    xp : module
        ``numpy`` or ``cupy``; kernels use only this namespace.
    device : GpuInfo or None
        The GPU, for ``cupy``.
    """

    name: str
    xp: ModuleType
    device: GpuInfo | None = None

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    @property
    def label(self) -> str:
        return f"gpu{self.device.index}" if self.device is not None else "cpu"

    def use(self):
        """Context manager making this backend's device current (a no-op for NumPy)."""
        import contextlib

        if self.is_gpu:
            return self.xp.cuda.Device(self.device.index)
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Wait for all queued device work, so that a clock read after it is honest."""
        if self.is_gpu:
            self.xp.cuda.Device(self.device.index).synchronize()

    def asnumpy(self, array: Any) -> Any:
        return self.xp.asnumpy(array) if self.is_gpu else array

    def free_memory_bytes(self) -> int | None:
        """Free memory of the GPU (bytes, plus what CuPy's pool holds unused); ``None`` for NumPy."""
        if not self.is_gpu:
            return None
        with self.use():
            free, _ = self.xp.cuda.runtime.memGetInfo()
            return int(free) + int(self.xp.get_default_memory_pool().free_bytes())


@dataclasses.dataclass(frozen=True)
class BackendPlan:
    """What the compute cases run on: one entry per selected device, or why they cannot run.

    Attributes
    ----------
    backend : {"numpy", "cupy"} or None
        ``None`` when GPU cases must be skipped.
    devices : tuple of GpuInfo
        The GPUs for ``cupy``; empty for ``numpy``.
    skip_reason : str or None
        Why GPU cases are skipped (no usable GPU, CuPy missing, ...).
    """

    backend: str | None
    devices: tuple[GpuInfo, ...] = ()
    skip_reason: str | None = None

    @property
    def labels(self) -> list[str]:
        if self.backend == "cupy":
            return [f"gpu{d.index}" for d in self.devices]
        return ["cpu"]


def plan_backend(requested: str, gpus_wanted: Any, inventory: GpuInventory,
                 cupy_probe=import_cupy) -> BackendPlan:
    """Decide where compute cases run.

    ``numpy`` always runs on the CPU. ``cupy`` needs NVML GPUs and an importable CuPy; otherwise
    GPU cases are skipped with the reason. ``auto`` is ``cupy`` where that works, else the GPU
    cases are skipped with a reason that says how to run them on the CPU.
    """
    if requested == "numpy":
        return BackendPlan("numpy")
    hint = "; run them on the CPU with --cryobench-backend numpy"
    if not inventory.gpus:
        return BackendPlan(None, skip_reason=f"no usable GPU: {inventory.error or 'NVML lists none'}{hint}")
    devices = select_gpus(inventory, gpus_wanted)
    _, reason = cupy_probe()
    if reason is not None:
        return BackendPlan(None, skip_reason=reason + hint)
    return BackendPlan("cupy", devices)


def make_backend(name: str, device: GpuInfo | None) -> Backend:
    if name == "numpy":
        import numpy

        return Backend("numpy", numpy)
    cupy, reason = import_cupy()
    if cupy is None:
        raise RuntimeError(reason)
    return Backend("cupy", cupy, device)


def versions(names: Sequence[str] = ("numpy", "cupy")) -> dict[str, str | None]:
    """Versions of already-imported array libraries (never imports CuPy just to ask)."""
    import sys

    out: dict[str, str | None] = {}
    for name in names:
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", None) if module else None
    return out
