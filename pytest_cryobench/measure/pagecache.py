"""Evicting files from the Linux page cache, and measuring how much of them is still resident.

A cold read is only a disk figure if the file was not in memory. Before each cold read the
harness evicts the files (``fadvise``: ``posix_fadvise(POSIX_FADV_DONTNEED)`` after flushing
dirty pages; ``sysctl``: ``sync; echo 1 > /proc/sys/vm/drop_caches``; ``none``) and then
measures residency with ``mincore(2)``, so that a read from a warm cache is marked as such.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import mmap
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from pytest_cryobench.errors import PageCacheError

DROP_CACHES_PATH = Path("/proc/sys/vm/drop_caches")
# A read counts as cold when at most this share of its bytes was resident before it started.
WARM_THRESHOLD = 0.02

_PROT_READ = 0x1
_MAP_SHARED = 0x01
_MAP_FAILED = ctypes.c_void_p(-1).value
_LOW_BIT = bytes(b & 1 for b in range(256))


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
    except OSError:
        return None
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    return libc


_LIBC = _load_libc()


@dataclasses.dataclass(frozen=True)
class Residency:
    """Page-cache residency of a set of files.

    Attributes
    ----------
    resident_bytes : int
        Bytes of the files held in the page cache (whole pages, capped at the file sizes).
    total_bytes : int
        Total size of the files, bytes.
    measured : bool
        False where ``mincore`` is unavailable; then nothing is known.
    """

    resident_bytes: int
    total_bytes: int
    measured: bool = True

    @property
    def fraction(self) -> float:
        return self.resident_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def warm(self) -> bool:
        return self.measured and self.fraction > WARM_THRESHOLD


def file_residency(path: str | os.PathLike) -> tuple[int, int]:
    """Resident and total bytes of one file, from ``mincore(2)`` over a read-only mapping.

    Returns
    -------
    resident, size : int, int
        Bytes in the page cache (page granular, capped at the size) and the file size.
    """
    size = os.stat(path).st_size
    if size == 0:
        return 0, 0
    if _LIBC is None:
        raise OSError("libc not found: mincore is unavailable")
    page = mmap.PAGESIZE
    n_pages = (size + page - 1) // page
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _LIBC.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"mmap failed: {os.strerror(err)}", str(path))
        try:
            vec = (ctypes.c_ubyte * n_pages)()
            if _LIBC.mincore(ctypes.c_void_p(addr), size, vec) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mincore failed: {os.strerror(err)}", str(path))
            # Bit 0 of each byte says whether that page is resident; the other bits are reserved.
            resident_pages = bytes(vec).translate(_LOW_BIT).count(1)
        finally:
            _LIBC.munmap(ctypes.c_void_p(addr), size)
    finally:
        os.close(fd)
    return min(resident_pages * page, size), size


def residency(paths: Iterable[str | os.PathLike]) -> Residency:
    """Total residency of several files; ``measured=False`` if ``mincore`` is not usable."""
    paths = list(paths)
    resident = total = 0
    try:
        for path in paths:
            r, s = file_residency(path)
            resident += r
            total += s
    except OSError:
        return Residency(0, sum(os.stat(p).st_size for p in paths), measured=False)
    return Residency(resident, total)


def _fadvise_dontneed(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        # DONTNEED cannot drop dirty pages: write them back first (a copy just made is dirty).
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def check_sysctl_permitted() -> None:
    """Raise :class:`PageCacheError` unless ``/proc/sys/vm/drop_caches`` can be written."""
    if not DROP_CACHES_PATH.exists() or not os.access(DROP_CACHES_PATH, os.W_OK):
        raise PageCacheError(
            f"--cryobench-drop-caches sysctl needs write access to {DROP_CACHES_PATH} "
            "(run as root on a host whose /proc/sys is writable), or use "
            "--cryobench-drop-caches fadvise, which needs no privileges")


def drop(paths: Sequence[str | os.PathLike], method: str) -> None:
    """Evict ``paths`` from the page cache.

    Parameters
    ----------
    paths : sequence of path-like
        Files to evict.
    method : {"fadvise", "sysctl", "none"}
        ``fadvise`` evicts just these files; ``sysctl`` drops the whole page cache (root);
        ``none`` does nothing (the read is then likely warm, and is marked so).

    Raises
    ------
    PageCacheError
        ``sysctl`` was asked for and is not permitted.
    """
    if method == "none":
        return
    if method == "fadvise":
        for path in paths:
            _fadvise_dontneed(path)
        return
    if method == "sysctl":
        check_sysctl_permitted()
        os.sync()
        try:
            DROP_CACHES_PATH.write_text("1\n")
        except OSError as exc:
            raise PageCacheError(
                f"--cryobench-drop-caches sysctl: writing {DROP_CACHES_PATH} failed ({exc.strerror}); "
                "use --cryobench-drop-caches fadvise") from None
        return
    raise ValueError(f"unknown page-cache method {method!r}")


def drop_and_measure(paths: Sequence[str | os.PathLike], method: str) -> Residency:
    """Evict ``paths`` and return how much of them is still resident afterwards."""
    drop(paths, method)
    return residency(paths)
