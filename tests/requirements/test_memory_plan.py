"""The engine's memory plan against what the code really holds: peaks measured on NumPy with
tracemalloc (NumPy reports its array buffers to it), the plan at or above them and not far above."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from pytest_cryobench.engine import memory_plan as mp
from pytest_cryobench.kernels.projection import Backprojector, fourier_coords, prepare_volume
from pytest_cryobench.profiles import get_profile


def traced_peak(run) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("n", [32, 48])
def test_reconstruct_peak_is_planned(n):
    r_max = n / 2 - 1
    coords = fourier_coords(n, r_max)
    rng = np.random.default_rng(n)
    bp = Backprojector(n, 2, r_max, np)
    values = (rng.standard_normal((4, coords.flat.size)) + 1j * rng.standard_normal((4, coords.flat.size)))
    bp.insert(values.astype(np.complex64), None, np.broadcast_to(np.eye(3), (4, 3, 3)), coords)
    assert bp.size == mp.cube_size(2, r_max)
    accumulators = 3 * 4 * bp.size**3  # held before the call, counted by the plan
    measured = traced_peak(lambda: bp.reconstruct()) + accumulators
    planned = mp.reconstruct_peak_bytes(n, 2, r_max, gpu=False)
    assert measured <= planned <= 1.25 * measured, (measured, planned)


@pytest.mark.parametrize("n", [32, 48])
def test_prepare_peak_is_planned(n):
    volume = np.random.default_rng(1).standard_normal((n, n, n)).astype(np.float32)
    holder = []
    measured = traced_peak(lambda: holder.append(prepare_volume(volume, pad=2, interpolation="linear")))
    planned = mp.prepare_peak_bytes(n, 2, gpu=False) + 4 * n**3  # the float32 copy of the input
    assert measured <= planned <= 1.35 * measured, (measured, planned)


def test_the_plan_counts_the_reconstruction_at_the_readmes_box():
    """At 354^3 the reconstruction alone holds about 16 GB: no 12 GB GPU can be promised that box."""
    size = get_profile("standard").engine
    assert mp.reconstruct_peak_bytes(354) == pytest.approx(16e9, rel=0.05)
    assert mp.refinement_device_bytes(354, size) > 12e9
    box = mp.largest_box(12e9, size)
    assert 256 < box < 354
    assert mp.refinement_device_bytes(box, size) <= 0.9 * 12e9
