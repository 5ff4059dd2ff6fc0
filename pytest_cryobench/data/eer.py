"""EER (Electron Event Representation, Thermo Fisher Falcon 4) movies: the format, and the decoder.

No public library writes EER, so the project writes its own (:mod:`pytest_cryobench.data.eer_writer`),
and the unit tests prove it against decoders it did not write (``imagecodecs.eer_decode`` and
tifffile's EER reader).

Format (compression 65001, "7-bit")
-----------------------------------
An EER file is a little-endian BigTIFF with one IFD per *hardware frame* (about 250 frames/s
on a Falcon 4). Each frame's strip is a bit stream, read least-significant bit first, of
codes that walk the physical pixels in raster order (index ``y * width + x``):

* a 7-bit skip ``s``. ``s == 127`` is an overflow: advance 127 pixels, no electron;
* otherwise advance ``s`` pixels, then a 4-bit sub-pixel symbol follows (so an event code is
  11 bits, ``s | symbol << 7``), one electron lands on the current pixel, and the walk moves
  one pixel on;
* decoding stops when the pixel index reaches ``width * height``.

The symbol holds the sub-pixel position (0..3 on each axis) as ``(sx ^ 2) | (sy ^ 2) << 2``:
bits 0-1 are x, bits 2-3 are y, each XOR 2 (the "signed" offsets -2..1). Decoders give the
electron at, with ``superres`` the up-sampling level:

* ``superres=0`` (4K): ``(y, x)``;
* ``superres=1`` (8K): ``(2 y + (sy >> 1), 2 x + (sx >> 1))``;
* ``superres=2`` (16K): ``(4 y + sy, 4 x + sx)``.

Decoding one frame with imagecodecs: ``eer_decode(strip, (H << s, W << s), 7, 2, 2, superres=s)``
(the shape is the *output* shape; 7, 2, 2 are the skip and sub-pixel bit widths of 65001; the
(7, 1, 1) of the EER specification's test vector is a 9-bit-code layout and misreads 65001
data). imagecodecs refuses ``superres > 0`` unless the output sizes are multiples of 4, so at
``superres=1`` the frame's width and height must be even; it also refuses odd byte counts.

The writer puts the acquisition metadata, an XML ``<metadata><item name=...>`` block, in TIFF
tag 65001 (type UNDEFINED) of the first IFD; tifffile needs it (and BigTIFF) to read a file as
EER (``TiffFile.is_eer``, ``TiffFile(path, superres=s).series[0]``, ``TiffFile.eer_metadata``).

Fractions
---------
:func:`decode_fractions` sums hardware frames into ``n_fractions`` dose fractions. Fraction
``i`` of ``k`` gets frames ``i * n // k`` to ``(i + 1) * n // k - 1`` (``n`` hardware frames):
every frame is used once, in order, and fraction sizes differ by at most one. (RELION's
``--eer_grouping`` instead fixes the frames per fraction and drops the remainder; cryoSPARC
asks for the number of fractions, as here.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import mmap
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_cryobench.errors import CryobenchError

# Compression -> (skip bits, x sub-pixel bits, y sub-pixel bits); 65002 reads them from tags 65007-65009.
EER_CODINGS = {65000: (8, 2, 2), 65001: (7, 2, 2)}
COMPRESSION_EER_7BIT = 65001
SKIP_BITS = 7
SUB_BITS = 2
OVERFLOW = (1 << SKIP_BITS) - 1  # 127: advance 127 pixels, no event
EVENT_BITS = SKIP_BITS + 2 * SUB_BITS  # 11
GUARD_BYTES = 2
TAG_ACQUISITION_METADATA = 65001
FALCON4_FRAME_RATE = 248.0  # hardware frames per second

Source = str | os.PathLike | bytes | bytearray | memoryview | mmap.mmap


# --------------------------------------------------------------------------------------------
# Reader / decoder


class EerFrames:
    """Where each hardware frame's bit stream lies in an EER file held in memory.

    Attributes
    ----------
    name : str
        The file's path (or ``"<bytes>"``), for messages.
    buffer : memoryview
        The whole file, bytes.
    width, height : int
        Physical frame size.
    coding : tuple of int
        (skip bits, x sub-pixel bits, y sub-pixel bits).
    offsets, bytecounts : list of int
        Strip of frame ``j`` is ``buffer[offsets[j]:offsets[j] + bytecounts[j]]``.
    metadata : dict
        tifffile's parsed acquisition XML.
    """

    def __init__(self, name: str, buffer: memoryview, tiff_source: Any) -> None:
        import tifffile

        self.name = name
        self.buffer = buffer
        size = len(buffer)
        try:
            with tifffile.TiffFile(tiff_source) as tif:
                if not tif.is_bigtiff or not tif.is_eer:
                    if tif.is_bigtiff and any(int(p.compression) in (65000, 65001, 65002) for p in tif.pages):
                        raise CryobenchError(f"{name}: EER frames but unreadable EER metadata (tag 65001); "
                                             "is the file truncated or damaged?")
                    raise CryobenchError(f"{name}: not an EER file (needs a BigTIFF with the <metadata> "
                                         "XML in tag 65001)")
                self.metadata = dict(tif.eer_metadata or {})
                pages = list(tif.pages)
        except CryobenchError:
            raise
        except Exception as exc:  # tifffile raises many types on damaged files
            raise CryobenchError(f"{name}: cannot read this EER file ({type(exc).__name__}: {exc}); "
                                 "is it truncated or damaged?") from None
        if pages and pages[0].compression == 1:  # optional integrated image, not a frame
            pages = pages[1:]
        if not pages:
            raise CryobenchError(f"{name}: EER file holds no frames")
        self.height, self.width = (int(v) for v in pages[0].shape[:2])
        self.offsets: list[int] = []
        self.bytecounts: list[int] = []
        self._chunks: dict[int, bytes] = {}
        for j, page in enumerate(pages):
            compression = int(page.compression)
            if compression == 65002:
                coding = tuple(int(page.tags.valueof(code, default)) for code, default in
                               ((65007, 7), (65008, 2), (65009, 2)))
            elif compression in EER_CODINGS:
                coding = EER_CODINGS[compression]
            else:
                raise CryobenchError(f"{name}: frame {j} has compression {compression}, not EER")
            if j == 0:
                self.coding = coding
            elif coding != self.coding or tuple(page.shape[:2]) != (self.height, self.width):
                raise CryobenchError(f"{name}: frame {j} differs in size or coding from frame 0")
            offs, counts = page.dataoffsets, page.databytecounts
            if not offs or len(offs) != len(counts):
                raise CryobenchError(f"{name}: frame {j} has {len(offs)} strip offsets and {len(counts)} "
                                     "byte counts; the file is damaged")
            for off, cnt in zip(offs, counts, strict=True):
                if off + cnt > size or cnt <= 0:
                    raise CryobenchError(f"{name}: frame {j}'s data (bytes {off}..{off + cnt}) lies past the "
                                         f"end of the file ({size} bytes): the file is truncated")
            if len(offs) == 1:
                self.offsets.append(int(offs[0]))
                self.bytecounts.append(int(counts[0]))
            else:  # strips concatenate into one bit stream
                self._chunks[j] = b"".join(bytes(buffer[o:o + c]) for o, c in zip(offs, counts, strict=True))
                self.offsets.append(-1)
                self.bytecounts.append(len(self._chunks[j]))
        expected = self.metadata.get("numberOfFrames")
        if isinstance(expected, (int, np.integer)) and int(expected) != len(pages):
            raise CryobenchError(f"{name}: {len(pages)} frames readable but the metadata says {expected}; "
                                 "the file is truncated or damaged")

    def __len__(self) -> int:
        return len(self.offsets)

    def frame(self, j: int) -> memoryview | bytes:
        """Frame ``j``'s bit stream (a view into :attr:`buffer` when it is one strip)."""
        if self.offsets[j] < 0:
            return self._chunks[j]
        return self.buffer[self.offsets[j]:self.offsets[j] + self.bytecounts[j]]


@contextlib.contextmanager
def open_eer(source: Source):
    """Context manager yielding :class:`EerFrames` for a path (memory-mapped) or a buffer.

    Raises
    ------
    CryobenchError
        The file is missing, not EER, truncated or damaged.
    """
    if isinstance(source, (bytes, bytearray, memoryview, mmap.mmap)):
        with memoryview(source) as view:
            flat = view.cast("B")
            # BytesIO shares a bytes object's memory (it would copy any other buffer).
            yield EerFrames("<bytes>", flat, io.BytesIO(source if isinstance(source, bytes) else flat))
        return
    name = os.fspath(source)
    try:
        fd = os.open(name, os.O_RDONLY)
    except OSError as exc:
        raise CryobenchError(f"{name}: cannot open EER file ({exc.strerror})") from None
    try:
        if os.fstat(fd).st_size == 0:
            raise CryobenchError(f"{name}: EER file is empty")
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    view = memoryview(mapped)
    try:
        frames = EerFrames(name, view, name)
        yield frames
        frames.buffer = None  # type: ignore[assignment]
    finally:
        view.release()
        with contextlib.suppress(BufferError):  # a caller still holding a frame view keeps it open
            mapped.close()


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def fraction_bounds(n_frames: int, n_fractions: int) -> list[tuple[int, int]]:
    """Hardware frames of each fraction: ``[(start, stop), ...]``, fraction ``i`` holding frames
    ``start <= j < stop`` with ``start = i * n_frames // n_fractions``.

    Raises
    ------
    ValueError
        ``n_fractions`` is not in 1..n_frames.
    """
    n_frames, n_fractions = int(n_frames), int(n_fractions)
    if not 1 <= n_fractions <= n_frames:
        raise ValueError(f"n_fractions must be 1..{n_frames} (the hardware frames), got {n_fractions}")
    edges = [i * n_frames // n_fractions for i in range(n_fractions + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _decode_into(frames: EerFrames, j: int, shape: tuple[int, int], superres: int, out: np.ndarray) -> None:
    import imagecodecs

    try:
        imagecodecs.eer_decode(frames.frame(j), shape, *frames.coding, superres=superres, out=out)
    except Exception as exc:
        raise CryobenchError(f"{frames.name}: EER frame {j} does not decode "
                             f"({type(exc).__name__}: {exc}); is the file damaged?") from None


def decode_fractions(source: Source, n_fractions: int, superres: int = 0, threads: int | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
    """Decode every hardware frame and sum the frames into dose fractions.

    This is the EER decompression kernel of the CPU benchmark. Fraction ``i`` of ``k`` sums
    frames ``i * n // k`` to ``(i + 1) * n // k - 1`` (see the module docstring). Each frame is
    decoded by ``imagecodecs.eer_decode`` straight into its fraction (a uint16 ``out`` array
    accumulates, +1 per event). Work is split by whole fractions over a thread pool, so no two
    threads write the same array; the decoder releases the GIL.

    Parameters
    ----------
    source : path or bytes-like
        The EER file (memory-mapped) or its bytes.
    n_fractions : int
        Number of fractions, 1..n_frames.
    superres : {0, 1, 2}
        Up-sampling: output pixels are ``2**superres`` times smaller than physical pixels.
    threads : int, optional
        Worker threads (default: the CPUs this process may use); at most ``n_fractions`` are
        busy, each decoding whole fractions.
    out : numpy.ndarray, optional
        Zeroed uint16 array of the result's shape to fill (it is added to, not cleared). Pass
        one allocated and touched beforehand to keep allocation and page faults (about 0.3 s
        for 40 x 4096^2 on a 2-core VM) out of a timing.

    Returns
    -------
    numpy.ndarray, shape (n_fractions, height * 2**superres, width * 2**superres), uint16
        Electron counts per output pixel per fraction (``2 * n_fractions * H * W * 4**superres``
        bytes: 1.3 GB for 40 fractions of 4096^2 at superres 0, 16 times that at superres 2).

    Raises
    ------
    CryobenchError
        The file is missing, not EER, truncated, or a frame does not decode (the message names
        the file and the frame).
    ValueError
        Bad ``n_fractions``, ``superres``, ``threads`` or ``out``.
    """
    if superres not in (0, 1, 2):
        raise ValueError(f"superres must be 0, 1 or 2, got {superres}")
    threads = _usable_cpus() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    with open_eer(source) as frames:
        bounds = fraction_bounds(len(frames), n_fractions)
        if max(stop - start for start, stop in bounds) > np.iinfo(np.uint16).max:
            raise ValueError("more than 65535 frames per fraction would overflow uint16 counts")
        scale = 2 ** superres
        _, hbits, vbits = frames.coding
        if superres > min(hbits, vbits):
            raise ValueError(f"superres {superres} needs {superres} sub-pixel bits, file has {frames.coding}")
        shape = (frames.height * scale, frames.width * scale)
        if superres and (shape[0] % 2**vbits or shape[1] % 2**hbits):
            # imagecodecs refuses these (it needs output sizes divisible by 2**sub-pixel bits).
            raise CryobenchError(f"{frames.name}: frames of {frames.width} x {frames.height} pixels cannot be "
                                 f"decoded at super-resolution {superres} (the size must be even)")
        if out is None:
            out = np.zeros((n_fractions, *shape), dtype=np.uint16)
        elif out.shape != (n_fractions, *shape) or out.dtype != np.uint16 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint16 array of shape {(n_fractions, *shape)}")

        def fraction(i: int) -> None:
            target = out[i]
            for j in range(*bounds[i]):
                _decode_into(frames, j, shape, superres, target)

        if threads == 1 or n_fractions == 1:
            for i in range(n_fractions):
                fraction(i)
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(threads, n_fractions)) as pool:
                futures = [pool.submit(fraction, i) for i in range(n_fractions)]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    for future in futures:  # stop what has not started
                        future.cancel()
                    raise
    return out


def frame_event_counts(source: Source) -> np.ndarray:
    """Events in each hardware frame, counted by decoding it (imagecodecs, superres 0).

    Returns
    -------
    numpy.ndarray, shape (n_frames,), int64
    """
    import imagecodecs

    with open_eer(source) as frames:
        counts = np.empty(len(frames), dtype=np.int64)
        shape = (frames.height, frames.width)
        for j in range(len(frames)):
            try:
                decoded = imagecodecs.eer_decode(frames.frame(j), shape, *frames.coding)
            except Exception as exc:
                raise CryobenchError(f"{frames.name}: EER frame {j} does not decode "
                                     f"({type(exc).__name__}: {exc}); is the file damaged?") from None
            counts[j] = np.count_nonzero(decoded)
    return counts


def events_image(x: Sequence[int], y: Sequence[int], sub_x: Sequence[int], sub_y: Sequence[int],
                 width: int, height: int, superres: int = 0) -> np.ndarray:
    """Count image of events at a super-resolution level, as decoders should render them.

    Returns
    -------
    numpy.ndarray, shape (height * 2**superres, width * 2**superres), uint16
        Events at ``(y << s | sub_y >> (2 - s), x << s | sub_x >> (2 - s))``.
    """
    s = int(superres)
    shift = SUB_BITS - s
    rows = (np.asarray(y, dtype=np.int64) << s) | (np.asarray(sub_y, dtype=np.int64) >> shift)
    cols = (np.asarray(x, dtype=np.int64) << s) | (np.asarray(sub_x, dtype=np.int64) >> shift)
    w = int(width) << s
    flat = np.bincount(rows * w + cols, minlength=(int(height) << s) * w)
    return flat.astype(np.uint16).reshape(int(height) << s, w)
