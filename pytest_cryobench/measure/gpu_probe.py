"""A probe that uses what the GPU cases use, before any of them runs.

``getDeviceCount`` succeeds with a driver alone; a ``cupy-cuda12x`` wheel installed without its
``[ctk]`` extra (and without a CUDA toolkit) has no cuFFT, NVRTC or cuBLAS, and the cases would
die inside them with a traceback. :func:`probe_devices` runs, on each selected device, a tiny
cuFFT plan, the compile and launch of an elementwise kernel (NVRTC) and a host-device round trip,
and turns the first failure into one sentence naming the library and the install line that
supplies it (``docs/design.md``, the probe).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

# (text in the error, the library's name); the first that matches names the missing piece.
_LIBRARIES = (
    ("cufft", "cuFFT"),
    ("nvrtc", "NVRTC (the runtime compiler)"),
    ("cublas", "cuBLAS"),
    ("curand", "cuRAND"),
    ("cusolver", "cuSOLVER"),
    ("cusparse", "cuSPARSE"),
    ("nvjitlink", "nvJitLink"),
)


def cuda_major(cupy: ModuleType) -> int:
    """Major CUDA version CuPy was built for (12 when it cannot say)."""
    try:
        return int(cupy.cuda.runtime.runtimeGetVersion()) // 1000
    except Exception:
        return 12


def install_line(cupy: ModuleType) -> str:
    """The pip command that installs CuPy with the CUDA libraries it loads."""
    major = cuda_major(cupy)
    return f'pip install "cupy-cuda{major}x[ctk]"'


def name_library(exc: BaseException, step: str) -> str:
    """Which CUDA library an exception from ``step`` points at."""
    text = f"{type(exc).__name__} {exc}".lower()
    for needle, name in _LIBRARIES:
        if needle in text:
            return name
    return {"fft": "cuFFT", "kernel": "NVRTC (the runtime compiler)"}.get(step, "the CUDA runtime")


def _fft(cupy: ModuleType) -> None:
    x = cupy.arange(16, dtype=cupy.float32).reshape(4, 4)
    dc = complex(cupy.asnumpy(cupy.fft.rfftn(x))[0, 0])
    if abs(dc - 120) > 1e-3:  # the sum of 0..15
        raise RuntimeError(f"cuFFT gave {dc} for sum(0..15) = 120")


def _kernel(cupy: ModuleType) -> None:
    kernel = cupy.ElementwiseKernel("float32 x", "float32 y", "y = 2 * x + 1", "cryobench_probe_axpb")
    out = cupy.asnumpy(kernel(cupy.arange(4, dtype=cupy.float32)))
    if [float(v) for v in out] != [1.0, 3.0, 5.0, 7.0]:
        raise RuntimeError(f"elementwise kernel gave {out!r}, not [1, 3, 5, 7]")


def _copy(cupy: ModuleType) -> None:
    import numpy

    host = numpy.arange(1 << 16, dtype=numpy.uint8)
    back = cupy.asnumpy(cupy.asarray(host))
    if not numpy.array_equal(back, host):
        raise RuntimeError("host -> device -> host copy changed the bytes")


STEPS = (("fft", _fft), ("kernel", _kernel), ("copy", _copy))
"""What is probed, in order: a cuFFT plan, an NVRTC-compiled kernel, a host-device round trip."""


def probe_devices(cupy: ModuleType, devices: Sequence[Any]) -> str | None:
    """Run the probe on each device; ``None`` when all pass, else why the GPU cases cannot run.

    Parameters
    ----------
    cupy : module
    devices : sequence of GpuInfo
        The selected devices (``index`` is the CUDA ordinal).
    """
    for device in devices:
        for step, run in STEPS:
            try:
                with cupy.cuda.Device(device.index):
                    run(cupy)
            except Exception as exc:
                library = name_library(exc, step)
                return (f"CuPy cannot use {library} on gpu{device.index} ({device.name}): "
                        f"{type(exc).__name__}: {exc}; install the CUDA libraries with: {install_line(cupy)}")
    return None
