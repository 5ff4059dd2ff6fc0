"""The device probe (cuFFT, NVRTC, copies) and the per-case device memory high-water mark, with a
fake CuPy."""

from __future__ import annotations

import pytest

from pytest_cryobench.measure.backend import Backend, GpuInfo
from pytest_cryobench.measure.gpu_memory import MemoryWatch
from pytest_cryobench.measure.gpu_probe import install_line, name_library, probe_devices
from tests.measure.fakes import cuda_view, fake_cupy

GPU0 = GpuInfo(0, "NVIDIA H100 80GB HBM3", "00000000:43:00.0", 85_520_809_984, (9, 0))
GPU1 = GpuInfo(1, "NVIDIA H200", "00000000:C2:00.0", 150_000_000_000, (9, 0))


def test_a_working_cupy_passes_every_step_on_every_device():
    cupy = fake_cupy(cuda_view())
    assert probe_devices(cupy, [GPU0, GPU1]) is None


def test_missing_cufft_names_the_library_and_the_install_line():
    error = RuntimeError("CuFFT library not found: libcufft.so.11: cannot open shared object file")
    cupy = fake_cupy(cuda_view(), fails={"fft": error})
    reason = probe_devices(cupy, [GPU0])
    assert reason.startswith("CuPy cannot use cuFFT on gpu0 (NVIDIA H100 80GB HBM3)")
    assert "libcufft.so.11" in reason
    assert reason.endswith('install the CUDA libraries with: pip install "cupy-cuda12x[ctk]"')


def test_missing_nvrtc_is_named():
    error = OSError("CUDA path could not be detected. Set CUDA_PATH; libnvrtc.so.12 not found")
    reason = probe_devices(fake_cupy(cuda_view(), fails={"kernel": error}), [GPU0])
    assert "NVRTC" in reason and "cupy-cuda12x[ctk]" in reason


def test_a_copy_failure_on_the_second_device_names_it():
    cupy = fake_cupy(cuda_view(), fails={"copy": RuntimeError("cudaErrorIllegalAddress")})
    reason = probe_devices(cupy, [GPU1])
    assert reason.startswith("CuPy cannot use the CUDA runtime on gpu1 (NVIDIA H200)")


def test_install_line_follows_cupys_cuda():
    assert install_line(fake_cupy([], runtime_version=13000)) == 'pip install "cupy-cuda13x[ctk]"'
    assert name_library(ImportError("libcublas.so.12"), "copy") == "cuBLAS"
    assert name_library(RuntimeError("CUFFT_INTERNAL_ERROR"), "fft") == "cuFFT"
    assert name_library(RuntimeError("something"), "fft") == "cuFFT"


# --------------------------------------------------------------------------- memory high-water mark

def test_the_peak_is_the_high_water_mark_during_the_case_not_what_the_pool_holds():
    cupy = fake_cupy(cuda_view(), free=(70 << 30, 80 << 30))
    pool = cupy.pool
    backend = Backend("cupy", cupy, GPU0)
    pool.malloc(100)  # held before the case
    watch = MemoryWatch(backend).start()
    pool.malloc(1000)
    pool.malloc(5000)  # peak: 100 + 1000 + 5000
    pool.free(5000)
    pool.malloc(2000)
    figures = watch.stop()
    assert figures == {"gpu_memory_peak_bytes": 6100, "gpu_memory_case_peak_bytes": 6000,
                       "gpu_memory_free_before_bytes": 70 << 30, "gpu_memory_free_after_bytes": 70 << 30}
    assert pool.hooks == []  # the hook is removed at the end of the case


def test_each_case_starts_its_own_peak():
    cupy = fake_cupy(cuda_view())
    backend = Backend("cupy", cupy, GPU0)
    with MemoryWatch(backend) as first:
        cupy.pool.malloc(10_000)
        cupy.pool.free(10_000)
    with MemoryWatch(backend) as second:
        cupy.pool.malloc(300)
    assert first.figures()["gpu_memory_peak_bytes"] == 10_000
    assert second.figures()["gpu_memory_peak_bytes"] == 300


def test_memory_held_by_another_thread_at_the_end_counts():
    cupy = fake_cupy(cuda_view())
    backend = Backend("cupy", cupy, GPU0)
    with MemoryWatch(backend) as watch:
        cupy.pool.used += 4096  # an allocation no hook of this thread saw
    assert watch.figures()["gpu_memory_peak_bytes"] == 4096


@pytest.mark.parametrize("backend", [None, Backend("numpy", __import__("numpy"))])
def test_no_figures_on_the_cpu(backend):
    watch = MemoryWatch(backend).start()
    assert watch.stop() == {}
