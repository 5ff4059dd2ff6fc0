"""Measurements and facts about the machine for the requirements suite.

Timed probes (memory bandwidth, storage reads) return what they measured with how; the facts
(kernel, platform, user, limits, ``/dev/shm``, whether a directory sits on a local SSD) are
read from the operating system.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.measure import pagecache

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "glusterfs",
    "fuse.glusterfs", "fuse.sshfs", "panfs", "wekafs", "afs", "9p", "fuse.ceph"})


@dataclasses.dataclass(frozen=True)
class Bandwidth:
    """Result of :func:`stream_triad`.

    Attributes
    ----------
    gb_per_s : float
        Best of the repeats, counting 24 bytes per element as STREAM counts its triad (read
        ``b`` and ``c``, write ``a``; 8-byte floats), 1 GB = 1e9 bytes.
    elements : int
        Length of each array.
    threads : int
        Threads that shared the arrays, one slice each.
    seconds : list of float
        Each repeat's wall time.
    """

    gb_per_s: float
    elements: int
    threads: int
    seconds: list[float]


def _triad_slice(a: np.ndarray, b: np.ndarray, c: np.ndarray, scalar: float, block: int) -> None:
    """``a = b + scalar * c`` over one thread's slice, in cache-sized blocks so that the product
    lives in cache and memory sees only STREAM's three streams (NumPy releases the GIL inside)."""
    tmp = np.empty(block, dtype=a.dtype)
    for start in range(0, a.size, block):
        stop = min(start + block, a.size)
        part = tmp[: stop - start]
        np.multiply(c[start:stop], scalar, out=part)
        np.add(b[start:stop], part, out=a[start:stop])


def stream_triad(elements: int, threads: int, repeats: int = 5, block: int = 1 << 16) -> Bandwidth:
    """CPU memory bandwidth by a STREAM-style triad over ``threads`` threads.

    Parameters
    ----------
    elements : int
        Length of each of the three float64 arrays; STREAM asks for at least 4x the last-level
        cache per array.
    threads : int
        Worker threads, each on its own contiguous slice (first touched by that thread).
    repeats : int
        Timed repeats after one untimed pass; the best is reported, as STREAM does.
    block : int
        Elements per block (64 Ki: 512 KiB per array block, held in cache).
    """
    threads = max(1, int(threads))
    a, b, c = (np.empty(elements) for _ in range(3))
    bounds = np.linspace(0, elements, threads + 1).astype(int)
    slices = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        def fill(part: slice) -> None:
            a[part] = 1.0
            b[part] = 2.0
            c[part] = 0.5

        list(pool.map(fill, slices))
        times = []
        for index in range(repeats + 1):
            start = time.perf_counter()
            list(pool.map(lambda part: _triad_slice(a[part], b[part], c[part], 3.0, block), slices))
            elapsed = time.perf_counter() - start
            if index:
                times.append(elapsed)
    if not np.all(a[:: max(1, elements // 1024)] == 3.5):  # 2 + 3 * 0.5: the triad really ran
        raise RuntimeError("STREAM triad gave a wrong answer")
    return Bandwidth(24.0 * elements / min(times) / 1e9, elements, threads, times)


@dataclasses.dataclass(frozen=True)
class ReadRate:
    """A cold read: bytes, seconds, MB/s (1e6 bytes), how the cache was dropped and how much of
    the file was still cached before the read."""

    bytes: int
    seconds: float
    mb_per_s: float
    residency: float
    pattern: str


def write_test_file(path: Path, size: int, seed: int) -> Path:
    """A file of ``size`` random bytes (incompressible), written in 16 MiB pieces and synced."""
    rng = np.random.default_rng(seed)
    piece = 16 << 20
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            n = min(piece, left)
            handle.write(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            left -= n
        handle.flush()
        os.fsync(handle.fileno())
    return path


def cold_read(path: Path, drop_caches: str, *, pattern: str = "sequential", block: int = 8 << 20,
              random_block: int = 256 << 10, seed: int = 0) -> ReadRate:
    """Read ``path`` after dropping it from the page cache.

    ``sequential`` reads it front to back in ``block`` pieces; ``random`` reads every
    ``random_block`` piece (a 256 KiB particle image, by default) once in a seeded random order.
    Reads go into one preallocated buffer (``os.preadv``, as the particle reader does), so the
    figure is the storage's, not the allocator's.
    """
    size = os.path.getsize(path)
    residency = pagecache.drop_and_measure([path], drop_caches).fraction
    sequential = pattern == "sequential"
    piece = block if sequential else random_block
    if sequential:
        offsets = range(0, size, piece)
    else:
        offsets = (np.random.default_rng(seed).permutation(size // piece) * piece).tolist()
    buffer = [memoryview(bytearray(piece))]
    fd = os.open(path, os.O_RDONLY)
    try:
        start = time.perf_counter()
        done = 0
        for offset in offsets:  # one read per piece: the access pattern measured
            done += os.preadv(fd, buffer, offset)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
    return ReadRate(done, elapsed, done / elapsed / 1e6, residency, pattern)


def rotational(device: str | None, sys_class_block: Path = Path("/sys/class/block")) -> bool | None:
    """Whether the block device behind ``device`` (``/dev/nvme0n1p2``) spins, from the kernel's
    ``queue/rotational`` of the device or of the disk holding the partition; ``None`` if unknown."""
    if not device or not device.startswith("/dev/"):
        return None
    name = os.path.basename(os.path.realpath(device))
    sys_block = sys_class_block / name
    for candidate in (sys_block / "queue" / "rotational", sys_block.parent / "queue" / "rotational",
                      sys_block.resolve().parent / "queue" / "rotational"):
        try:
            return candidate.read_text().strip() == "1"
        except OSError:
            continue
    return None


def local_ssd(path: Path) -> dict[str, Any]:
    """Is ``path`` on a local, non-rotational device? With the evidence (filesystem, device)."""
    from pytest_cryobench.measure.fsutil import filesystem_of

    fs = filesystem_of(path)
    fstype = (fs.get("fstype") or "").lower()
    network = fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse.")
    spins = rotational(fs.get("device"))
    return {**fs, "network": network, "rotational": spins, "local_ssd": (not network) and spins is False}


def shm_info(path: Path = Path("/dev/shm")) -> dict[str, Any]:
    """``/dev/shm``: present, writable, its size and free space (bytes), filesystem type."""
    from pytest_cryobench.measure.fsutil import filesystem_of

    if not path.is_dir():
        return {"present": False, "writable": False, "size": 0, "free": 0, "fstype": None}
    stat = os.statvfs(path)
    writable = os.access(path, os.W_OK)
    return {"present": True, "writable": writable, "size": stat.f_blocks * stat.f_frsize,
            "free": stat.f_bavail * stat.f_frsize, "fstype": filesystem_of(path).get("fstype")}


def open_file_limits() -> tuple[int, int]:
    """Soft and hard limits on open files (``RLIM_INFINITY`` as a large number)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinite = resource.RLIM_INFINITY
    return (2**31 if soft == infinite else soft), (2**31 if hard == infinite else hard)


def platform_facts() -> dict[str, Any]:
    """OS, architecture, kernel release, user and whether it is root."""
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    return {"system": platform.system(), "machine": platform.machine(), "kernel": platform.release(),
            "python_bits": 64 if sys.maxsize > 2**32 else 32, "uid": uid, "root": uid == 0}


def numa_affinity(bus_ids: list[str], cupy: Any = None, ordinals: list[int] | None = None,
                  nbytes: int = 256 << 20) -> dict[str, Any]:
    """Which NUMA node each GPU hangs off, whether this process's threads may run there, and,
    with CuPy and two or more nodes, the pinned H2D bandwidth (GB/s) from a buffer on the GPU's
    own node against one on another node (``near_h2d_gb_per_s``, ``far_h2d_gb_per_s``).

    Parameters
    ----------
    bus_ids : list of str
        The GPUs' PCI bus ids (NVML form).
    cupy : module, optional
        Measures the bandwidths when given.
    ordinals : list of int, optional
        The GPUs' CUDA ordinals, in the order of ``bus_ids``.
    nbytes : int
        Size of each timed copy.
    """
    from pytest_cryobench.measure import host_link

    facts = host_link.topology(bus_ids)
    nodes = host_link.numa_nodes()
    if cupy is None or len(nodes) < 2:
        return facts
    allowed = host_link.thread_cpus()
    for ordinal, gpu in zip(ordinals or range(len(bus_ids)), facts["gpus"], strict=True):
        near = gpu["numa_node"]
        if near is None or not (nodes[near] & allowed):
            continue
        far = next((k for k in nodes if k != near and nodes[k] & allowed), None)
        if far is None:
            continue
        with cupy.cuda.Device(ordinal):
            for key, node in (("near", near), ("far", far)):
                seconds = host_link.on_node_cpus(nodes[node] & allowed,
                                                 lambda: host_link.copy_seconds(cupy, "h2d", nbytes, True))
                gpu[f"{key}_h2d_gb_per_s"] = nbytes / seconds / 1e9
                gpu[f"{key}_node"] = node
    return facts
