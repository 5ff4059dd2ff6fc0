"""``movie_speed.py`` section 2: the CPU benchmark's decoders against bare library loops.

On copies in ``/dev/shm``, with the same thread count on both sides:

* ``movies.decode_tiff(path, threads)`` against ``page.asarray(maxworkers=threads)`` for each
  page and nothing else (judged: harness time <= 1.05x) and against
  ``tifffile.imread(path, maxworkers=threads)`` of the whole stack (shown, not judged);
* ``eer.decode_fractions(path, k, superres=0, threads=t, out=<zeroed>)`` against a loop of
  ``imagecodecs.eer_decode(strip, shape, 7, 2, 2, superres=0, out=fraction)`` over the frames,
  strips located with tifffile beforehand, on the same thread-pool layout (one task per
  fraction) (judged: harness time <= 1.05x).

Known answers are checked outside the timings; a decoder that raises fails its figure. The
share of the machine's CPU that other processes used during each timing is recorded.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import mmap
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import psutil
import tifffile

from benchlib.figures import median_or_none, paired_ratio, ratio_or_none, verdict_text
from pytest_cryobench.data import eer, movies, provision
from pytest_cryobench.measure.fsutil import copy_file, free_bytes, human_bytes
from pytest_cryobench.plugin.session import DATA_SEED
from pytest_cryobench.profiles import Profile

MB = 1e6
# The harness may take at most this much longer than the bare decode loop.
DECODE_TARGET = 1.05
# A timing during which other processes used more than this share of the CPUs is flagged.
BUSY_ELSEWHERE_LIMIT = 0.05
BUSY_MIN_WALL_S = 0.5  # shorter timings are not judged for it
DECODE_FORMATS = ("tiff", "eer")  # in the order the benchmarks run them
EER_CODING = (7, 2, 2)  # compression 65001, what the generator writes


@dataclasses.dataclass
class Timed:
    """Wall and process CPU seconds (all threads) of one side, per repeat; per-movie walls."""

    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)
    per_movie: list[list[float]] = dataclasses.field(default_factory=list)
    # Share of the machine's CPU time that went to other processes (and the hypervisor) meanwhile.
    elsewhere: list[float] = dataclasses.field(default_factory=list)
    # Runs that raised (a decoder error, or totals other than the generator wrote): not timed.
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def wall_median(self) -> float | None:
        return median_or_none(self.wall)

    @property
    def cpu_median(self) -> float | None:
        return median_or_none(self.cpu)


@dataclasses.dataclass
class DecodeFigure:
    """The harness's decode time against a bare loop's, one format and thread count.

    ``ratio`` is harness time / reference time (lower is better); judged figures need
    ``ratio <= DECODE_TARGET``. Figures of one format and thread count share ``harness``.
    """

    fmt: str
    threads: int
    reference_name: str
    decoded_bytes: int
    judged: bool = True
    harness: Timed = dataclasses.field(default_factory=Timed)
    reference: Timed = dataclasses.field(default_factory=Timed)

    @property
    def failed_runs(self) -> int:
        return len(self.harness.errors) + len(self.reference.errors)

    @property
    def ratio(self) -> float | None:
        return ratio_or_none(self.harness.wall_median, self.reference.wall_median)

    @property
    def paired_ratio(self) -> float | None:
        if self.failed_runs or not self.reference.wall:
            return None
        return paired_ratio(self.harness.wall, self.reference.wall)

    @property
    def cpu_ratio(self) -> float | None:
        return ratio_or_none(self.harness.cpu_median, self.reference.cpu_median)

    @property
    def passed(self) -> bool | None:
        if not self.judged:
            return None
        if self.failed_runs:
            return False  # a decoder that raises or decodes wrongly fails whatever its speed
        return None if self.ratio is None else self.ratio <= DECODE_TARGET

    @property
    def verdict(self) -> str:
        if self.judged and self.failed_runs:
            return f"FAIL ({self.failed_runs} run(s) raised)"
        return verdict_text(self.judged, self.ratio, self.passed)

    def as_dict(self) -> dict[str, object]:
        def side(t: Timed) -> dict[str, object]:
            return {"wall_s": t.wall_median, "cpu_s": t.cpu_median,
                    "mb_per_s": self.decoded_bytes / t.wall_median / MB if t.wall else None,
                    "samples_wall_s": t.wall, "samples_cpu_s": t.cpu, "samples_per_movie_s": t.per_movie,
                    "samples_busy_elsewhere": t.elsewhere, "errors": t.errors}

        return {"format": self.fmt, "threads": self.threads, "reference": self.reference_name,
                "judged": self.judged, "decoded_bytes": self.decoded_bytes, "harness": side(self.harness),
                "bare": side(self.reference), "ratio": self.ratio, "paired_ratio": self.paired_ratio,
                "cpu_ratio": self.cpu_ratio, "target": DECODE_TARGET, "passed": self.passed}


# One movie's decode: run(path) -> None, with untimed work before it.
MovieRun = Callable[[Path], object]


@dataclasses.dataclass
class MovieTimes:
    """One side's run over the movies: wall and own CPU seconds, and the machine's busy CPU seconds,
    all summed over the timed decodes only; the wall seconds of each movie."""

    wall: float = 0.0
    cpu: float = 0.0
    busy: float = 0.0
    per_movie: list[float] = dataclasses.field(default_factory=list)


def system_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all CPUs; steal included: the host took them)."""
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def time_movies(paths: Sequence[Path], run: MovieRun, before: Callable[[Path], None] = lambda p: None,
                after: Callable[[Path, object], None] = lambda p, r: None) -> MovieTimes:
    """``run`` over the movies, timed; ``before``/``after`` (clearing, known-answer checks) are not."""
    times = MovieTimes()
    for path in paths:
        before(path)
        b0, w0, c0 = system_busy_s(), time.perf_counter(), time.process_time()
        result = run(path)
        dw, dc, db = time.perf_counter() - w0, time.process_time() - c0, system_busy_s() - b0
        after(path, result)
        del result  # one decoded movie at a time
        times.wall += dw
        times.cpu += dc
        times.busy += db
        times.per_movie.append(dw)
    return times


def bare_tiff_pages(path: Path, threads: int) -> None:
    """Each page decoded by tifffile with ``threads`` workers, and nothing else."""
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            page.asarray(maxworkers=threads)


def bare_tiff_imread(path: Path, threads: int) -> None:
    """The whole stack at once (tifffile decodes pages in parallel); returns nothing."""
    tifffile.imread(path, maxworkers=threads)


def eer_strips(path: Path) -> list[tuple[int, int]]:
    """``(offset, byte count)`` of each hardware frame's strip, from tifffile (untimed)."""
    with tifffile.TiffFile(path) as tif:
        strips = []
        for j, page in enumerate(tif.pages):
            if int(page.compression) != eer.COMPRESSION_EER_7BIT or len(page.dataoffsets) != 1:
                raise RuntimeError(f"{path}: frame {j} is not one 7-bit EER strip")
            strips.append((int(page.dataoffsets[0]), int(page.databytecounts[0])))
    return strips


def bare_eer(path: Path, strips: Sequence[tuple[int, int]], shape: tuple[int, int], threads: int,
             out: np.ndarray) -> None:
    """``imagecodecs.eer_decode`` of every frame into its fraction of ``out`` (zeroed by the caller).

    The file is memory-mapped as the harness maps it; the work is laid out as in
    ``eer.decode_fractions``: one task per fraction on ``min(threads, fractions)`` threads.
    """
    bounds = eer.fraction_bounds(len(strips), len(out))
    fd = os.open(path, os.O_RDONLY)
    try:
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    view = memoryview(mapped)

    def fraction(i: int) -> None:
        target = out[i]
        for j in range(*bounds[i]):
            offset, count = strips[j]
            imagecodecs.eer_decode(view[offset:offset + count], shape, *EER_CODING, superres=0, out=target)

    try:
        if threads == 1:
            for i in range(len(out)):
                fraction(i)
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(threads, len(out))) as pool:
                for future in [pool.submit(fraction, i) for i in range(len(out))]:
                    future.result()
    finally:
        view.release()
        mapped.close()


def expected_fraction_totals(truth: dict, n_fractions: int) -> list[int]:
    counts = truth["frame_events"]
    return [sum(counts[a:b]) for a, b in eer.fraction_bounds(len(counts), n_fractions)]


# One side of a decode comparison: label, timed run over all movies, where its samples go.
DecodeSide = tuple[str, Callable[[], MovieTimes], Timed]


def tiff_decode_sides(copies: Sequence[Path], truth: dict[str, dict], threads: int, decoded: int
                      ) -> tuple[list[DecodeFigure], list[DecodeSide]]:
    judged = DecodeFigure("tiff", threads, "bare page.asarray loop", decoded)
    imread = DecodeFigure("tiff", threads, "tifffile.imread (stack)", decoded, judged=False, harness=judged.harness)

    def check(path: Path, result: object) -> None:
        sums, _ = result
        if sums.tolist() != truth[path.name]["frame_sums"]:
            raise RuntimeError(f"{path}: decode_tiff found other frame totals than the generator wrote")

    sides: list[DecodeSide] = [
        ("harness decode_tiff", lambda: time_movies(copies, lambda p: movies.decode_tiff(p, threads), after=check),
         judged.harness),
        ("bare page.asarray", lambda: time_movies(copies, lambda p: bare_tiff_pages(p, threads)), judged.reference),
        ("tifffile.imread", lambda: time_movies(copies, lambda p: bare_tiff_imread(p, threads)), imread.reference),
    ]
    return [judged, imread], sides


def eer_decode_sides(copies: Sequence[Path], truth: dict[str, dict], threads: int, n_fractions: int,
                     out: np.ndarray, strips: dict[Path, list[tuple[int, int]]], decoded: int,
                     verify: list[bool]) -> tuple[list[DecodeFigure], list[DecodeSide]]:
    judged = DecodeFigure("eer", threads, "bare eer_decode loop", decoded)
    shape = out.shape[1:]

    def clear(path: Path) -> None:
        out.fill(0)

    def check(path: Path, result: object) -> None:
        if not verify[0]:  # summing 1.3 GB per movie: checked in the first repeat only
            return
        got = out.reshape(len(out), -1).sum(axis=1, dtype=np.int64).tolist()
        if got != expected_fraction_totals(truth[path.name], n_fractions):
            raise RuntimeError(f"{path}: decoded fraction totals differ from the events the generator wrote")

    def harness(path: Path) -> None:
        eer.decode_fractions(path, n_fractions, superres=0, threads=threads, out=out)

    sides: list[DecodeSide] = [
        ("harness decode_fractions", lambda: time_movies(copies, harness, before=clear, after=check),
         judged.harness),
        ("bare eer_decode", lambda: time_movies(
            copies, lambda p: bare_eer(p, strips[p], shape, threads, out), before=clear, after=check),
         judged.reference),
    ]
    return [judged], sides


def eer_parse_seconds(copies: Sequence[Path]) -> float:
    """Info: seconds the harness spends opening and checking the containers (``open_eer``), all movies."""
    start = time.perf_counter()
    for path in copies:
        with eer.open_eer(path) as frames:
            len(frames)
    return time.perf_counter() - start


def decode_round(repeat: int, sides: Sequence[DecodeSide], what: str) -> None:
    """Every side once, who goes first rotating with the repeat; notes CPU used elsewhere meanwhile."""
    k = repeat % len(sides)
    online = psutil.cpu_count() or 1
    for label, run, samples in [*sides[k:], *sides[:k]]:
        try:
            t = run()
        except Exception as exc:  # the figure fails; the other sides and figures go on
            samples.errors.append(f"{type(exc).__name__}: {exc}")
            print(f"  [{repeat + 1}] {what:<10} {label:<26} ERROR {type(exc).__name__}: {exc}", flush=True)
            continue
        samples.wall.append(t.wall)
        samples.cpu.append(t.cpu)
        samples.per_movie.append(t.per_movie)
        if t.wall >= BUSY_MIN_WALL_S:  # /proc/stat counts in ticks of 10 ms
            elsewhere = max(0.0, t.busy - t.cpu) / (t.wall * online)
            samples.elsewhere.append(elsewhere)
            flag = "  WARNING: other work on the machine" if elsewhere > BUSY_ELSEWHERE_LIMIT else ""
            shown = f"{elsewhere:5.1%}{flag}"
        else:
            shown = "n/a (too short to tell)"
        print(f"  [{repeat + 1}] {what:<10} {label:<26} {t.wall:8.3f} s  cpu {t.cpu:8.3f} s  "
              f"busy elsewhere {shown}", flush=True)


def section_decode(profile: Profile, data_root: Path, repeats: int, thread_counts: Sequence[int]
                   ) -> tuple[list[DecodeFigure], dict[str, float]]:
    """Harness decoders against bare loops on /dev/shm copies; returns the figures and info."""
    print("\n2. decode overhead (copies in /dev/shm; medians of the summed time over the movies):", flush=True)
    figures: list[DecodeFigure] = []
    info: dict[str, float] = {}
    shm = Path(tempfile.mkdtemp(prefix="cryobench-movie-speed-", dir="/dev/shm"))
    try:
        for fmt in DECODE_FORMATS:
            component = movies.movie_component(fmt, profile, DATA_SEED)
            entry = provision.ensure(data_root, component, DATA_SEED, say=provision.stderr_say)
            files = [data_root / name for name in component.files]
            truth = {Path(name).name: entry["truth"][name] for name in component.files}
            need = sum(p.stat().st_size for p in files)
            if free_bytes(shm) < need * 1.05:
                raise SystemExit(f"/dev/shm: needs {human_bytes(need)} free for the {fmt} copies")
            copies = [shm / p.name for p in files]
            for src, dst in zip(files, copies, strict=True):
                copy_file(src, dst)
            shapes = [movies.CHECKS[fmt](p) for p in copies]  # (frames, height, width)
            fig_sides: list[tuple[list[DecodeFigure], list[DecodeSide]]] = []
            out = None
            verify = [True]
            if fmt == "tiff":
                decoded = sum(n * h * w for n, h, w in shapes)
                for threads in thread_counts:
                    fig_sides.append(tiff_decode_sides(copies, truth, threads, decoded))
            else:
                k = profile.eer.fractions
                (_, h, w), = set(shapes)
                out = np.zeros((k, h, w), dtype=np.uint16)
                out.fill(0)  # touched before any timing
                strips = {p: eer_strips(p) for p in copies}
                decoded = len(copies) * k * h * w * 2
                for threads in thread_counts:
                    fig_sides.append(eer_decode_sides(copies, truth, threads, k, out, strips, decoded, verify))
                print(f"  eer: {k} fractions of {w}x{h} uint16 per movie, into one buffer allocated beforehand")
            # Warm-up (untimed): imports, first allocations, the copies' pages mapped once.
            for _, sides in fig_sides[-1:]:
                for label, run, _ in sides:
                    try:
                        run()
                    except Exception as exc:  # the timed rounds record it against the figure
                        print(f"  warm-up: {label} raised {type(exc).__name__}: {exc}", flush=True)
            for repeat in range(repeats):
                for (_, sides), threads in zip(fig_sides, thread_counts, strict=True):
                    decode_round(repeat, sides, f"{fmt} t={threads}")
                verify[0] = False
            for figs, _ in fig_sides:
                figures.extend(figs)
            if fmt == "eer":
                info["eer_open_check_s"] = statistics.median(eer_parse_seconds(copies) for _ in range(max(3, repeats)))
            del out
            for path in copies:
                path.unlink()
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    return figures, info

