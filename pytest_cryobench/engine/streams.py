"""How the engine's passes move particles to the device and time their stages.

:class:`Uploader`: one non-blocking stream and one pinned staging buffer per thread that uploads;
:class:`EventSpans`: the ``single`` pass's stage spans from CUDA events, so that ``single`` and
``multi`` both synchronise the device only at batch boundaries (``docs/design.md``, streams).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np

from pytest_cryobench.kernels.array_api import is_cupy


class Uploader:
    """Host particles to the device for one thread: on NumPy ``asarray``; on a GPU through a
    pinned staging buffer (``cupyx.empty_pinned``, grown as needed and reused) on one
    non-blocking stream that lives as long as the thread's pass, so that the copy is a DMA
    transfer that overlaps the compute stream, and the blocks the pool hands out for uploads are
    reused from that one stream's free list (a new stream per batch would strand them on dead
    streams' lists)."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.gpu = is_cupy(xp)
        self.stream = xp.cuda.Stream(non_blocking=True) if self.gpu else None
        self.staging: Any = None

    def __call__(self, host: np.ndarray) -> Any:
        if not self.gpu:
            return self.xp.asarray(host)
        host = np.ascontiguousarray(host)
        if self.staging is None or self.staging.nbytes < host.nbytes:
            import cupyx

            self.staging = cupyx.empty_pinned((host.nbytes,), dtype=np.uint8)
        staged = self.staging[:host.nbytes].view(host.dtype).reshape(host.shape)
        np.copyto(staged, host)
        with self.stream:
            device = self.xp.empty(host.shape, dtype=host.dtype)
            device.set(staged, stream=self.stream)
        self.stream.synchronize()  # the staging buffer is free again, the batch is on the device
        return device


class EventSpans:
    """The ``single`` pass's spans without a device synchronisation at each boundary: on a GPU,
    ``GPU``-tagged spans are bracketed by CUDA events on the current stream and read once the
    pass has synchronised (:meth:`flush`); other spans, and every span on NumPy, by the host
    clock. Both ``single`` and ``multi`` thus synchronise the device only at batch boundaries."""

    def __init__(self, st: Any, xp: Any) -> None:
        self.st = st
        self.xp = xp
        self.pending: list[tuple[str, tuple[str, ...], Any, Any]] = []

    @contextlib.contextmanager
    def span(self, name: str, *tags: str):
        if not (is_cupy(self.xp) and "GPU" in tags):
            start = time.perf_counter()
            try:
                yield
            finally:
                self.st.add(name, time.perf_counter() - start, *tags)
            return
        start = self.xp.cuda.Event()
        start.record()
        try:
            yield
        finally:
            end = self.xp.cuda.Event()
            end.record()
            self.pending.append((name, tags, start, end))

    def flush(self) -> None:
        """Add the GPU spans' event times (after the device has finished them)."""
        for name, tags, start, end in self.pending:
            end.synchronize()
            self.st.add(name, self.xp.cuda.get_elapsed_time(start, end) / 1e3, *tags)
        self.pending.clear()


def synchronize_current(xp: Any) -> None:
    """Wait for the current device (a no-op on NumPy): the end of a batch's compute interval."""
    if is_cupy(xp):
        xp.cuda.Device().synchronize()
