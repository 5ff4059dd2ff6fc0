"""Movies: synthetic LZW TIFF (K3-like), MRC (K2-like) and EER (Falcon 4-like), their ground
truth, sequential reads, and decompression.

The same read and decode code serves generated movies and a real CryoSPARC data set.

Counts are Poisson: each frame draws uniform 16-bit integers and maps them through the
inverse cumulative distribution of Poisson(rate), which is exact to 1/65536 in probability
and some forty times faster than ``Generator.poisson``. Every movie is generated one frame at a
time (one frame in memory), and its per-frame totals are its ground truth.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.provision import Component
from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.profiles import MovieSize, Profile

FORMATS = ("tiff", "mrc", "eer")
SUFFIX = {"tiff": ".tiff", "mrc": ".mrc", "eer": ".eer"}
# Electrons per pixel per frame: K3 counting TIFF frames, K2 frames; EER events per physical
# pixel per hardware frame (Falcon 4 at about 250 frames/s).
COUNT_RATE = {"tiff": 0.8, "mrc": 1.0}
EER_EVENT_RATE = 0.02
_FORMAT_CODE = {"tiff": 1, "mrc": 2, "eer": 3}
GENERATOR_VERSION = {"tiff": 1, "mrc": 1, "eer": 1}
READ_BLOCK = 16 << 20


def poisson_table(rate: float) -> np.ndarray:
    """Inverse CDF of Poisson(``rate``) sampled at the 65536 midpoints of 16-bit uniforms.

    Returns
    -------
    numpy.ndarray, shape (65536,), uint16
        ``table[u]`` is the count for uniform integer ``u``.
    """
    ks = np.arange(0, max(16, int(rate + 12 * math.sqrt(rate) + 12)))
    log_pmf = ks * math.log(rate) - rate - np.array([math.lgamma(k + 1) for k in ks])
    cdf = np.cumsum(np.exp(log_pmf))
    u = (np.arange(65536) + 0.5) / 65536
    return np.minimum(np.searchsorted(cdf, u), ks[-1]).astype(np.uint16)


def count_frames(rng: np.random.Generator, height: int, width: int, n: int, rate: float,
                 dtype: np.dtype, sums: list[int]) -> Iterator[np.ndarray]:
    """Yield ``n`` Poisson count frames of shape ``(height, width)``, appending each frame's total."""
    table = poisson_table(rate).astype(dtype)
    for _ in range(n):
        frame = table[rng.integers(0, 65536, size=(height, width), dtype=np.uint16)]
        sums.append(int(frame.sum(dtype=np.int64)))
        yield frame


def movie_names(fmt: str, size: MovieSize) -> tuple[str, ...]:
    """Paths of the synthetic movies, relative to the data root."""
    return tuple(f"movies/{fmt}/synthetic_movie_{i:03d}{SUFFIX[fmt]}" for i in range(size.n_movies))


def _rng(seed: int, fmt: str, name: str) -> np.random.Generator:
    index = int(Path(name).stem.rsplit("_", 1)[1])
    return np.random.default_rng([seed, _FORMAT_CODE[fmt], index])


def write_tiff_frames(path: Path, frames: Iterator[np.ndarray], shape: tuple[int, int, int],
                      maxworkers: int | None = None) -> None:
    """An LZW TIFF movie of uint8 count frames ``(F, H, W)``, one frame in memory at a time
    (BigTIFF past 3 GiB of raw counts)."""
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=math.prod(shape) > 3 * 2**30) as tw:
        tw.write(frames, shape=shape, dtype=np.uint8, compression="lzw", photometric="minisblack",
                 maxworkers=maxworkers)


def write_mrc_frames(path: Path, frames: Iterator[np.ndarray], shape: tuple[int, int, int],
                     progress: Callable[[int, int], None] | None = None) -> None:
    """An MRC mode 6 (uint16) movie of count frames ``(F, H, W)``, written frame by frame into a
    memory map whose blocks are reserved first (a full disk is ``OSError(ENOSPC)``, not a
    ``SIGBUS``); ``progress(done, total)`` after each frame."""
    import mrcfile

    from pytest_cryobench.measure.fsutil import preallocate

    with mrcfile.new_mmap(path, shape=shape, mrc_mode=6, overwrite=True) as mrc:
        preallocate(path, start=os.stat(path).st_size - mrc.data.nbytes)
        for i, frame in enumerate(frames):
            mrc.data[i] = frame
            if progress is not None:
                progress(i + 1, shape[0])
        mrc.voxel_size = 1.0


def _write_tiff(size: MovieSize, seed: int, name: str, tmp: Path, progress) -> dict[str, Any]:
    sums: list[int] = []
    frames = count_frames(_rng(seed, "tiff", name), size.height, size.width, size.frames,
                          COUNT_RATE["tiff"], np.uint8, sums)

    def reporting() -> Iterator[np.ndarray]:
        for i, frame in enumerate(frames):
            if i:  # tifffile never asks past the last frame, so report the previous one here
                progress(i, size.frames)
            yield frame

    write_tiff_frames(tmp, reporting(), (size.frames, size.height, size.width), maxworkers=usable_threads())
    progress(size.frames, size.frames)
    return {"frame_sums": sums, "shape": [size.frames, size.height, size.width], "dtype": "uint8"}


def _write_mrc(size: MovieSize, seed: int, name: str, tmp: Path, progress) -> dict[str, Any]:
    sums: list[int] = []
    frames = count_frames(_rng(seed, "mrc", name), size.height, size.width, size.frames,
                          COUNT_RATE["mrc"], np.uint16, sums)
    write_mrc_frames(tmp, frames, (size.frames, size.height, size.width), progress)
    return {"frame_sums": sums, "shape": [size.frames, size.height, size.width], "dtype": "uint16"}


def _write_eer(size: MovieSize, seed: int, name: str, tmp: Path, progress) -> dict[str, Any]:
    from pytest_cryobench.data import eer_writer

    rng = _rng(seed, "eer", name)
    counts: list[int] = []
    mean_events = EER_EVENT_RATE * size.pixels

    def frames() -> Iterator[bytes]:
        for i in range(size.frames):
            x, y, sx, sy = eer_writer.random_frame_events(rng, size.width, size.height, mean_events)
            counts.append(int(len(x)))
            yield eer_writer.encode_frame(x, y, sx, sy, size.width, size.height)
            progress(i + 1, size.frames)

    eer_writer.write_eer(tmp, frames(), size.width, size.height, {
        "numberOfFrames": size.frames, "sensorPixelSize.width": 1.0e-10, "exposureTime": size.frames / 248})
    return {"frame_events": counts, "shape": [size.frames, size.height, size.width]}


_WRITERS: dict[str, Callable[..., dict[str, Any]]] = {"tiff": _write_tiff, "mrc": _write_mrc, "eer": _write_eer}


def estimated_bytes(fmt: str, size: MovieSize) -> int:
    """Upper estimate of the bytes of all movies of one format."""
    per_frame = {"tiff": size.pixels * 0.5, "mrc": size.pixels * 2,
                 "eer": size.pixels * EER_EVENT_RATE * 2.0}[fmt]
    return int(size.n_movies * size.frames * per_frame) + (1 << 20)


def movie_component(fmt: str, profile: Profile, seed: int) -> Component:
    """The provisioning component that generates ``fmt`` movies for ``profile``."""
    size: MovieSize = getattr(profile, fmt)
    params = {"n_movies": size.n_movies, "width": size.width, "height": size.height,
              "frames": size.frames}
    params["rate"] = EER_EVENT_RATE if fmt == "eer" else COUNT_RATE[fmt]
    writer = _WRITERS[fmt]
    return Component(
        name=f"movies/{fmt}", version=GENERATOR_VERSION[fmt], params=params,
        files=movie_names(fmt, size), estimated_bytes=estimated_bytes(fmt, size),
        generate=lambda name, tmp, progress: writer(size, seed, name, tmp, progress))


def read_whole_file(path: Path, buffer: bytearray) -> int:
    """Read ``path`` sequentially in 16 MiB reads into ``buffer``; returns the bytes read."""
    view = memoryview(buffer)
    total = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            n = handle.readinto(view[total:total + READ_BLOCK])
            if not n:
                return total
            total += n


def _tiff_error(path: Path, exc: BaseException) -> CryobenchError:
    return CryobenchError(f"{path}: cannot decode this TIFF movie ({type(exc).__name__}: {exc}); "
                          "is the file truncated or damaged?")


def check_tiff(path: Path) -> tuple[int, int, int]:
    """Check a movie is an LZW TIFF of equal frames; returns ``(frames, height, width)``.

    Raises
    ------
    CryobenchError
        Not a TIFF, damaged, not LZW-compressed, or frames of different shapes.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = tif.pages
            first = pages.first
            compression = first.compression
            shape = first.shape
            n = len(pages)
            shapes = {page.shape for page in pages}
            data_end = max(o + c for page in pages for o, c in zip(page.dataoffsets, page.databytecounts,
                                                                    strict=True))
            next_ifd = _next_ifd_offset(tif, pages[-1].offset)
            size = tif.filehandle.size
    except Exception as exc:  # tifffile raises many types for damaged files
        raise _tiff_error(path, exc) from None
    # tifffile only logs a broken page chain or strips past the end; a movie must not lose frames.
    if data_end > size or next_ifd != 0:
        raise CryobenchError(f"{path}: truncated TIFF movie ({size} bytes; its frames need {data_end}, and the "
                             "last frame's link to the next one is broken or points past the end)")
    if len(shapes) > 1:
        raise CryobenchError(f"{path}: frames of different shapes {sorted(shapes)}")
    if compression != tifffile.COMPRESSION.LZW:
        raise CryobenchError(
            f"{path}: TIFF compression is {getattr(compression, 'name', compression)}, expected LZW "
            "(counting-mode movies are LZW TIFF)")
    if len(shape) != 2:
        raise CryobenchError(f"{path}: frames of shape {shape}, expected 2-D frames")
    return n, int(shape[0]), int(shape[1])


def _next_ifd_offset(tif, ifd_offset: int) -> int:
    """The next-IFD link stored after the IFD at ``ifd_offset`` (0 ends the chain; -1 if cut off)."""
    t, fh = tif.tiff, tif.filehandle
    fh.seek(ifd_offset)
    n_tags = struct.unpack(t.tagnoformat, fh.read(t.tagnosize))[0]
    fh.seek(ifd_offset + t.tagnosize + n_tags * t.tagsize)
    link = fh.read(t.offsetsize)
    return struct.unpack(t.offsetformat, link)[0] if len(link) == t.offsetsize else -1


def _open_tiff(source: Any):
    import io

    import tifffile

    return tifffile.TiffFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source)


def tiff_layout(source: Any, name: Any) -> tuple[int, tuple[int, int], np.dtype]:
    """Frames, frame shape and dtype of a TIFF movie (a path, or its bytes in memory).

    Raises
    ------
    CryobenchError
        No frames, or frames of different shapes or not 2-D (other problems raise tifffile's own
        exceptions, which callers turn into one message).
    """
    with _open_tiff(source) as tif:
        pages = list(tif.pages)
        if not pages:
            raise CryobenchError(f"{name}: this TIFF movie has no readable frames; is the file damaged?")
        shape, dtype = pages[0].shape, pages[0].dtype
        if any(page.shape != shape for page in pages) or len(shape) != 2:
            raise CryobenchError(f"{name}: frames of different shapes, or not 2-D")
    return len(pages), (int(shape[0]), int(shape[1])), dtype


def decode_tiff_pages(source: Any, n_pages: int, threads: int, decode_page: Callable[[Any, int], None]) -> None:
    """Call ``decode_page(page, i)`` for every page of a TIFF movie, on ``threads`` workers.

    Each worker has its own TiffFile over the file (or the same bytes in memory): through one
    shared TiffFile, concurrent page reads corrupted strips now and then (IMCD_LZW_INVALID); its
    handle's lock is a no-op unless ``set_lock(True)``, and separate handles avoid the lock.
    """
    workers = max(1, min(int(threads), n_pages))

    def work(worker: int) -> None:
        with _open_tiff(source) as own:
            own_pages = own.pages
            for i in range(worker, n_pages, workers):
                decode_page(own_pages[i], i)

    if workers == 1:
        work(0)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, range(workers)))


def decode_tiff(path: Path, threads: int, frame_totals: bool = True) -> tuple[np.ndarray | None, tuple[int, int]]:
    """Decode every frame of an LZW TIFF movie; optionally returns each frame's total counts.

    Frames are decoded page by page on ``threads`` workers (whole pages, as tifffile decodes a
    stack), each worker with its own file handle and its own reused frame buffer of the file's
    own sample type (8-bit counting movies, 16-bit K2 / K3 movies). Reusing the buffer keeps a
    fresh allocation per frame, and its page faults, out of the figure. The timed rounds decode
    with ``frame_totals=False``; the known-answer check decodes once more with the totals.

    Parameters
    ----------
    path : Path
        The movie (in the benchmark, a copy in ``/dev/shm``).
    threads : int
        Decoder threads.
    frame_totals : bool
        Total each frame after decoding it (for the check).

    Returns
    -------
    frame_sums : numpy.ndarray, shape (n_frames,), int64, or None
        Total counts of each frame (``None`` without ``frame_totals``).
    frame_shape : tuple of int
        ``(height, width)`` of a frame, pixels.
    """
    import threading

    try:
        n_pages, shape, dtype = tiff_layout(path, path)
        sums = np.empty(n_pages, dtype=np.int64) if frame_totals else None
        local = threading.local()

        def decode_page(page: Any, i: int) -> None:
            frame = getattr(local, "frame", None)
            if frame is None:
                frame = local.frame = np.empty(shape, dtype=dtype)
            page.asarray(out=frame, maxworkers=1)
            if sums is not None:
                sums[i] = frame.sum(dtype=np.int64)

        decode_tiff_pages(path, n_pages, threads, decode_page)
    except CryobenchError:
        raise
    except Exception as exc:
        raise _tiff_error(path, exc) from None
    return sums, shape


def check_mrc(path: Path) -> tuple[int, int, int]:
    """Check an MRC movie's header against its size; returns ``(frames, height, width)``."""
    from pytest_cryobench.data.particles import mrc_stack_layout

    _, shape, _ = mrc_stack_layout(path)
    return shape


def check_eer(path: Path) -> tuple[int, int, int]:
    """Check an EER movie's container (frames, coding, data within the file); returns
    ``(hardware frames, height, width)``.

    Raises
    ------
    CryobenchError
        Not EER, truncated (a frame's data past the end, or fewer frames than its metadata says),
        or damaged; the message names the file.
    """
    from pytest_cryobench.data.eer import open_eer

    with open_eer(path) as frames:
        return len(frames), frames.height, frames.width


CHECKS = {"tiff": check_tiff, "mrc": check_mrc, "eer": check_eer}


def usable_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
