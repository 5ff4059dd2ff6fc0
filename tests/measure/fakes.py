"""Stand-ins for ``pynvml`` and ``cupy`` that behave as the real ones do on the calls the plugin
makes, so that device mapping, the probe and the memory watch are tested without a GPU."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np

# name, PCI bus id (NVML form), memory, compute capability, UUID
MACHINE = [
    ("NVIDIA A100-SXM4-40GB", "00000000:1B:00.0", 42_949_672_960, (8, 0), "GPU-aaaa1111-0000"),
    ("NVIDIA H100 80GB HBM3", "00000000:43:00.0", 85_520_809_984, (9, 0), "GPU-bbbb2222-0000"),
    ("NVIDIA A100-SXM4-40GB", "00000000:89:00.0", 42_949_672_960, (8, 0), "GPU-cccc3333-0000"),
    ("NVIDIA H100 80GB HBM3", "00000000:C2:00.0", 85_520_809_984, (9, 0), "GPU-dddd4444-0000"),
]


def fake_nvml(gpus=MACHINE, *, init_error=None, fail_in=None, calls=None):
    """A ``pynvml`` over ``gpus`` (NVML index = list position); ``fail_in`` names a function that
    raises."""
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
        nvmlDeviceGetUUID=fn("nvmlDeviceGetUUID", lambda h: gpus[h[1]][4] if len(gpus[h[1]]) > 4 else None),
        nvmlShutdown=fn("nvmlShutdown", None),
    ), calls


class FakeArray(np.ndarray):
    """A NumPy array with CuPy's ``get``."""

    def get(self):
        return np.asarray(self)


def _dev(a):
    return np.asarray(a).view(FakeArray)


class FakePool:
    """CuPy's memory pool: ``used_bytes`` of the blocks handed out."""

    def __init__(self):
        self.used = 0
        self.hooks = []

    def used_bytes(self):
        return self.used

    def malloc(self, nbytes):
        self.used += nbytes
        for hook in list(self.hooks):
            hook.malloc_postprocess(device_id=0, size=nbytes, mem_size=nbytes, mem_ptr=0, pmem_id=0)

    def free(self, nbytes):
        self.used -= nbytes

    def free_bytes(self):
        return 0


def fake_cupy(devices, *, fails=None, runtime_version=12040, free=(10 << 30, 80 << 30)):
    """A ``cupy`` whose CUDA devices are ``devices`` (``(name, bus id as CUDA gives it, memory,
    (major, minor))`` in CUDA ordinal order). ``fails`` maps a probe step (``"fft"``,
    ``"kernel"``, ``"copy"``) to the exception it raises."""
    fails = fails or {}
    pool = FakePool()
    current = []

    class MemoryHook:
        def __enter__(self):
            pool.hooks.append(self)
            return self

        def __exit__(self, *exc):
            pool.hooks.remove(self)

        def malloc_postprocess(self, **kwargs):
            pass

    class Device:
        def __init__(self, index=None):
            self.index = index
            if index is not None and not 0 <= index < len(devices):
                raise RuntimeError("cudaErrorInvalidDevice")
            self.pci_bus_id = devices[index][1] if index is not None else None

        def __enter__(self):
            current.append(self.index)
            return self

        def __exit__(self, *exc):
            current.pop()

        def synchronize(self):
            pass

    def raising(step, fn):
        def call(*args, **kwargs):
            if step in fails:
                raise fails[step]
            return fn(*args, **kwargs)
        return call

    def properties(i):
        name, _, memory, (major, minor) = devices[i]
        return {"name": name.encode(), "totalGlobalMem": memory, "major": major, "minor": minor}

    def elementwise(in_params, out_params, body, name):
        return raising("kernel", lambda x: _dev(2 * np.asarray(x) + 1))

    runtime = SimpleNamespace(getDeviceCount=lambda: len(devices), getDeviceProperties=properties,
                              runtimeGetVersion=lambda: runtime_version, memGetInfo=lambda: free)
    return SimpleNamespace(
        __name__="cupy",
        cuda=SimpleNamespace(runtime=runtime, Device=Device, MemoryHook=MemoryHook,
                             Stream=lambda non_blocking=False: contextlib.nullcontext()),
        float32=np.float32, uint8=np.uint8,
        arange=lambda *a, **k: _dev(np.arange(*a, **k)),
        asarray=raising("copy", _dev),
        asnumpy=lambda a: np.asarray(a),
        fft=SimpleNamespace(rfftn=raising("fft", lambda x: _dev(np.fft.rfftn(np.asarray(x))))),
        ElementwiseKernel=elementwise,
        get_default_memory_pool=lambda: pool,
        pool=pool, current=current,
    )


def cuda_view(gpus=MACHINE, order=None):
    """``devices`` for :func:`fake_cupy` as CUDA lists ``gpus`` (CUDA's 4-digit domain, lower case),
    in ``order`` (indices into ``gpus``; all in list order when omitted)."""
    order = range(len(gpus)) if order is None else order
    return [(gpus[i][0], gpus[i][1][4:].lower(), gpus[i][2], gpus[i][3]) for i in order]
