"""EER (Electron Event Representation, Thermo Fisher Falcon 4) movies: encoder, writer, decoder.

No public library writes EER, so this module writes its own, and the unit tests prove it
against decoders it did not write (``imagecodecs.eer_decode`` and tifffile's EER reader).

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
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

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
_RAMP16 = np.arange(1 << 16, dtype=np.uint16)
_PACK_BLOCK = 16384  # codes packed per block
TAG_ACQUISITION_METADATA = 65001
FALCON4_FRAME_RATE = 248.0  # hardware frames per second

# TIFF field types used by the writer.
_SHORT, _LONG, _UNDEFINED, _LONG8 = 3, 4, 7, 16
_BIGTIFF_HEADER = struct.pack("<2sHHHQ", b"II", 43, 8, 0, 16)  # first IFD right after it
_DEFAULT_UNITS = {
    "exposureTime": "s",
    "sensorPixelSize.width": "m",
    "sensorPixelSize.height": "m",
    "sensorImageWidth": "pixel",
    "sensorImageHeight": "pixel",
    "frameRate": "Hz",
}

Source = str | os.PathLike | bytes | bytearray | memoryview | mmap.mmap


# --------------------------------------------------------------------------------------------
# Encoder


def _as_int_array(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def encode_frame(x: Any, y: Any, sub_x: Any, sub_y: Any, width: int, height: int) -> bytes:
    """Encode one hardware frame's events as an EER 7-bit (compression 65001) strip.

    Parameters
    ----------
    x, y : array_like of int, shape (n,)
        Physical pixel of each event, ``0 <= x < width`` and ``0 <= y < height``. Any order;
        at most one event per physical pixel (the format cannot hold more).
    sub_x, sub_y : array_like of int, shape (n,)
        Sub-pixel position of each event on a 4 x 4 grid, 0..3 (0 = left/top quarter).
    width, height : int
        Frame size in physical pixels.

    Returns
    -------
    bytes
        The bit stream: codes packed least-significant bit first, a terminal code, at least
        two zero guard bytes, zero-padded to a multiple of 8 bytes (so its length is even, as
        imagecodecs requires).

    Raises
    ------
    ValueError
        Arrays of different lengths, a coordinate or sub-pixel out of range, or two events on
        the same physical pixel.
    """
    width, height = int(width), int(height)
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width} x {height}")
    xs, ys = _as_int_array("x", x), _as_int_array("y", y)
    sxs, sys_ = _as_int_array("sub_x", sub_x), _as_int_array("sub_y", sub_y)
    n = xs.size
    if not (ys.size == sxs.size == sys_.size == n):
        raise ValueError(f"x, y, sub_x, sub_y differ in length: {n}, {ys.size}, {sxs.size}, {sys_.size}")
    n_pixels = width * height
    if n:
        for name, arr, hi in (("x", xs, width), ("y", ys, height), ("sub_x", sxs, 4), ("sub_y", sys_, 4)):
            lo_val, hi_val = int(arr.min()), int(arr.max())
            if lo_val < 0 or hi_val >= hi:
                raise ValueError(f"{name} out of range 0..{hi - 1}: min {lo_val}, max {hi_val}")
        index = ys * width + xs
        order = np.argsort(index, kind="stable")
        index = index[order]
        gaps = np.empty(n, dtype=np.int64)
        gaps[0] = index[0]
        np.subtract(index[1:], index[:-1], out=gaps[1:])
        if n > 1 and int(gaps[1:].min()) == 0:
            dup = int(index[1:][gaps[1:] == 0][0])
            raise ValueError(f"more than one event on pixel (x={dup % width}, y={dup // width})")
        gaps[1:] -= 1
        symbol = (sxs[order] ^ 2) | ((sys_[order] ^ 2) << 2)
        remainder = n_pixels - 1 - int(index[-1])
    else:
        gaps = np.empty(0, dtype=np.int64)
        symbol = gaps
        remainder = n_pixels

    # Code list: per event, gap // 127 overflow codes then one 11-bit event code; after the
    # last event, remainder // 127 overflow codes and a 7-bit terminal code remainder % 127
    # (0 when the last event is on the last pixel: the decoder stops on reaching W * H).
    n_over = gaps // OVERFLOW
    n_over_end, terminal = divmod(remainder, OVERFLOW)
    n_codes = int(n_over.sum()) + n + n_over_end + 1
    values = np.full(n_codes, OVERFLOW, dtype=np.uint16)
    widths = np.full(n_codes, SKIP_BITS, dtype=np.uint8)
    event_at = np.cumsum(n_over + 1) - 1
    values[event_at] = (gaps - OVERFLOW * n_over) | (symbol << SKIP_BITS)
    widths[event_at] = EVENT_BITS
    values[-1] = terminal

    return _pack_codes(values, widths, GUARD_BYTES)


def _pack_codes(values: np.ndarray, widths: np.ndarray, guard: int) -> bytes:
    """Concatenate codes least-significant bit first into bytes.

    Stream bit ``k`` is bit ``k - start`` of the code that covers it. Bit positions are
    computed modulo 2**16 (exact, as ``0 <= k - start < 11``), so all work arrays are uint16.
    Codes go in blocks of ``_PACK_BLOCK`` so that the work arrays stay in cache and are not
    fresh page-faulted memory (4 ms instead of 10 ms for a 4096^2 frame of 335k events); a
    block's trailing bits that do not fill a byte are carried into the next block.
    """
    n_bits = int(widths.sum(dtype=np.int64))
    n_bytes = -(-(-(-n_bits // 8) + guard) // 8) * 8
    out = np.zeros(n_bytes, dtype=np.uint8)
    starts = np.cumsum(widths, dtype=np.uint16)  # modulo 2**16
    starts -= widths
    carry = np.empty(0, dtype=bool)
    at = 0
    for c0 in range(0, values.size, _PACK_BLOCK):
        w = widths[c0:c0 + _PACK_BLOCK]
        nb = int(w.sum(dtype=np.int64))
        position = np.resize(_RAMP16, nb)
        position += starts[c0]
        position -= np.repeat(starts[c0:c0 + _PACK_BLOCK], w)
        bits = np.repeat(values[c0:c0 + _PACK_BLOCK], w)
        bits >>= position
        bits &= 1
        bits = np.concatenate([carry, bits.astype(bool)])
        whole = bits.size // 8 * 8
        packed = np.packbits(bits[:whole], bitorder="little")
        out[at:at + packed.size] = packed
        at += packed.size
        carry = bits[whole:]
    if carry.size:
        out[at] = np.packbits(carry, bitorder="little")[0]
    return out.tobytes()


def random_frame_events(rng: np.random.Generator, width: int, height: int, mean_events: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Draw one hardware frame's events.

    The count is Poisson(``mean_events``) (capped at ``width * height``); the events fall on
    distinct physical pixels drawn uniformly without replacement; sub-pixels are uniform.
    Deterministic given the state of ``rng``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source (advanced by the call).
    width, height : int
        Frame size in physical pixels.
    mean_events : float
        Expected events in the frame (electrons per pixel per frame times ``width * height``).

    Returns
    -------
    x, y : numpy.ndarray, shape (n,), int64
        Physical pixels, sorted by raster index ``y * width + x``.
    sub_x, sub_y : numpy.ndarray, shape (n,), uint8
        Sub-pixel positions, 0..3.
    """
    n_pixels = int(width) * int(height)
    n = min(int(rng.poisson(mean_events)), n_pixels)
    if n > n_pixels // 8:  # dense: sample without replacement directly
        index = np.sort(rng.choice(n_pixels, size=n, replace=False)).astype(np.int64, copy=False)
    else:  # sparse: draw with replacement, drop repeats, draw the shortfall again (a few rounds)
        index = np.empty(0, dtype=np.int64)
        while index.size < n:
            index = np.sort(np.concatenate([index, rng.integers(0, n_pixels, size=n - index.size)]))
            index = index[np.concatenate([[True], index[1:] != index[:-1]])]
    sub = rng.integers(0, 4, size=(2, n), dtype=np.uint8)
    y, x = np.divmod(index, int(width))
    return x, y, sub[0], sub[1]


# --------------------------------------------------------------------------------------------
# Writer


def metadata_xml(items: Mapping[str, Any]) -> bytes:
    """The acquisition-metadata block of tag 65001.

    Parameters
    ----------
    items : mapping of str to value or (value, unit)
        Bools are written ``Yes``/``No`` (as EPU does); a unit becomes the ``unit`` attribute.

    Returns
    -------
    bytes
        UTF-8 ``<metadata><item name="...">value</item>...</metadata>``.
    """
    lines = ["<metadata>"]
    for name, value in items.items():
        unit = _DEFAULT_UNITS.get(name)
        if isinstance(value, tuple):
            value, unit = value
        if isinstance(value, (bool, np.bool_)):
            text = "Yes" if value else "No"
        elif isinstance(value, (float, np.floating)):
            text = repr(float(value))
        else:
            text = str(value)
        attrs = f"name={quoteattr(str(name))}" + (f" unit={quoteattr(str(unit))}" if unit else "")
        lines.append(f"<item {attrs}>{escape(text)}</item>")
    lines.append("</metadata>")
    return "\n".join(lines).encode("utf-8")


def _entry(tag: int, ftype: int, count: int, value: int | None = None, raw: bytes | None = None) -> bytes:
    if raw is None:
        raw = struct.pack({_SHORT: "<H", _LONG: "<I", _LONG8: "<Q"}[ftype], value)
    return struct.pack("<HHQ", tag, ftype, count) + raw.ljust(8, b"\0")


class EerWriter:
    """Stream hardware frames into an EER file (a hand-written little-endian BigTIFF).

    One frame's bytes are in memory at a time. Layout: the 16-byte header; the first IFD, the
    acquisition XML (with room to spare) and the first strip; then, per further frame, its IFD
    and its strip; everything 8-byte aligned. The XML is rewritten on :meth:`close` with the
    final frame count (it goes to the end of the file in the unlikely case it outgrew its
    room), so a file cut short keeps readable metadata that says how many frames it should hold.
    Each IFD holds ImageWidth, ImageLength, Compression (65001), PhotometricInterpretation
    (min-is-black), StripOffsets, SamplesPerPixel, RowsPerStrip, StripByteCounts; no
    BitsPerSample, as in Falcon files (tifffile then reads frames as bool). Tag 65001 is in the
    first IFD only.

    Parameters
    ----------
    path : str or PathLike
        Written directly (truncated if present); the caller handles temporary names.
    width, height : int
        Frame size in physical pixels.
    metadata : mapping, optional
        Extra items for the acquisition XML (see :func:`metadata_xml`). ``numberOfFrames``,
        ``sensorImageWidth`` and ``sensorImageHeight`` are filled in from what was written; a
        given ``numberOfFrames`` that differs from the frames written raises ``ValueError`` on
        close. ``exposureTime`` defaults to frames / 248 s.

    Examples
    --------
    >>> with EerWriter(path, 4096, 4096, {"sensorPixelSize.width": 1e-10}) as w:  # doctest: +SKIP
    ...     w.write_events(x, y, sx, sy)
    """

    XML_SLACK = 256  # bytes reserved beyond the first XML for the final one

    def __init__(self, path: str | os.PathLike, width: int, height: int,
                 metadata: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        if not (0 < self.width < 2**32 and 0 < self.height < 2**32):
            raise ValueError(f"frame size out of range: {width} x {height}")
        self.metadata = dict(metadata or {})
        given = self.metadata.get("numberOfFrames")
        self._given_frames = None if given is None else int(given[0] if isinstance(given, tuple) else given)
        self._counts: list[int] = []
        self._xml_entry_at = 0  # file offset of the first IFD's tag-65001 entry
        self._xml_at = 0  # file offset of the XML, and the room it has there
        self._xml_room = 0
        self._last_next_at = 0  # file offset of the last IFD's next-IFD pointer
        self._handle = open(self.path, "wb")
        self._handle.write(_BIGTIFF_HEADER)
        self._pos = len(_BIGTIFF_HEADER)

    def __enter__(self) -> EerWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._handle.close()

    @property
    def n_frames(self) -> int:
        return len(self._counts)

    @property
    def event_counts(self) -> np.ndarray:
        """Events written per frame, shape (n_frames,), int64; -1 where a frame came pre-encoded."""
        return np.asarray(self._counts, dtype=np.int64)

    def _xml(self, n_frames: int) -> bytes:
        items: dict[str, Any] = {
            "commercialName": "pytest-cryobench synthetic EER",
            "exposureTime": n_frames / FALCON4_FRAME_RATE,
        }
        items.update(self.metadata)
        items.update({"numberOfFrames": n_frames, "sensorImageWidth": self.width,
                      "sensorImageHeight": self.height})
        return metadata_xml(items)

    def write_events(self, x: Any, y: Any, sub_x: Any, sub_y: Any) -> int:
        """Encode (:func:`encode_frame`) and append one frame; returns its number of events."""
        data = encode_frame(x, y, sub_x, sub_y, self.width, self.height)
        n = int(np.asarray(x).size)
        self.write_encoded(data, n)
        return n

    def write_encoded(self, data: bytes | bytearray | memoryview, n_events: int = -1) -> None:
        """Append one frame already encoded by :func:`encode_frame` (its strip bytes)."""
        if self._handle.closed:
            raise ValueError(f"{self.path}: EER writer is closed")
        data = memoryview(data).cast("B")
        first = not self._counts
        n_entries = 9 if first else 8
        ifd_at = self._pos
        ifd_size = 8 + 20 * n_entries + 8
        ifd_end = ifd_at + ifd_size + (-ifd_size % 8)
        xml = b""
        if first:
            xml = self._xml(self._given_frames or 1)
            self._xml_at = ifd_end
            self._xml_room = len(xml) + self.XML_SLACK + (-(len(xml) + self.XML_SLACK) % 8)
        strip_at = ifd_end + self._xml_room if first else ifd_end
        end = strip_at + len(data)
        end += -end % 8
        entries = [
            _entry(256, _LONG, 1, self.width),
            _entry(257, _LONG, 1, self.height),
            _entry(259, _SHORT, 1, COMPRESSION_EER_7BIT),
            _entry(262, _SHORT, 1, 1),
            _entry(273, _LONG8, 1, strip_at),
            _entry(277, _SHORT, 1, 1),
            _entry(278, _LONG, 1, self.height),
            _entry(279, _LONG8, 1, len(data)),
        ]
        if first:
            self._xml_entry_at = ifd_at + 8 + 20 * len(entries)
            entries.append(_entry(TAG_ACQUISITION_METADATA, _UNDEFINED, len(xml),
                                  raw=struct.pack("<Q", self._xml_at)))
        # The next-IFD pointer names where the next frame's IFD will go; close() zeroes the last.
        self._last_next_at = ifd_at + 8 + 20 * len(entries)
        ifd = struct.pack("<Q", len(entries)) + b"".join(entries) + struct.pack("<Q", end)
        self._handle.write(ifd.ljust(ifd_end - ifd_at, b"\0"))
        if first:
            self._handle.write(xml.ljust(self._xml_room, b"\0"))
        self._handle.write(data)
        self._handle.write(b"\0" * (end - strip_at - len(data)))
        self._pos = end
        self._counts.append(int(n_events))

    def close(self) -> None:
        """Write the final acquisition XML, end the IFD chain, and close the file."""
        if self._handle.closed:
            return
        try:
            if not self._counts:
                raise ValueError(f"{self.path}: an EER file needs at least one frame")
            n = len(self._counts)
            if self._given_frames is not None and self._given_frames != n:
                raise ValueError(f"{self.path}: metadata says numberOfFrames={self._given_frames}, "
                                 f"{n} frames written")
            xml = self._xml(n)
            xml_at = self._xml_at
            if len(xml) > self._xml_room:  # outgrew its room: append it
                xml_at = self._pos
                self._handle.write(xml)
            self._handle.flush()
            fd = self._handle.fileno()
            if xml_at == self._xml_at:
                os.pwrite(fd, xml.ljust(self._xml_room, b"\0"), xml_at)
            os.pwrite(fd, struct.pack("<QQ", len(xml), xml_at), self._xml_entry_at + 4)
            os.pwrite(fd, struct.pack("<Q", 0), self._last_next_at)
        finally:
            self._handle.close()


def write_eer(path: str | os.PathLike, frames: Iterable[Any], width: int, height: int,
              metadata: Mapping[str, Any] | None = None) -> np.ndarray:
    """Write an EER movie from an iterator of frames.

    Parameters
    ----------
    path : str or PathLike
        Output file, written directly.
    frames : iterable
        Each item is either a frame's encoded strip (bytes from :func:`encode_frame`) or an
        ``(x, y, sub_x, sub_y)`` tuple of event arrays; consumed one at a time.
    width, height : int
        Frame size in physical pixels.
    metadata : mapping, optional
        Acquisition XML items (see :class:`EerWriter`).

    Returns
    -------
    numpy.ndarray, shape (n_frames,), int64
        Events per frame (-1 for frames given as bytes).
    """
    with EerWriter(path, width, height, metadata) as writer:
        for frame in frames:
            if isinstance(frame, (bytes, bytearray, memoryview)):
                writer.write_encoded(frame)
            else:
                writer.write_events(*frame)
    return writer.event_counts


def write_random_eer(path: str | os.PathLike, rng: np.random.Generator, width: int, height: int,
                     n_frames: int, events_per_pixel: float,
                     metadata: Mapping[str, Any] | None = None) -> np.ndarray:
    """Write ``n_frames`` frames of :func:`random_frame_events`; returns the events per frame."""
    mean = events_per_pixel * width * height
    return write_eer(path, (random_frame_events(rng, width, height, mean) for _ in range(n_frames)),
                     width, height, metadata)


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
