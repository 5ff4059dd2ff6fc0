"""The device memory a case used: the high-water mark of bytes in use while it ran.

CuPy's pool keeps freed blocks cached, so ``pool.total_bytes()`` (held plus cached, never reset)
is no peak. :class:`MemoryWatch` installs a CuPy memory hook in the case's thread for the time of
the case and reads the pool's ``used_bytes()`` after every allocation from the pool; the largest
value seen, less nothing, is the peak of bytes in use (allocations of other threads, such as an
engine reader thread's uploads, are in ``used_bytes`` and seen at the case thread's next
allocation). It also records the device's free memory before and after (``docs/design.md``,
memory peak).
"""

from __future__ import annotations

from typing import Any


class _PeakHook:
    """The callbacks of a CuPy ``MemoryHook``: keep the largest ``used_bytes`` of the pool."""

    name = "cryobench_peak"

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.peak = int(pool.used_bytes())

    def malloc_postprocess(self, **kwargs: Any) -> None:
        self.peak = max(self.peak, int(self.pool.used_bytes()))


def _hook_class(cupy: Any) -> type:
    """``_PeakHook`` as a subclass of ``cupy.cuda.MemoryHook`` (its other callbacks do nothing)."""
    return type("CryobenchPeakHook", (_PeakHook, cupy.cuda.MemoryHook), {})


def peak_hook(cupy: Any, pool: Any) -> Any:
    """A CuPy memory hook (``with hook: ...``, this thread) whose ``peak`` is the largest
    ``pool.used_bytes()`` seen after an allocation, starting from the pool's use now."""
    return _hook_class(cupy)(pool)


class MemoryWatch:
    """Watch one case's device memory; a no-op for a CPU backend.

    Use as ``watch = MemoryWatch(backend).start()``, the case, then ``watch.stop()`` (the
    figures), or as a context manager followed by :meth:`figures`.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.active = backend is not None and backend.is_gpu
        self.hook: Any = None
        self.baseline = 0
        self.free_before: int | None = None
        self.free_after: int | None = None

    def _free(self) -> int:
        cupy = self.backend.xp
        free, _ = cupy.cuda.runtime.memGetInfo()
        return int(free)

    def __enter__(self) -> MemoryWatch:
        if not self.active:
            return self
        cupy = self.backend.xp
        with self.backend.use():
            self.backend.synchronize()
            pool = cupy.get_default_memory_pool()
            self.free_before = self._free()
            self.hook = peak_hook(cupy, pool)
            self.baseline = self.hook.peak
            self.hook.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.active or self.hook is None:
            return
        self.hook.__exit__(*exc)
        with self.backend.use():
            self.backend.synchronize()
            self.hook.malloc_postprocess()  # what other threads still hold at the end
            self.free_after = self._free()

    def start(self) -> MemoryWatch:
        return self.__enter__()

    def stop(self) -> dict[str, int]:
        """End the watch and return :meth:`figures`."""
        self.__exit__(None, None, None)
        return self.figures()

    def figures(self) -> dict[str, int]:
        """``gpu_memory_peak_bytes`` (high-water mark of bytes in use during the case, pool
        included from before it), ``gpu_memory_case_peak_bytes`` (that peak above what was in use
        when the case started), and the device's free bytes before and after; ``{}`` on the CPU."""
        if not self.active or self.hook is None:
            return {}
        return {"gpu_memory_peak_bytes": self.hook.peak,
                "gpu_memory_case_peak_bytes": self.hook.peak - self.baseline,
                "gpu_memory_free_before_bytes": self.free_before,
                "gpu_memory_free_after_bytes": self.free_after}
