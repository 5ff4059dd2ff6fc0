"""One pass of the engine over a particle set: the 14 cases' shared procedure.

A case name says where the particles come from (``disk``: read batch by batch from the stacks;
``memory``: preloaded), how reading and computing interleave (``single``: one thread reads then
computes, batch after batch; ``multi``: a second thread reads and uploads batch ``i + 1`` while
batch ``i`` is computed), the projection interpolation (``linear10``: trilinear, ``linear20``:
tricubic), the pose assignment (``max`` or ``marg``) and the symmetry (``C1`` or ``D7``).

Sub-timings of a ``single`` pass (summed over batches, tags in brackets): ``setup_scales`` [GPU]
(search coefficients, shift phases, the padded, gridding-corrected reference transform, and the
noise model from the first batch), ``project`` [GPU] (central slices at every grid rotation),
``read_particles`` [IO], ``upload`` [PCIe], ``fft`` [GPU], ``ctf`` [GPU], ``score`` [GPU]
(likelihood GEMMs and the max / marg assignment), ``backproject`` [GPU], ``reconstruct`` [GPU].
A ``multi`` pass records only its overall time, as CryoSPARC's guide does, plus the intervals in
which each batch was read and computed (the evidence that reading overlapped computing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_cryobench.engine.memory_plan import (  # noqa: F401  (the memory plan, public here too)
    PAD,
    fixed_device_bytes,
    largest_box,
    refinement_device_bytes,
)
from pytest_cryobench.engine.streams import EventSpans, Uploader, synchronize_current
from pytest_cryobench.kernels import pose_search as ek
from pytest_cryobench.kernels.array_api import is_cupy, to_host
from pytest_cryobench.kernels.projection import Backprojector, extract_slices, fourier_coords, prepare_volume
from pytest_cryobench.kernels.rotations import RotationGrid, symmetry_group

LOCATIONS = ("disk", "memory")
THREADS = ("single", "multi")
INTERPOLATIONS = {"linear10": "linear", "linear20": "cubic"}
ASSIGNMENTS = ("max", "marg")
ENGINE_CASES = (
    "disk_single_linear10_max_C1", "disk_single_linear20_max_C1", "disk_multi_linear10_max_C1",
    "disk_multi_linear20_max_C1", "memory_single_linear10_max_C1", "memory_single_linear10_marg_C1",
    "memory_single_linear10_max_D7", "memory_single_linear20_max_C1", "memory_single_linear20_marg_C1",
    "memory_multi_linear10_max_C1", "memory_multi_linear10_marg_C1", "memory_multi_linear10_max_D7",
    "memory_multi_linear20_max_C1", "memory_multi_linear20_marg_C1",
)
"""CryoSPARC's 14 engine cases, in its order."""
REGULARISER = 1e-3


@dataclasses.dataclass(frozen=True)
class EngineCase:
    """A case name taken apart: ``<location>_<threads>_<interpolation>_<assignment>_<symmetry>``."""

    location: str
    threads: str
    interpolation: str
    assignment: str
    symmetry: str

    @classmethod
    def parse(cls, name: str) -> EngineCase:
        parts = name.split("_")
        if len(parts) != 5:
            raise ValueError(f"not an engine case name: {name!r}")
        case = cls(*parts)
        if (case.location not in LOCATIONS or case.threads not in THREADS or case.interpolation not in INTERPOLATIONS
                or case.assignment not in ASSIGNMENTS):
            raise ValueError(f"not an engine case name: {name!r}")
        symmetry_group(case.symmetry)  # raises for an unknown group
        return case

    @property
    def name(self) -> str:
        return "_".join((self.location, self.threads, self.interpolation, self.assignment, self.symmetry))


@dataclasses.dataclass(frozen=True)
class PassConfig:
    """The search and reconstruction settings of a pass.

    Attributes
    ----------
    grid : RotationGrid
        The rotations searched.
    shifts : ShiftGrid
        The shifts searched.
    r_search, r_reconstruct : float
        Fourier radius (pixels) of the coefficients scored and of those inserted.
    batch : int
        Particles per batch.
    apix : float
        Pixel size, Å.
    """

    grid: RotationGrid
    shifts: ek.ShiftGrid
    r_search: float
    r_reconstruct: float
    batch: int
    apix: float


@dataclasses.dataclass
class PassResult:
    """What a pass found, on the host.

    Attributes
    ----------
    rotation, shift : int64 arrays, shape (P,)
        Best grid indices per particle (``max``: the assignment; ``marg``: the posterior's peak).
    marg_total, marg_kept_mass : float64 arrays, shape (P,) or None
        ``marg`` only: full posterior sum and kept mass per particle.
    marg_kept : int64 array, shape (P,) or None
        ``marg`` only: poses kept per particle.
    volume : float32 array, shape (n, n, n)
        The reconstruction.
    insertions : int
        Central slices inserted (symmetry copies included).
    batches : int
    intervals : list of (str, int, float, float)
        ``(kind, batch, start, end)`` with kind ``read`` or ``compute`` (``perf_counter`` seconds).
    """

    rotation: np.ndarray
    shift: np.ndarray
    marg_total: np.ndarray | None
    marg_kept_mass: np.ndarray | None
    marg_kept: np.ndarray | None
    volume: np.ndarray
    insertions: int
    batches: int
    intervals: list[tuple[str, int, float, float]]


class _NoSpans:
    """Stands in for SubTimings where a pass records no per-stage spans (``multi``)."""

    @contextlib.contextmanager
    def span(self, name: str, *tags: str):
        yield


class _Setup:
    """Per-pass constants on the device (``setup_scales``)."""

    def __init__(self, reference: np.ndarray, case: EngineCase, config: PassConfig, xp: Any) -> None:
        n = reference.shape[0]
        self.xp = xp
        self.n = n
        self.search = fourier_coords(n, config.r_search)
        self.insert = fourier_coords(n, config.r_reconstruct)
        # both sets are in ascending flat order: where each search coefficient sits among the inserted ones
        sub = np.minimum(np.searchsorted(self.insert.flat, self.search.flat), self.insert.flat.size - 1)
        if not np.array_equal(self.insert.flat[sub], self.search.flat):
            raise ValueError("the search coefficients must lie within the reconstruction's")
        self.sub = xp.asarray(sub)
        self.phases = ek.shift_phases(self.search, config.shifts.shifts, n, xp)
        self.prepared = prepare_volume(xp.asarray(reference), pad=PAD, interpolation=INTERPOLATIONS[case.interpolation])
        self.rotations = xp.asarray(config.grid.matrices, dtype=xp.float32)
        self.group = xp.asarray(symmetry_group(case.symmetry), dtype=xp.float32)
        self.shifts = xp.asarray(config.shifts.shifts)
        self.weights = None  # the noise model, from the first batch


def run_pass(reference: np.ndarray, ctf: ek.CtfParams, read_batch: Callable[[int, int], np.ndarray],
             n_particles: int, case: EngineCase, config: PassConfig, xp: Any, st: Any = None,
             device_context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
             ) -> PassResult:
    """Search every particle's pose, insert, reconstruct: one timed round of an engine case.

    Parameters
    ----------
    reference : float32 array, shape (n, n, n)
        The search reference (host).
    ctf : CtfParams
        Per-particle CTF (host), length ``n_particles``.
    read_batch : callable
        ``read_batch(lo, hi)`` returns particles ``lo .. hi - 1``, float32 (hi - lo, n, n), host.
    n_particles : int
    case : EngineCase
    config : PassConfig
    xp : module
        ``numpy`` or ``cupy``.
    st : SubTimings, optional
        Where ``single`` passes record their spans.
    device_context : callable
        Makes the case's device current in the reader thread (``multi``).

    Returns
    -------
    PassResult
    """
    spans = EventSpans(st, xp) if (st is not None and case.threads == "single") else _NoSpans()
    with spans.span("setup_scales", "GPU"):
        setup = _Setup(reference, case, config, xp)
    with spans.span("project", "GPU"):
        bank = ek.projection_bank(extract_slices(setup.prepared, config.grid.matrices, setup.search))
        del setup.prepared
    n = setup.n
    backprojector = Backprojector(n, PAD, config.r_reconstruct, xp)
    bounds = [(lo, min(lo + config.batch, n_particles)) for lo in range(0, n_particles, config.batch)]
    rotation = np.empty(n_particles, dtype=np.int64)
    shift = np.empty(n_particles, dtype=np.int64)
    marg = case.assignment == "marg"
    marg_total = np.empty(n_particles) if marg else None
    marg_mass = np.empty(n_particles) if marg else None
    marg_kept = np.empty(n_particles, dtype=np.int64) if marg else None
    intervals: list[tuple[str, int, float, float]] = []
    insertions = 0

    def compute(i: int, images: Any) -> None:
        nonlocal insertions
        lo, hi = bounds[i]
        with spans.span("fft", "GPU"):
            coefficients = ek.image_coefficients(images, setup.insert)  # (B, K_insert)
            search = xp.take(coefficients, setup.sub, axis=1)
        with spans.span("ctf", "GPU"):
            ctf_insert = ek.ctf_coefficients(ctf[lo:hi], setup.insert, config.apix, xp)
            ctf_search = xp.take(ctf_insert, setup.sub, axis=1)
        if setup.weights is None:
            with spans.span("setup_scales", "GPU"):
                setup.weights = ek.noise_weights(search, setup.search)
        with spans.span("score", "GPU"):
            scores = ek.score_poses(search, ctf_search, bank, setup.weights, setup.phases)
            if marg:
                found = ek.assign_marg(scores)
                rows, rot, sh, w = found.particle, found.rotation, found.shift, found.weight
                best_r, best_t = found.best_rotation, found.best_shift
            else:
                found = ek.assign_max(scores)
                best_r, best_t = found.rotation, found.shift
                rows, rot, sh, w = xp.arange(hi - lo), found.rotation, found.shift, None
            del scores
        rotation[lo:hi] = to_host(best_r)
        shift[lo:hi] = to_host(best_t)
        if marg:
            marg_total[lo:hi] = to_host(found.total)
            marg_mass[lo:hi] = to_host(found.kept_mass)
            marg_kept[lo:hi] = to_host(found.kept)
        with spans.span("backproject", "GPU"):
            insertions += _insert(backprojector, setup, config, coefficients, ctf_insert, rows, rot, sh, w)

    if case.threads == "single":
        upload = Uploader(xp)
        for i, (lo, hi) in enumerate(bounds):
            start = time.perf_counter()
            with spans.span("read_particles", "IO"):
                host = read_batch(lo, hi)
            with spans.span("upload", "PCIe"):
                images = upload(host)
            intervals.append(("read", i, start, time.perf_counter()))
            start = time.perf_counter()
            compute(i, images)
            synchronize_current(xp)  # as in multi: the interval ends when the device has finished the batch
            intervals.append(("compute", i, start, time.perf_counter()))
    else:
        _run_multi(bounds, read_batch, compute, xp, intervals, device_context)
    with spans.span("reconstruct", "GPU"):
        volume = backprojector.reconstruct(regulariser=REGULARISER)
    volume = to_host(volume).astype(np.float32, copy=False)
    if isinstance(spans, EventSpans):
        spans.flush()
    return PassResult(rotation, shift, marg_total, marg_mass, marg_kept, volume, insertions, len(bounds), intervals)


INSERT_CHUNK = 64
"""Particles whose insertions (times the symmetry operators) are built at once."""


def _insert(backprojector: Backprojector, setup: _Setup, config: PassConfig, coefficients: Any, ctf: Any,
            rows: Any, rot: Any, sh: Any, weight: Any) -> int:
    """Insert the chosen poses of a batch (and their symmetry copies); returns the slice count."""
    xp = setup.xp
    group = setup.group
    g = group.shape[0]
    total = 0
    for start in range(0, int(rows.shape[0]), INSERT_CHUNK):
        part = slice(start, start + INSERT_CHUNK)
        r_rows, t_rows, p_rows = rot[part], sh[part], rows[part]
        phases = ek.shift_phases(setup.insert, setup.shifts[t_rows], setup.n, xp)  # undo each particle's shift
        values = coefficients[p_rows] * ctf[p_rows] * phases
        ctf2 = ctf[p_rows] ** 2
        poses = setup.rotations[r_rows]
        if g > 1:  # pose R and R S_g project alike: insert at every R S_g
            poses = (poses[:, None] @ group[None]).reshape(-1, 3, 3)
            values = xp.repeat(values, g, axis=0)
            ctf2 = xp.repeat(ctf2, g, axis=0)
        w = None if weight is None else xp.repeat(weight[part], g)
        backprojector.insert(values, ctf2, poses, setup.insert, weights=w)
        total += int(poses.shape[0])
    return total


_DONE = object()


def _run_multi(bounds: list[tuple[int, int]], read_batch: Callable[[int, int], np.ndarray],
               compute: Callable[[int, Any], None], xp: Any, intervals: list[tuple[str, int, float, float]],
               device_context: Callable[[], contextlib.AbstractContextManager[Any]]) -> None:
    """A reader thread reads and uploads batch i + 1 while this thread computes batch i."""
    handoff: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def reader() -> None:
        try:
            with device_context():
                upload = Uploader(xp)  # one stream and one staging buffer for this reader thread
                for i, (lo, hi) in enumerate(bounds):
                    if stop.is_set():
                        return
                    start = time.perf_counter()
                    images = upload(read_batch(lo, hi))
                    intervals.append(("read", i, start, time.perf_counter()))
                    put((i, images))
        except BaseException as exc:  # handed to the computing thread, which raises it
            put(exc)
            return
        put(_DONE)

    thread = threading.Thread(target=reader, name="cryobench-engine-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            i, images = item
            start = time.perf_counter()
            compute(i, images)
            synchronize_current(xp)  # the interval ends when the device has finished the batch
            intervals.append(("compute", i, start, time.perf_counter()))
    finally:
        stop.set()
        thread.join(timeout=10)


def overlap_seconds(intervals: list[tuple[str, int, float, float]]) -> float:
    """Total time during which a read and a compute interval ran at once."""
    reads = [(s, e) for kind, _, s, e in intervals if kind == "read"]
    computes = [(s, e) for kind, _, s, e in intervals if kind == "compute"]
    return float(sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in reads for s2, e2 in computes))


NUMPY_BATCH_BUDGET = 2 << 30
"""Bytes of working memory a NumPy batch may use."""
GPU_BUDGET = 11e9
"""The engine is planned to fit an 11 GB GPU at the full profile."""


def make_config(size: Any, n: int, apix: float, xp: Any, case: EngineCase,
                free_device_bytes: int | None = None) -> PassConfig:
    """The pass settings of a profile's engine cases, with a batch that fits the device.

    Parameters
    ----------
    size : EngineSize
        The profile's engine sizes (grid, radii, batch cap).
    n : int
        Box of the particles, pixels.
    apix : float
        Pixel size, Å.
    xp : module
    case : EngineCase
    free_device_bytes : int, optional
        Free GPU memory; the batch then uses at most half of ``min(free, 11 GB)`` after the
        fixed arrays (reference transform, projections, reconstruction grids).
    """
    from pytest_cryobench.kernels.rotations import rotation_grid

    grid = rotation_grid(size.directions, size.psi_step_deg)
    shifts = ek.shift_grid(size.shift_extent_px)
    r_search = min(size.r_search, n // 2 - 1)
    r_reconstruct = min(max(size.r_reconstruct, r_search), n // 2 - 1)
    k = int(fourier_coords(n, r_search).flat.size)
    k_insert = int(fourier_coords(n, r_reconstruct).flat.size)
    rotations, t = len(grid.matrices), len(shifts.shifts)
    g = len(symmetry_group(case.symmetry))
    if is_cupy(xp):
        fixed = fixed_device_bytes(n, rotations, k, r_reconstruct)
        available = min(GPU_BUDGET, free_device_bytes if free_device_bytes is not None else GPU_BUDGET)
        budget = max(available * 0.5 - fixed, 64 << 20)
    else:
        budget = NUMPY_BATCH_BUDGET
    batch = ek.plan_batch(n, k_insert, t, rotations, g, budget, size.batch, marg=case.assignment == "marg")
    return PassConfig(grid, shifts, r_search, r_reconstruct, batch, apix)
