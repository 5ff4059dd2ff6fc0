"""The plan of which backend (NumPy, CuPy) and devices a run uses, and the backend of one case.

The GPUs themselves (NVML's list, CUDA's numbering) are :mod:`pytest_cryobench.measure.gpus`;
the probe that checks CuPy's libraries on each device is :mod:`pytest_cryobench.measure.gpu_probe`.

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

from pytest_cryobench.measure.gpu_probe import probe_devices
from pytest_cryobench.measure.gpus import (  # noqa: F401  (GpuInfo, query_gpus, select_gpus: public here too)
    GpuInfo,
    GpuInventory,
    label,
    query_gpus,
    resolve_with_cupy,
    select_gpus,
)


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
        return label(self.device) if self.device is not None else "cpu"

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
        The GPUs for ``cupy`` (``index``: CUDA ordinal); empty for ``numpy``.
    skip_reason : str or None
        Why GPU cases are skipped (no usable GPU, CuPy missing, a CUDA library missing, ...).
    inventory : GpuInventory or None
        The inventory as CuPy numbers it (``cupy`` plans), for the record.
    """

    backend: str | None
    devices: tuple[GpuInfo, ...] = ()
    skip_reason: str | None = None
    inventory: GpuInventory | None = None

    @property
    def labels(self) -> list[str]:
        if self.backend == "cupy":
            return [label(d) for d in self.devices]
        return ["cpu"]


def plan_backend(requested: str, gpus_wanted: Any, inventory: GpuInventory,
                 cupy_probe=import_cupy, device_probe=probe_devices) -> BackendPlan:
    """Decide where compute cases run.

    ``numpy`` always runs on the CPU. ``cupy`` and ``auto`` need an importable CuPy that reaches
    a device; the devices are CuPy's, matched to NVML's by PCI bus id (from CuPy alone where NVML
    is not usable), selected by ``--cryobench-gpus`` in CUDA ordinals, and probed
    (:func:`~pytest_cryobench.measure.gpu_probe.probe_devices`). When any of that fails the GPU
    cases are skipped with the reason and how to run them on the CPU. Where NVML works and lists
    no GPU, CuPy is not imported at all.
    """
    if requested == "numpy":
        return BackendPlan("numpy")
    hint = "; run them on the CPU with --cryobench-backend numpy"
    if not inventory.gpus and inventory.error is None and inventory.note is None:
        return BackendPlan(None, skip_reason=f"no usable GPU: NVML lists none{hint}")
    cupy, reason = cupy_probe()
    if cupy is None:
        if not inventory.gpus and inventory.error is not None:
            reason = f"no usable GPU: {inventory.error}; {reason}"
        return BackendPlan(None, skip_reason=reason + hint)
    resolved = resolve_with_cupy(inventory, cupy)
    devices = select_gpus(resolved, gpus_wanted)
    failure = device_probe(cupy, devices)
    if failure is not None:
        return BackendPlan(None, skip_reason=failure + hint, inventory=resolved)
    return BackendPlan("cupy", devices, inventory=resolved)


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
