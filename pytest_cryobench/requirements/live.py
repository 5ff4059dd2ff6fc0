"""CryoSPARC Live's per-movie preprocessing as a measurable kernel: cameras, one movie's stages,
and whether a number of preprocessing GPUs keeps up with a microscope.

A Live preprocessing worker holds one GPU and, for every movie the microscope writes, reads the
file, decompresses it to counts, uploads it, applies the gain reference and motion-corrects it
(then estimates the CTF, picks and extracts, which are not modelled here). Throughput scales
linearly with the preprocessing GPUs (CryoSPARC Live guide), so one movie's seconds on one GPU
say how many GPUs a collection rate needs (:func:`keeps_up`).

Stages of :func:`preprocess_movie`
----------------------------------
``read``
    The whole file into host memory (one ``read`` of the file; the page cache is not dropped here),
    after the project's header checks (:func:`pytest_cryobench.data.movies.check_tiff`, the MRC
    header against the file size), which stop a truncated movie before it is decoded.
``decompress``
    Host counts ``(F, H, W)``: LZW TIFF pages decoded on ``threads`` workers (as
    :func:`pytest_cryobench.data.movies.decode_tiff` does, but keeping the frames), EER hardware
    frames summed into fractions by :func:`pytest_cryobench.data.eer.decode_fractions`, MRC a view
    of the bytes read (header by :func:`pytest_cryobench.data.particles.mrc_stack_layout`).
``upload``
    Chunks of frames to the backend, in the file's dtype (for NumPy a view: about zero).
``gain``
    Each chunk to float32 times the gain reference.
``align``
    :class:`pytest_cryobench.kernels.motion.GlobalAligner`: pass 1 (binned spectra), the shift
    search, pass 2 (shifted sum) and the final inverse transform.

With CuPy the device is synchronised before every clock read, so each stage is charged for its
own GPU work.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.kernels import motion
from pytest_cryobench.kernels.array_api import synchronize
from pytest_cryobench.measure.timing import SubTimings

STAGES = ("read", "decompress", "upload", "gain", "align")


# -- cameras -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Camera:
    """A detector and the movies it writes.

    Attributes
    ----------
    name : str
        The name on the command line (a key of :data:`CAMERAS`).
    description : str
        The detector and mode in words.
    width, height : int
        Frame size written, pixels (super-resolution modes: the super-resolution grid).
    fmt : {"mrc", "tiff", "eer"}
        File format written (TIFF: LZW-compressed; EER: 7-bit event coding).
    frames : int
        Frames per movie (EER: output fractions).
    min_gpu_memory_gb : int
        The Live guide's minimum GPU memory for preprocessing this data type, GB.
    """

    name: str
    description: str
    width: int
    height: int
    fmt: str
    frames: int
    min_gpu_memory_gb: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


# Frames per movie: K3 super-resolution 70, K2 44 and Falcon 4 EER 48 fractions are the movies of
# CryoSPARC's benchmark data set; 40 for the other cameras is this project's assumption.
# GPU memory: CryoSPARC Live guide, "Minimum GPU Memory Requirements" (K2 and Falcon 3 8 GB+;
# K2 super-resolution, K3, K3 super-resolution, Falcon 4 and Falcon 4 EER 11 GB+).
CAMERAS: dict[str, Camera] = {c.name: c for c in (
    Camera("K2", "Gatan K2 (counting)", 3838, 3710, "mrc", 44, 8),
    Camera("K2-superres", "Gatan K2 super-resolution", 7676, 7420, "mrc", 40, 11),
    Camera("K3", "Gatan K3 (counting)", 5760, 4092, "tiff", 40, 11),
    Camera("K3-superres", "Gatan K3 super-resolution", 11520, 8184, "tiff", 70, 11),
    Camera("Falcon3", "Thermo Fisher Falcon 3", 4096, 4096, "mrc", 40, 8),
    Camera("Falcon4", "Thermo Fisher Falcon 4 (MRC)", 4096, 4096, "mrc", 40, 11),
    Camera("Falcon4-EER", "Thermo Fisher Falcon 4 EER", 4096, 4096, "eer", 48, 11),
)}


def _camera_key(name: str) -> str:
    return "-".join(str(name).strip().lower().replace("_", " ").replace("-", " ").split())


_CAMERA_KEYS = {_camera_key(name): camera for name, camera in CAMERAS.items()}


def camera(name: str) -> Camera:
    """The camera called ``name``: case-insensitive, ``_`` or spaces for ``-`` (``"k3 superres"``).

    Raises
    ------
    CryobenchError
        An unknown name; the message lists the known ones.
    """
    found = _CAMERA_KEYS.get(_camera_key(name))
    if found is None:
        raise CryobenchError(f"unknown camera {name!r}; known cameras: {', '.join(CAMERAS)}")
    return found


# -- keeping up ----------------------------------------------------------------------------------

class Throughput(NamedTuple):
    """What :func:`keeps_up` says: ``capacity`` in movies/hour and the verdict text."""

    capacity: float
    verdict: str


def keeps_up(seconds_per_movie: float, preprocessing_gpus: int, movies_per_hour: float) -> Throughput:
    """Whether ``preprocessing_gpus`` Live workers keep up with a collection rate.

    Parameters
    ----------
    seconds_per_movie : float
        One movie's preprocessing on one GPU, seconds (> 0).
    preprocessing_gpus : int
        Live's "Number of Preprocessing GPU Workers" (>= 1); throughput scales linearly.
    movies_per_hour : float
        The microscope's rate (>= 0).

    Returns
    -------
    Throughput
        ``capacity = preprocessing_gpus * 3600 / seconds_per_movie`` movies/hour, and
        ``"keeps up"`` when it is at least ``movies_per_hour``, else
        ``"falls behind by N movies/hour"`` (N the shortfall, rounded).
    """
    if not seconds_per_movie > 0 or not math.isfinite(seconds_per_movie):
        raise ValueError(f"seconds_per_movie must be a positive number, got {seconds_per_movie}")
    if int(preprocessing_gpus) != preprocessing_gpus or preprocessing_gpus < 1:
        raise ValueError(f"preprocessing_gpus must be a whole number >= 1, got {preprocessing_gpus}")
    if not movies_per_hour >= 0:
        raise ValueError(f"movies_per_hour must be >= 0, got {movies_per_hour}")
    capacity = int(preprocessing_gpus) * 3600.0 / float(seconds_per_movie)
    if capacity >= movies_per_hour:
        return Throughput(capacity, "keeps up")
    return Throughput(capacity, f"falls behind by {movies_per_hour - capacity:.0f} movies/hour")


# -- one movie -----------------------------------------------------------------------------------

@dataclasses.dataclass
class PreprocessResult:
    """One movie through :func:`preprocess_movie`.

    Attributes
    ----------
    times : dict of str to float
        Seconds per stage, keys :data:`STAGES`.
    shifts : numpy.ndarray, shape (F, 2), float64
        ``(y, x)`` frame displacements relative to their mean, pixels of the decoded frames (see
        :mod:`pytest_cryobench.kernels.motion` for the sign).
    aligned_sum : array, shape (H, W), float32
        The motion-corrected sum on the backend.
    shape : tuple of int
        ``(F, H, W)`` of the decoded movie.
    bytes_read : int
        Size of the file.
    iterations : int
        Shift-search iterations.
    """

    times: dict[str, float]
    shifts: np.ndarray
    aligned_sum: Any
    shape: tuple[int, int, int]
    bytes_read: int
    iterations: int

    @property
    def total(self) -> float:
        """Seconds over all stages."""
        return float(sum(self.times.values()))


def _read_file(path: Path) -> bytes:
    """The whole file as ``bytes`` (one object that tifffile, the EER reader and NumPy share uncopied)."""
    try:
        with open(path, "rb", buffering=0) as handle:
            return handle.readall()
    except OSError as exc:
        raise CryobenchError(f"{path}: cannot read this movie ({exc.strerror or exc})") from None


def _decode_tiff_frames(data: bytes, name: str, threads: int) -> np.ndarray:
    """All frames of a TIFF movie held in memory, ``(F, H, W)`` in the file's dtype, decoded page
    by page on ``threads`` workers (:func:`pytest_cryobench.data.movies.decode_tiff_pages`)."""
    from pytest_cryobench.data.movies import decode_tiff_pages, tiff_layout

    try:
        n_pages, shape, dtype = tiff_layout(data, name)
        out = np.empty((n_pages, *shape), dtype=dtype)
        decode_tiff_pages(data, n_pages, threads, lambda page, i: page.asarray(out=out[i], maxworkers=1))
    except CryobenchError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise CryobenchError(f"{name}: cannot decode this TIFF movie ({type(exc).__name__}: {exc}); "
                             "is the file truncated or damaged?") from None
    return out


def _decode(data: bytes, fmt: str, name: str, threads: int, mrc_layout: tuple | None,
            eer_fractions: int, eer_superres: int) -> np.ndarray:
    if fmt == "tiff":
        return _decode_tiff_frames(data, name, threads)
    if fmt == "eer":
        from pytest_cryobench.data.eer import decode_fractions

        try:
            return decode_fractions(data, eer_fractions, superres=eer_superres, threads=threads)
        except ValueError as exc:
            raise CryobenchError(f"{name}: {exc}") from None
    offset, shape, dtype = mrc_layout
    count = int(np.prod(shape))
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)


def preprocess_movie(path: str | Path, fmt: str, gain: Any, xp: ModuleType, *, threads: int | None = None,
                     eer_fractions: int | None = None, eer_superres: int = 0,
                     bin_to: int = motion.DEFAULT_BIN_TO, max_shift_px: float = motion.DEFAULT_MAX_SHIFT_PX,
                     bfactor: float = motion.DEFAULT_BFACTOR, chunk_frames: int | None = None,
                     iterations: int = motion.DEFAULT_ITERATIONS, keep_on_device: bool = True) -> PreprocessResult:
    """Read, decompress, upload, gain-correct and motion-correct one movie, timing each stage.

    Memory: the file's bytes and the decoded counts stay in host memory for the whole call (the
    project's decoders decode whole movies; a K3 super-resolution TIFF is 6.6 GB of uint8 counts).
    The device gets the counts chunk by chunk in their file dtype and holds, besides them (all of
    them when ``keep_on_device``, so that pass 2 does not upload again), one chunk as float32 with
    its spectra and the binned spectra (see :mod:`pytest_cryobench.kernels.motion`).

    Parameters
    ----------
    path : str or Path
        The movie.
    fmt : {"tiff", "mrc", "eer"}
        Its format.
    gain : array, shape (H, W), or None
        Gain reference multiplying every frame (host or backend; uploaded as float32 before the
        clock starts, as Live loads it once per session). ``None``: no multiply.
    xp : module
        ``numpy`` or ``cupy``.
    threads : int, optional
        Decoder threads (default: the CPUs this process may use).
    eer_fractions : int, optional
        EER: fractions to sum the hardware frames into (default 48, the benchmark data set's).
    eer_superres : {0, 1, 2}
        EER: decoding grid, ``2**eer_superres`` times finer than the physical pixels.
    bin_to, max_shift_px, bfactor, chunk_frames, iterations
        As :func:`pytest_cryobench.kernels.motion.align_frames`.
    keep_on_device : bool
        Keep the uploaded counts on the device for pass 2 (default) or upload them again.

    Returns
    -------
    PreprocessResult
        Stage seconds, shifts (pixels of the decoded frames), the aligned sum on ``xp``.

    Raises
    ------
    CryobenchError
        Unknown format; a missing, truncated or damaged file; a gain reference of another shape.
    """
    from pytest_cryobench.data.movies import FORMATS, usable_threads

    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise CryobenchError(f"unknown movie format {fmt!r}; known formats: {', '.join(FORMATS)}")
    path = Path(path)
    name = str(path)
    threads = usable_threads() if threads is None else max(1, int(threads))
    eer_fractions = CAMERAS["Falcon4-EER"].frames if eer_fractions is None else int(eer_fractions)
    gain_dev = None if gain is None else xp.asarray(gain, dtype=xp.float32)
    times = dict.fromkeys(STAGES, 0.0)
    clock = SubTimings(synchronize=lambda: synchronize(xp)).now  # device work counts where issued

    start_clock = clock()
    if not path.is_file():
        raise CryobenchError(f"{path}: movie file is missing (or not a regular file)")
    layout = None
    if fmt == "mrc":
        from pytest_cryobench.data.particles import mrc_stack_layout

        layout = mrc_stack_layout(path)  # header against the file size: a truncated file stops here
    elif fmt == "tiff":
        from pytest_cryobench.data.movies import check_tiff

        check_tiff(path)  # LZW, equal frames, no frame lost to truncation (tifffile only logs that)
    data = _read_file(path)
    now = clock()
    times["read"] = now - start_clock

    counts = _decode(data, fmt, name, threads, layout, eer_fractions, eer_superres)
    last = clock()
    times["decompress"] = last - now
    if counts.ndim != 3 or counts.shape[0] < 2:
        raise CryobenchError(f"{name}: a movie of shape {counts.shape}; motion correction needs 2 frames or more")
    n_frames, h, w = (int(v) for v in counts.shape)
    if gain_dev is not None and tuple(gain_dev.shape) != (h, w):
        raise CryobenchError(f"gain reference of shape {tuple(gain_dev.shape)} does not match the frames of "
                             f"{name} ({h} x {w}); for EER give it at the decoding grid (super-resolution "
                             f"{eer_superres})")
    chunk = int(chunk_frames) if chunk_frames else motion.default_chunk_frames(xp, (h, w), n_frames)
    aligner = motion.GlobalAligner(xp, n_frames, (h, w), bin_to=bin_to, max_shift_px=max_shift_px,
                                   bfactor=bfactor, iterations=iterations)
    starts = range(0, n_frames, chunk)
    on_device: dict[int, Any] = {}

    def run_pass(add) -> None:
        nonlocal last
        for start in starts:
            uploaded = on_device.get(start)
            if uploaded is None:
                uploaded = xp.asarray(counts[start:start + chunk])
                if keep_on_device:
                    on_device[start] = uploaded
            t = clock()
            times["upload"] += t - last
            block = uploaded.astype(xp.float32)  # always a copy: the counts may be read-only
            if gain_dev is not None:
                block *= gain_dev
            last = clock()
            times["gain"] += last - t
            add(block, start)
            del block
            t = clock()
            times["align"] += t - last
            last = t

    run_pass(aligner.add_for_search)
    aligner.solve()
    t = clock()
    times["align"] += t - last
    last = t
    run_pass(aligner.add_to_sum)
    on_device.clear()
    aligned = aligner.aligned_sum()
    times["align"] += clock() - last
    return PreprocessResult(times, aligner.shifts, aligned, (n_frames, h, w), len(data), aligner.iterations)
