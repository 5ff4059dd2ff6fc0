"""EER movies written by the project: the 7-bit event encoder and a BigTIFF writer.

The format (codes, sub-pixel symbols, the metadata tag) is described in
:mod:`pytest_cryobench.data.eer`, whose decoder, and the decoders of imagecodecs and tifffile,
read what this module writes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from pytest_cryobench.data.eer import (
    COMPRESSION_EER_7BIT,
    EVENT_BITS,
    FALCON4_FRAME_RATE,
    GUARD_BYTES,
    OVERFLOW,
    SKIP_BITS,
    TAG_ACQUISITION_METADATA,
)

_RAMP16 = np.arange(1 << 16, dtype=np.uint16)
_PACK_BLOCK = 16384  # codes packed per block

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
