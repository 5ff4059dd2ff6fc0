"""GPU inventory through a fake NVML, GPU selection, backend planning and the NumPy backend."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from pytest_cryobench.kernels.array_api import array_namespace as namespace_of
from pytest_cryobench.measure.backend import (
    Backend,
    BackendPlan,
    GpuInfo,
    GpuInventory,
    import_cupy,
    make_backend,
    plan_backend,
    query_gpus,
    select_gpus,
    versions,
)

GPUS = [
    # name, bus id, memory, compute capability
    (b"NVIDIA H100 80GB HBM3", b"00000000:1B:00.0", 85_520_809_984, (9, 0)),
    ("NVIDIA A100-SXM4-40GB", "00000000:43:00.0", 42_949_672_960, (8, 0)),
]


def fake_nvml(gpus=GPUS, *, init_error=None, fail_in=None, calls=None):
    """A stand-in for the ``pynvml`` module; ``fail_in`` names a function that raises."""
    calls = calls if calls is not None else []

    def fn(name, result):
        def call(*args):
            calls.append(name)
            if name == fail_in:
                raise RuntimeError(f"{name} exploded")
            return result(*args) if callable(result) else result
        return call

    def init():
        calls.append("nvmlInit")
        if init_error is not None:
            raise init_error

    return SimpleNamespace(
        nvmlInit=init,
        nvmlSystemGetDriverVersion=fn("nvmlSystemGetDriverVersion", b"550.54.15"),
        nvmlSystemGetCudaDriverVersion=fn("nvmlSystemGetCudaDriverVersion", 12040),
        nvmlDeviceGetCount=fn("nvmlDeviceGetCount", len(gpus)),
        nvmlDeviceGetHandleByIndex=fn("nvmlDeviceGetHandleByIndex", lambda i: ("handle", i)),
        nvmlDeviceGetName=fn("nvmlDeviceGetName", lambda h: gpus[h[1]][0]),
        nvmlDeviceGetPciInfo=fn("nvmlDeviceGetPciInfo", lambda h: SimpleNamespace(busId=gpus[h[1]][1])),
        nvmlDeviceGetMemoryInfo=fn("nvmlDeviceGetMemoryInfo",
                                   lambda h: SimpleNamespace(total=gpus[h[1]][2], free=1, used=0)),
        nvmlDeviceGetCudaComputeCapability=fn("nvmlDeviceGetCudaComputeCapability",
                                              lambda h: list(gpus[h[1]][3])),
        nvmlShutdown=fn("nvmlShutdown", None),
    ), calls


def inventory(n=2):
    return GpuInventory(tuple(GpuInfo(i, f"GPU {i}", f"0000:{i:02d}:00.0", 1 << 30) for i in range(n)),
                        "550", "12.4")


# --------------------------------------------------------------------------- query_gpus

def test_query_gpus_with_fake_nvml():
    nvml, calls = fake_nvml()
    inv = query_gpus(nvml)
    assert inv.error is None
    assert inv.driver_version == "550.54.15"
    assert inv.cuda_driver_version == "12.4"
    assert inv.gpus == (
        GpuInfo(0, "NVIDIA H100 80GB HBM3", "00000000:1B:00.0", 85_520_809_984, (9, 0)),
        GpuInfo(1, "NVIDIA A100-SXM4-40GB", "00000000:43:00.0", 42_949_672_960, (8, 0)),
    )
    assert calls[0] == "nvmlInit" and calls[-1] == "nvmlShutdown"
    assert calls.count("nvmlShutdown") == 1


def test_query_gpus_init_failure_gives_an_empty_inventory():
    nvml, calls = fake_nvml(init_error=OSError("NVML Shared Library Not Found"))
    inv = query_gpus(nvml)
    assert inv.gpus == ()
    assert inv.error == "NVML is not usable (OSError: NVML Shared Library Not Found)"
    assert "nvmlShutdown" not in calls


def test_query_gpus_failure_during_query_still_shuts_down():
    nvml, calls = fake_nvml(fail_in="nvmlDeviceGetName")
    inv = query_gpus(nvml)
    assert inv.gpus == ()
    assert "NVML query failed (RuntimeError: nvmlDeviceGetName exploded)" == inv.error
    assert calls[-1] == "nvmlShutdown"


def test_query_gpus_optional_fields_may_fail():
    nvml, _ = fake_nvml(fail_in="nvmlSystemGetCudaDriverVersion")
    inv = query_gpus(nvml)
    assert inv.cuda_driver_version is None and len(inv.gpus) == 2
    nvml, _ = fake_nvml(fail_in="nvmlDeviceGetCudaComputeCapability")
    inv = query_gpus(nvml)
    assert [g.compute_capability for g in inv.gpus] == [None, None]
    assert inv.error is None


def test_query_gpus_shutdown_failure_is_ignored():
    nvml, _ = fake_nvml(fail_in="nvmlShutdown")
    assert len(query_gpus(nvml).gpus) == 2


def test_query_gpus_zero_devices():
    nvml, _ = fake_nvml(gpus=[])
    inv = query_gpus(nvml)
    assert inv.gpus == () and inv.error is None and inv.driver_version == "550.54.15"


def test_query_gpus_missing_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    inv = query_gpus()
    assert inv.gpus == ()
    assert inv.error.startswith("NVML is not usable (ModuleNotFoundError")


def test_query_gpus_on_this_machine_does_not_raise():
    inv = query_gpus()
    assert isinstance(inv, GpuInventory)
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    assert inv.gpus == ()
    assert inv.error and inv.error.startswith("NVML is not usable")


# --------------------------------------------------------------------------- select_gpus

def test_select_all():
    inv = inventory(3)
    assert select_gpus(inv, "all") == inv.gpus


def test_select_count():
    inv = inventory(3)
    assert select_gpus(inv, 2) == inv.gpus[:2]
    assert select_gpus(inv, 3) == inv.gpus


def test_select_indices_in_the_order_given():
    inv = inventory(3)
    assert [g.index for g in select_gpus(inv, (2, 0))] == [2, 0]
    assert [g.index for g in select_gpus(inv, (1,))] == [1]


def test_select_bad_index():
    with pytest.raises(ValueError, match=r"--cryobench-gpus: no GPU with index \[5\]; present: \[0, 1\]"):
        select_gpus(inventory(2), (0, 5))


def test_select_count_too_large():
    with pytest.raises(ValueError, match=r"--cryobench-gpus 3: only 2 GPU\(s\) present"):
        select_gpus(inventory(2), 3)


def test_select_without_gpus_is_empty():
    assert select_gpus(GpuInventory(()), 4) == ()
    assert select_gpus(GpuInventory(()), (1,)) == ()


# --------------------------------------------------------------------------- plan_backend

def never_probe():
    raise AssertionError("CuPy must not be probed")


def test_numpy_is_always_numpy():
    for inv in (GpuInventory(()), inventory(2)):
        plan = plan_backend("numpy", "all", inv, cupy_probe=never_probe)
        assert plan == BackendPlan("numpy")
        assert plan.labels == ["cpu"] and plan.skip_reason is None


@pytest.mark.parametrize("requested", ["auto", "cupy"])
def test_no_gpus_skips_with_a_hint(requested):
    plan = plan_backend(requested, "all", GpuInventory((), error="NVML is not usable (x)"),
                        cupy_probe=never_probe)
    assert plan.backend is None and plan.devices == ()
    assert "no usable GPU: NVML is not usable (x)" in plan.skip_reason
    assert "--cryobench-backend numpy" in plan.skip_reason
    assert plan.labels == ["cpu"]


def test_no_gpus_without_error_text():
    plan = plan_backend("auto", "all", GpuInventory(()), cupy_probe=never_probe)
    assert "NVML lists none" in plan.skip_reason


def test_gpus_but_no_cupy_skips_with_the_probe_reason():
    nvml, _ = fake_nvml()
    plan = plan_backend("auto", "all", query_gpus(nvml), cupy_probe=lambda: (None, "CuPy is not installed"))
    assert plan.backend is None
    assert plan.skip_reason.startswith("CuPy is not installed")
    assert "--cryobench-backend numpy" in plan.skip_reason


@pytest.mark.parametrize("wanted, indices", [("all", [0, 1]), (1, [0]), ((1,), [1])])
def test_gpus_and_cupy_plan_cupy_on_the_selected_devices(wanted, indices):
    nvml, _ = fake_nvml()
    inv = query_gpus(nvml)
    plan = plan_backend("auto", wanted, inv, cupy_probe=lambda: (object(), None))
    assert plan.backend == "cupy"
    assert plan.skip_reason is None
    assert [d.index for d in plan.devices] == indices
    assert plan.labels == [f"gpu{i}" for i in indices]


def test_plan_with_a_bad_selection_raises():
    with pytest.raises(ValueError, match="only 2 GPU"):
        plan_backend("cupy", 5, inventory(2), cupy_probe=lambda: (object(), None))


# --------------------------------------------------------------------------- CuPy probing

def test_import_cupy_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    module, reason = import_cupy()
    assert module is None
    assert reason.startswith("CuPy is not installed")
    assert "pip install 'pytest-cryobench[cupy]'" in reason


def _fake_cupy(get_count):
    return SimpleNamespace(cuda=SimpleNamespace(runtime=SimpleNamespace(getDeviceCount=get_count)))


def test_import_cupy_without_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    assert import_cupy() == (None, "CuPy sees no CUDA device")


def test_import_cupy_driver_error(monkeypatch):
    def fail():
        raise RuntimeError("cudaErrorInsufficientDriver")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(fail))
    module, reason = import_cupy()
    assert module is None
    assert reason == "CuPy cannot reach a CUDA device (RuntimeError: cudaErrorInsufficientDriver)"


def test_import_cupy_with_a_device(monkeypatch):
    fake = _fake_cupy(lambda: 2)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert import_cupy() == (fake, None)


def test_make_backend_cupy_without_cupy_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        make_backend("cupy", GpuInfo(0, "x", "y", 1))


# --------------------------------------------------------------------------- the NumPy backend

def test_make_backend_numpy():
    backend = make_backend("numpy", None)
    assert backend.xp is np
    assert backend.name == "numpy"
    assert not backend.is_gpu
    assert backend.label == "cpu"
    assert backend.synchronize() is None
    array = np.arange(3)
    assert backend.asnumpy(array) is array
    with backend.use() as entered:
        assert entered is None
    assert isinstance(backend.use(), contextlib.nullcontext)


def test_gpu_backend_label_and_sync_use_the_device():
    synced = []

    class Device:
        def __init__(self, index):
            self.index = index

        def synchronize(self):
            synced.append(self.index)

    fake_cupy = SimpleNamespace(cuda=SimpleNamespace(Device=Device), asnumpy=lambda a: ("host", a))
    backend = Backend("cupy", fake_cupy, GpuInfo(3, "x", "y", 1))
    assert backend.is_gpu and backend.label == "gpu3"
    backend.synchronize()
    assert synced == [3]
    assert backend.use().index == 3
    assert backend.asnumpy("dev") == ("host", "dev")


def test_namespace_of_numpy_arrays():
    assert namespace_of(np.zeros(2)) is np
    assert namespace_of(np.float32(1)) is np


def test_versions_report_only_imported_modules():
    out = versions(("numpy", "cryobench_surely_not_imported"))
    assert out == {"numpy": np.__version__, "cryobench_surely_not_imported": None}
    if importlib.util.find_spec("cupy") is None:
        assert versions()["cupy"] is None
