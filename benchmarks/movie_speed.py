#!/usr/bin/env python3
"""Check that the movie benchmarks measure the machine and not themselves.

On the synthetic movies of a profile, three sections:

1. **generation**: ``provision.ensure`` of each format's movie component (TIFF, MRC, EER) into
   a fresh data root, timed from the outside; MB/s of file bytes written (into the page cache:
   the generator does not fsync), beside the rate the manifest records. Not judged.
2. **decode overhead**: on copies in ``/dev/shm``, the CPU benchmark's decoders against bare
   loops over the same library calls with the same thread count:

   * ``movies.decode_tiff(path, threads)`` against ``page.asarray(maxworkers=threads)`` for
     each page and nothing else (judged: harness time <= 1.05x) and against
     ``tifffile.imread(path, maxworkers=threads)`` of the whole stack (shown, not judged);
   * ``eer.decode_fractions(path, k, superres=0, threads=t, out=<zeroed>)`` against a loop of
     ``imagecodecs.eer_decode(strip, shape, 7, 2, 2, superres=0, out=fraction)`` over the
     frames, strips located with tifffile beforehand, on the same thread-pool layout (one task
     per fraction) (judged: harness time <= 1.05x).

   Each at one thread and at every usable core, with the multi-core speedup of each side.
3. **cold sequential reads**: ``movies.read_whole_file`` of a format's movies one after
   another (as the ``fs`` benchmark reads them) after fadvise eviction, against one fio job
   reading the same files one after another,
   ``fio --rw=read --bs=16M --ioengine=psync --direct=0 --invalidate=1
   --file_service_type=sequential`` (judged: harness MB/s >= 0.9x fio's).

Who runs first rotates with the repeat; medians over ``--repeats`` are reported, and the
residency of the files is measured (mincore) before every timed cold read.

This is a developer tool; fio is not a dependency of the project. It reuses the machine
description, cache control and fio helpers of ``fs_speed.py`` (imported from beside it).

Examples
--------
::

    python3 benchmarks/movie_speed.py --profile smoke --repeats 1
    python3 benchmarks/movie_speed.py --profile standard --repeats 3 --json standard.json
    python3 benchmarks/movie_speed.py --data-dir /scratch/mv --keep --sections decode
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import mmap
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import psutil
import tifffile

# fs_speed.py lies beside this script (the script's directory is on sys.path when it runs).
from fs_speed import (
    TARGET_RATIO,
    Figure,
    Log,
    Side,
    _fio_runner,
    evict,
    filesystem_description,
    fio_file_options,
    machine_info,
    measure_round,
    print_table,
)

from pytest_cryobench.data import eer, movies, provision
from pytest_cryobench.measure.fsutil import copy_file, free_bytes, human_bytes
from pytest_cryobench.plugin.session import DATA_SEED
from pytest_cryobench.profiles import PROFILES, Profile

MB = 1e6
# Section 2: the harness may take at most this much longer than the bare decode loop.
DECODE_TARGET = 1.05
# Section 2: a timing during which other processes used more than this share of the CPUs is flagged.
BUSY_ELSEWHERE_LIMIT = 0.05
BUSY_MIN_WALL_S = 0.5  # shorter timings are not judged for it
# Section 3: the harness's block size (movies.READ_BLOCK) is fio's.
FIO_BS = movies.READ_BLOCK
PROFILE_CHOICES = ("smoke", "standard")
SECTIONS = ("generate", "decode", "read")
# Formats in the order the benchmarks run them.
READ_FORMATS = ("tiff", "eer", "mrc")
DECODE_FORMATS = ("tiff", "eer")
EER_CODING = (7, 2, 2)  # compression 65001, what the generator writes


def load() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def frame_shape(fmt: str, path: Path) -> tuple[int, int, int]:
    """``(frames, height, width)`` of a movie (hardware frames for EER)."""
    return movies.CHECKS[fmt](path)


# --------------------------------------------------------------------------- 1. generation

@dataclasses.dataclass
class GenerationFigure:
    """Generation of one format's component, per repeat."""

    fmt: str
    files: int = 0
    frames: int = 0
    bytes_written: list[int] = dataclasses.field(default_factory=list)
    wall_s: list[float] = dataclasses.field(default_factory=list)
    manifest_s: list[float] = dataclasses.field(default_factory=list)
    manifest_mb_s: list[float] = dataclasses.field(default_factory=list)
    sha256_s: list[float] = dataclasses.field(default_factory=list)

    @property
    def mb_s(self) -> float:
        return statistics.median(b / t / MB for b, t in zip(self.bytes_written, self.wall_s, strict=True))

    def as_dict(self) -> dict[str, object]:
        return {"format": self.fmt, "files": self.files, "frames": self.frames,
                "bytes_written": statistics.median(self.bytes_written), "wall_s": statistics.median(self.wall_s),
                "mb_s": self.mb_s, "manifest_generation_seconds": statistics.median(self.manifest_s),
                "manifest_generation_rate_MBps": statistics.median(self.manifest_mb_s),
                "sha256_rehash_s": statistics.median(self.sha256_s), "samples_wall_s": self.wall_s,
                "samples_bytes": self.bytes_written}


def has_data(root: Path) -> bool:
    return (root / provision.MANIFEST_NAME).exists()


def generate_once(root: Path, profile: Profile, figures: dict[str, GenerationFigure], repeat: int) -> None:
    """One timed ``ensure`` per format into ``root`` (which must hold no data yet)."""
    if has_data(root):
        raise RuntimeError(f"{root}: not a fresh data root")
    for fmt in movies.FORMATS:
        component = movies.movie_component(fmt, profile, DATA_SEED)
        os.sync()  # the previous format's writeback does not run into this one's timing
        start = time.perf_counter()
        entry = provision.ensure(root, component, DATA_SEED, say=provision.stderr_say)
        wall = time.perf_counter() - start
        paths = [root / name for name in component.files]
        nbytes = sum(record["size"] for record in entry["files"].values())
        start = time.perf_counter()
        for path in paths:  # what hashing costs inside ensure (warm: the files were just written)
            provision.sha256_of(path)
        hashing = time.perf_counter() - start
        fig = figures[fmt]
        fig.files = len(paths)
        fig.frames = sum(frame_shape(fmt, p)[0] for p in paths)
        fig.bytes_written.append(nbytes)
        fig.wall_s.append(wall)
        fig.manifest_s.append(entry["generation_seconds"])
        fig.manifest_mb_s.append(entry["generation_rate_MBps"])
        fig.sha256_s.append(hashing)
        print(f"  [{repeat + 1}] {fmt:<4} {human_bytes(nbytes):>9} in {wall:7.2f} s = {nbytes / wall / MB:7.1f} MB/s "
              f"(manifest: {entry['generation_rate_MBps']:.1f} MB/s in {entry['generation_seconds']:.2f} s; "
              f"SHA-256 re-hash {hashing:.2f} s)  load {load()}", flush=True)


def section_generate(profile: Profile, data_root: Path, work: Path, repeats: int) -> list[GenerationFigure]:
    """Time generation ``repeats`` times, each into a fresh root.

    The first repeat generates the data root the other sections use when it holds no data yet;
    the other repeats (and all of them when it does) go to a scratch root removed afterwards.
    """
    figures = {fmt: GenerationFigure(fmt) for fmt in movies.FORMATS}
    print(f"\n1. generation (provision.ensure into a fresh data root; seed {DATA_SEED}; no fsync):", flush=True)
    for repeat in range(repeats):
        if repeat == 0 and not has_data(data_root):
            root, scratch = data_root, None
        else:
            scratch = work / f"generation-{repeat}"
            root = scratch / data_root.name
        try:
            generate_once(root, profile, figures, repeat)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    return list(figures.values())


def print_generation(figures: Sequence[GenerationFigure], repeats: int) -> None:
    header = ("format", "files", "frames", "written", "wall s", "MB/s written", "manifest s", "manifest MB/s",
              "SHA-256 s", "frames/s", "target", "result")
    rows = [header]
    for f in figures:
        wall = statistics.median(f.wall_s)
        rows.append((f.fmt, str(f.files), str(f.frames), human_bytes(statistics.median(f.bytes_written)),
                     f"{wall:.2f}", f"{f.mb_s:.1f}", f"{statistics.median(f.manifest_s):.2f}",
                     f"{statistics.median(f.manifest_mb_s):.1f}", f"{statistics.median(f.sha256_s):.2f}",
                     f"{f.frames / wall:.1f}", "-", "info"))
    _print_rows(rows)
    print(f"  median of {repeats}; wall s = ensure() timed from the outside (lock, free-space check, generation, "
          "SHA-256 of every file, manifest); MB/s written = file bytes / wall s (into the page cache, no fsync); "
          "manifest = the entry's generation_seconds / generation_rate_MBps; SHA-256 s = a warm re-hash of the "
          "files, the share of the wall time that hashing takes; frames = hardware frames for EER")


# --------------------------------------------------------------------------- 2. decode overhead

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
        return statistics.median(self.wall) if self.wall else None

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None


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
        h, r = self.harness.wall_median, self.reference.wall_median
        return h / r if h and r else None

    @property
    def paired_ratio(self) -> float | None:
        if self.failed_runs or not self.reference.wall:
            return None
        return statistics.median(h / r for h, r in zip(self.harness.wall, self.reference.wall, strict=True))

    @property
    def cpu_ratio(self) -> float | None:
        h, r = self.harness.cpu_median, self.reference.cpu_median
        return h / r if h and r else None

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
        if self.ratio is None:
            return "no reference"
        if not self.judged:
            return "info"
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, object]:
        def side(t: Timed) -> dict[str, object]:
            return {"wall_s": t.wall_median, "cpu_s": t.cpu_median,
                    "mb_s": self.decoded_bytes / t.wall_median / MB if t.wall else None,
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
            shapes = [frame_shape(fmt, p) for p in copies]
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


def print_decode(figures: Sequence[DecodeFigure], info: dict[str, float], repeats: int) -> None:
    header = ("format", "threads", "reference (bare)", "harness s", "harness MB/s", "bare s", "bare MB/s",
              "ratio", "paired ratio", "harness CPU s", "bare CPU s", "CPU ratio", "busy elsewhere", "target",
              "result")
    rows = [header]
    for f in figures:
        h, r = f.harness, f.reference
        busy = h.elsewhere + r.elsewhere
        rows.append((f.fmt, str(f.threads), f.reference_name, _fmt3(h.wall_median),
                     _rate(f.decoded_bytes, h.wall_median), _fmt3(r.wall_median), _rate(f.decoded_bytes, r.wall_median),
                     _fmt3(f.ratio), _fmt3(f.paired_ratio), _fmt3(h.cpu_median), _fmt3(r.cpu_median),
                     _fmt3(f.cpu_ratio), f"max {max(busy):.0%}" if busy else "n/a",
                     f"<= {DECODE_TARGET}" if f.judged else "-", f.verdict))
    _print_rows(rows)
    print(f"  median of {repeats}; s = wall seconds to decode all the movies of the format (summed per movie); "
          "MB/s = decoded pixels / s (TIFF: frames*H*W uint8; EER: fractions*H*W uint16); ratio = harness median "
          "s / bare median s (lower is better); paired ratio = median of per-repeat ratios; CPU s = process CPU "
          "time (all threads), less sensitive to other work on the machine than wall time; busy elsewhere = the "
          "largest share of the machine's CPU time that other processes (or the hypervisor, as steal) used "
          f"during one of the figure's timings: above {BUSY_ELSEWHERE_LIMIT:.0%} its wall times are disturbed; "
          "re-run the section (--sections decode) on a quiet machine")
    for f in figures:
        for side, t in (("harness", f.harness), (f.reference_name, f.reference)):
            if t.errors and (side != "harness" or f.judged):  # a harness's errors once, with its judged figure
                print(f"  {f.fmt} t={f.threads} {side}: {len(t.errors)} run(s) raised, first: {t.errors[0]}")
    if "eer_open_check_s" in info:
        print(f"  eer: opening and checking the containers (eer.open_eer, tifffile parse of every IFD) takes "
              f"{info['eer_open_check_s']:.3f} s for all movies; the bare loop gets its strip offsets beforehand")
    speed_rows = [("format", "side", *[f"t={t} s" for t in _threads_of(figures)], "speedup t1/t_all")]
    for fmt in DECODE_FORMATS:
        figs = [f for f in figures if f.fmt == fmt]
        if not figs:
            continue
        by_side: dict[str, list[float | None]] = {}
        for f in figs:
            if f.judged:
                by_side.setdefault("harness", []).append(f.harness.wall_median)
            by_side.setdefault(f.reference_name, []).append(f.reference.wall_median)
        for side, walls in by_side.items():
            speedup = walls[0] / walls[-1] if len(walls) > 1 and walls[0] and walls[-1] else None
            speed_rows.append((fmt, side, *[_fmt3(w) for w in walls], _fmt3(speedup)))
    print("\n  multi-core speedup (wall s, medians):")
    _print_rows(speed_rows, indent="  ")


def _threads_of(figures: Sequence[DecodeFigure]) -> list[int]:
    return sorted({f.threads for f in figures})


def _rate(nbytes: int, seconds: float | None) -> str:
    return "n/a" if not seconds else f"{nbytes / seconds / MB:.1f}"


def _fmt3(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_rows(rows: Sequence[Sequence[str]], indent: str = "") -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print(indent + "  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------- 3. cold reads

def fio_movie_job(fmt: str, files: Sequence[Path], link_dir: Path) -> list[str]:
    """One fio job reading ``files`` one after another in 16 MiB reads, like the harness."""
    return [f"--name=movies-{fmt}", "--rw=read", f"--bs={FIO_BS}", "--ioengine=psync", "--iodepth=1",
            "--numjobs=1", "--direct=0", "--invalidate=1", "--file_service_type=sequential",
            "--allow_file_create=0", *fio_file_options(files, link_dir), "--output-format=json"]


def describe_fio(fmt: str, files: Sequence[Path], link_dir: Path, extra: Sequence[str] = ()) -> str:
    shown = []
    for arg in [*fio_movie_job(fmt, files, link_dir), *extra]:
        if arg.startswith(("--directory=", "--output-format=")):
            continue
        if arg.startswith("--filename="):
            arg = f"--filename=<hard links to the {len(files)} movies, ':'-separated, in order>"
        shown.append(arg)
    return "fio " + " ".join(shown)


def harness_movie_read(files: Sequence[Path], buffer: bytearray, per_file: list[list[float]]) -> Callable[[], float]:
    """``read_whole_file`` of each movie in turn, as ``bench_fs_movies`` times a round; MB/s."""
    sizes = [os.stat(p).st_size for p in files]

    def run() -> float:
        times = []
        start = time.perf_counter()
        for path, size in zip(files, sizes, strict=True):
            t0 = time.perf_counter()
            got = movies.read_whole_file(path, buffer)
            times.append(time.perf_counter() - t0)
            if got != size:
                raise RuntimeError(f"{path}: read {got} of {size} bytes")
        elapsed = time.perf_counter() - start
        per_file.append(times)
        return sum(sizes) / elapsed / MB

    return run


def section_read(profile: Profile, data_root: Path, work: Path, fio: str | None, repeats: int, log: Log
                 ) -> tuple[list[Figure], dict[str, dict[str, object]]]:
    print("\n3. cold sequential movie reads (residency measured with mincore after fadvise eviction):", flush=True)
    figures: list[Figure] = []
    details: dict[str, dict[str, object]] = {}
    os.sync()  # the generator's writeback is over before any timing
    for fmt in READ_FORMATS:
        component = movies.movie_component(fmt, profile, DATA_SEED)
        provision.ensure(data_root, component, DATA_SEED, say=provision.stderr_say)
        files = [data_root / name for name in component.files]
        sizes = [p.stat().st_size for p in files]
        buffer = bytearray(max(sizes))  # zero-filled, hence touched, as in bench_fs_movies
        link_dir = work / f"fio-names-{fmt}"
        per_file: list[list[float]] = []
        name = f"{fmt} cold read"
        judged = Figure(name, "fio read", describe_fio(fmt, files, link_dir))
        sides: list[Side] = [(f"harness {name}", harness_movie_read(files, buffer, per_file), judged.harness)]
        figs = [judged]
        fio_bytes = sum(s // FIO_BS * FIO_BS for s in sizes)
        use_fio = fio if min(sizes) >= FIO_BS else None
        if fio and not use_fio:
            print(f"  {fmt}: a movie is smaller than one {FIO_BS >> 20} MiB block, which fio refuses: no reference")
        if use_fio:
            no_hint = ["--fadvise_hint=0"]
            plain = Figure(name, "fio read, no hint", describe_fio(fmt, files, link_dir, no_hint), judged=False,
                           harness=judged.harness)
            figs.append(plain)
            sides += [(f"fio {name}", _fio_runner([fio, *fio_movie_job(fmt, files, link_dir)], fio_bytes, name),
                       judged.reference),
                      (f"fio {name} no hint",
                       _fio_runner([fio, *fio_movie_job(fmt, files, link_dir), *no_hint], fio_bytes, name),
                       plain.reference)]
        for repeat in range(repeats):
            measure_round(repeat, log, files, sides)
        warm = warm_reads(files, buffer, use_fio, fmt, link_dir, fio_bytes)
        figures.extend(figs)
        details[fmt] = {"files": len(files), "bytes": sum(sizes), "fio_bytes": fio_bytes,
                        "harness_per_file_s": per_file, "warm": warm}
        evict(files)
        shutil.rmtree(link_dir, ignore_errors=True)
    return figures, details


def warm_reads(files: Sequence[Path], buffer: bytearray, fio: str | None, fmt: str, link_dir: Path,
               fio_bytes: int) -> dict[str, float]:
    """Diagnostic: both sides from a warm page cache (their CPU-bound ceilings), MB/s."""
    run = harness_movie_read(files, buffer, [])
    run()  # warms the cache
    out = {"harness_mb_s": run()}
    if fio:
        argv = [fio, *fio_movie_job(fmt, files, link_dir), "--invalidate=0"]
        out["fio_mb_s"] = _fio_runner(argv, fio_bytes, f"{fmt} warm")()
    return out


def print_read(figures: Sequence[Figure], details: dict[str, dict[str, object]], log: Log, repeats: int) -> None:
    print_table(figures)
    print(f"  median of {repeats}; harness MB/s = all the format's file bytes / the time of the round; fio's "
          f"rate is its read.bw_bytes. fio issues only whole {FIO_BS >> 20} MiB reads, so it skips each file's "
          "last partial block:")
    for fmt, d in details.items():
        warm = d["warm"]
        fio_warm = f", fio {warm['fio_mb_s']:.1f} MB/s" if "fio_mb_s" in warm else ""
        print(f"  {fmt}: {d['files']} files, {human_bytes(d['bytes'])}; fio reads {human_bytes(d['fio_bytes'])} "
              f"({d['fio_bytes'] / d['bytes']:.1%}); warm cache: harness {warm['harness_mb_s']:.1f} MB/s{fio_warm}")
    measured = [e["residency"] for e in log.entries if e["residency"] is not None]
    if measured:
        worst = max(measured)
        print(f"  residency before the {len(measured)} timed reads: at most {worst:.2%} "
              f"({'all cold' if worst <= 0.02 else 'WARNING: some reads were not cold'})")


# --------------------------------------------------------------------------- main

def describe_machine(data_dir: Path, fio: str | None) -> dict[str, object]:
    info = machine_info(data_dir, fio)
    info.pop("cp", None)
    info["usable_cores"] = movies.usable_threads()
    info["shm"] = " ".join(dict.fromkeys(filesystem_description(Path("/dev/shm")).split()))  # stacked mounts
    info["libraries"] = (f"numpy {np.__version__}, tifffile {tifffile.__version__}, "
                         f"imagecodecs {imagecodecs.__version__}")
    info["load_at_start"] = load()
    return info


def print_machine(info: dict[str, object], profile: Profile, repeats: int) -> None:
    print("machine:")
    for key, value in info.items():
        print(f"  {key:<14} {value}")
    t, m, e = profile.tiff, profile.mrc, profile.eer
    print(f"profile: {profile.name}: TIFF {t.n_movies}x {t.width}x{t.height}x{t.frames} uint8 LZW; "
          f"MRC {m.n_movies}x {m.width}x{m.height}x{m.frames} uint16; EER {e.n_movies}x {e.width}x{e.height}x"
          f"{e.frames} hardware frames -> {e.fractions} fractions; {repeats} repeat(s), medians reported",
          flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILE_CHOICES, default="standard")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per figure (median reported)")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="where the movies go (DIR/synthetic-<profile>; existing data there is reused by "
                             "sections 2 and 3, generation is then timed into scratch roots); default: a temp "
                             "dir, removed at the end unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep the generated movies")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the figures here")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--fio", default=shutil.which("fio"), help="fio executable (default: from PATH)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        parser.error(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    return args


def check_space(data_dir: Path, profile: Profile, root_has_data: bool, generate: bool) -> None:
    """Refuse early when the movies (and a scratch generation root besides them) do not fit."""
    one_set = sum(movies.estimated_bytes(fmt, getattr(profile, fmt)) for fmt in movies.FORMATS)
    needed = (0 if root_has_data else one_set) + (one_set if generate else 0)
    if free_bytes(data_dir) < needed * 1.05:
        raise SystemExit(f"{data_dir}: needs {human_bytes(needed * 1.05)} free, has "
                         f"{human_bytes(free_bytes(data_dir))}")


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, object]:
    profile = PROFILES[args.profile]
    fio = args.fio if args.fio and shutil.which(args.fio) else None
    info = describe_machine(data_dir, fio)
    print_machine(info, profile, args.repeats)
    if fio is None and "read" in args.sections:
        print("fio: not found (apt-get install fio): reads are reported without a reference")
    data_root = provision.data_root(data_dir, profile.name)
    check_space(data_dir, profile, has_data(data_root), "generate" in args.sections)
    work = Path(tempfile.mkdtemp(prefix="movie-speed-work-", dir=data_dir))
    threads = sorted({1, movies.usable_threads()})
    result: dict[str, object] = {"machine": info, "profile": args.profile, "repeats": args.repeats,
                                 "data_root": str(data_root), "sections": {}}
    tables: list[Callable[[], None]] = []
    sections = result["sections"]
    try:
        if "generate" in args.sections:
            gen = section_generate(profile, data_root, work, args.repeats)
            sections["generation"] = {"figures": [g.as_dict() for g in gen], "load_after": load()}
            tables.append(lambda: (print("\n1. generation throughput"), print_generation(gen, args.repeats)))
        if "decode" in args.sections:
            dec, dec_info = section_decode(profile, data_root, args.repeats, threads)
            sections["decode"] = {"figures": [d.as_dict() for d in dec], "info": dec_info, "threads": threads,
                                  "target_ratio_max": DECODE_TARGET, "load_after": load()}
            tables.append(lambda: (print("\n2. decode overhead (harness vs bare, same threads)"),
                                   print_decode(dec, dec_info, args.repeats)))
        if "read" in args.sections:
            log = Log()
            rd, rd_details = section_read(profile, data_root, work, fio, args.repeats, log)
            sections["read"] = {"figures": [f.as_dict() for f in rd], "details": rd_details,
                                "measurements": log.entries, "target_ratio_min": TARGET_RATIO,
                                "load_after": load()}
            tables.append(lambda: (print("\n3. cold sequential movie reads (harness vs fio)"),
                                   print_read(rd, rd_details, log, args.repeats)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nresults ({args.profile} profile, median of {args.repeats}; machine: {info['cpu']}, "
          f"{info['usable_cores']} usable cores, {info['memory_gib']} GiB, data on {info['filesystem']}; "
          f"load now {load()}):")
    for table in tables:
        table()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    result["peak_rss_mib"] = peak
    print(f"\npeak resident memory of this script: {peak:.0f} MiB")
    if args.profile == "smoke":
        print("\nnote: the smoke profile is too small to judge (millisecond timings, fio's runtime in whole ms)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # What this run creates is removed at the end unless --keep; data found in --data-dir never is.
    if args.data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="cryobench-movie-speed-"))
        created = data_dir
    else:
        data_dir = args.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        root = provision.data_root(data_dir, args.profile)
        created = None if root.exists() else root
    try:
        result = run(args, data_dir)
    finally:
        if created is not None and not args.keep:
            shutil.rmtree(created, ignore_errors=True)
        else:
            print(f"\nkept {provision.data_root(data_dir, args.profile)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"figures written to {args.json}")
    failed = [f for section in result["sections"].values() for f in section["figures"] if f.get("passed") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
