"""What a refinement pass of the engine holds in device memory, phase by phase, and the largest box
that fits a GPU.

The counts follow the arrays the code really allocates (``docs/design.md``, memory plan):

* preparing the reference (:func:`~pytest_cryobench.kernels.projection.prepare_volume`): the
  padded, shifted float32 volume and its complex64 transform with the FFT's temporaries, then the
  transform and its shifted copy, ``N = pad n`` (:data:`FFT_EXTRA_BYTES`);
* searching: the projection bank (``12`` bytes per rotation and search coefficient), the three
  float32 accumulators over the ``size^3`` insertion cube (``12 size^3``), and the batch;
* reconstructing (:meth:`~pytest_cryobench.kernels.projection.Backprojector.reconstruct`): the
  accumulators plus the Hermitian-completed data (complex64) and weight (float32), the mask of
  filled cells, the denominator, the quotient and the ratio, ``45 size^3`` bytes at the peak; then
  the accumulators with the padded cube, its shifted copy and the inverse transform with its
  temporaries, ``12 size^3 + 32 N^3``.

A test measures these peaks on NumPy with ``tracemalloc``; the requirement ``largest_box``
confirms the box by a short pass on the GPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pytest_cryobench.kernels import pose_search as ek

PAD = 2


def cube_size(pad: int, r_max: float) -> int:
    """Edge of the back-projector's insertion cube (``Backprojector.size``)."""
    return 2 * (int(math.ceil(pad * r_max)) + 2) + 1


BOOKKEEPING_BYTES = 1 << 20
"""Allowance for the small arrays and library bookkeeping around the large ones."""
FFT_EXTRA_BYTES = {"cupy": (16, 8), "numpy": (40, 8)}
"""Bytes per padded voxel a 3-D FFT allocates besides its output: ``(forward of a float32 volume,
inverse of a complex64 one)``. CuPy converts the real input to complex64 and cuFFT may take a work
area the size of the data; NumPy's pocketfft transforms axis by axis into new arrays."""


def prepare_peak_bytes(n: int, pad: int = PAD, gpu: bool = True) -> int:
    """Peak bytes of ``prepare_volume`` at box ``n`` (the input volume and its float32 copy aside):
    the shifted padded volume (4) while the transform (8 + the FFT's extra) is made, then the
    transform and its shifted copy (8 + 8), per padded voxel."""
    big = (pad * n) ** 3
    forward, _ = FFT_EXTRA_BYTES["cupy" if gpu else "numpy"]
    return max(4 + 8 + forward, 16) * big


def reconstruct_peak_bytes(n: int, pad: int = PAD, r_max: float | None = None, gpu: bool = True) -> int:
    """Peak bytes of ``Backprojector.reconstruct`` (complex64 accumulation), accumulators included."""
    r_max = n / 2 - 1 if r_max is None else r_max
    cells = cube_size(pad, r_max) ** 3
    big = (pad * n) ** 3
    _, inverse = FFT_EXTRA_BYTES["cupy" if gpu else "numpy"]
    completion = 45 * cells  # 12 accumulators + 8 data + 4 weight + 1 mask + 4 denominator + 8 quotient + 8 ratio
    transform = 12 * cells + (8 + 8 + 8 + inverse) * big  # padded cube, shifted copy, transform
    return max(completion, transform) + BOOKKEEPING_BYTES


def fixed_device_bytes(n: int, rotations: int, k: int, r_reconstruct: int) -> int:
    """Device bytes a pass holds besides its batch, as the batch planner counts them: the padded
    reference and its transform (two complex64 volumes of ``(2n)^3``), the projections (``12``
    bytes per rotation and search coefficient) and the accumulators (``12 size^3``)."""
    side = PAD * n
    return 8 * side**3 * 2 + 12 * rotations * k + 12 * cube_size(PAD, r_reconstruct) ** 3


def _coefficients(n: int, radius: int) -> int:
    """Number of half-plane Fourier coefficients within ``radius`` of an ``n``-pixel image, as
    ``fourier_coords`` selects them, counted without building them."""
    ky = np.fft.fftfreq(n, 1.0 / n)
    kx = np.arange(n // 2 + 1)
    inside = (ky[:, None] ** 2 + kx[None, :] ** 2) <= radius**2
    return int(np.count_nonzero(inside))


def refinement_device_bytes(n: int, size: Any, batch: int = 32) -> int:
    """Peak device bytes of a refinement pass at box ``n``: searching to a quarter of the box
    (half Nyquist) over the profile's rotation grid, reconstructing to Nyquist, with a batch of
    ``batch`` particles (C1, pose maximisation); the largest of its three phases."""
    from pytest_cryobench.kernels.rotations import rotation_grid

    rotations = len(rotation_grid(size.directions, size.psi_step_deg).matrices)
    t = len(ek.shift_grid(size.shift_extent_px).shifts)
    r_search, r_reconstruct = max(2, n // 4), n // 2 - 1
    k = _coefficients(n, r_search)
    k_insert = _coefficients(n, r_reconstruct)
    bank = 12 * rotations * k
    accumulators = 12 * cube_size(PAD, r_reconstruct) ** 3
    prepare = prepare_peak_bytes(n) + 4 * n**3
    search = bank + accumulators + batch * ek.batch_bytes_per_particle(n, k_insert, t, rotations, 1)
    reconstruct = bank + reconstruct_peak_bytes(n, PAD, r_reconstruct)
    return max(prepare, search, reconstruct)


def largest_box(memory_bytes: float, size: Any, *, usable: float = 0.9, step: int = 2) -> int:
    """The largest box (a multiple of ``step``) whose refinement pass fits ``usable`` of
    ``memory_bytes`` (the rest is left to the CUDA context and fragmentation)."""
    budget = usable * memory_bytes
    lo, hi = 0, 4096 // step
    while lo < hi:  # binary search on the box / step
        mid = (lo + hi + 1) // 2
        if refinement_device_bytes(mid * step, size) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo * step


def short_pass(n: int, size: Any, xp: Any, particles: int = 32, seed: int = 0) -> None:
    """One engine pass at box ``n`` on ``xp`` with the profile's search grid, ``particles`` noise
    images and the radii of :func:`refinement_device_bytes`: what ``largest_box`` must fit."""
    import dataclasses

    from pytest_cryobench.engine.passes import EngineCase, make_config, run_pass

    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((n, n, n), dtype=np.float32)
    images = rng.standard_normal((particles, n, n), dtype=np.float32)
    ctf = ek.CtfParams(np.full(particles, 15000.0), np.full(particles, 15000.0), np.zeros(particles))
    case = EngineCase.parse("memory_single_linear10_max_C1")
    config = make_config(size, n, 1.0, xp, case)
    config = dataclasses.replace(config, r_search=max(2, n // 4), r_reconstruct=n // 2 - 1, batch=particles)
    run_pass(reference, ctf, lambda lo, hi: images[lo:hi], particles, case, config, xp)
