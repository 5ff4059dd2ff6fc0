"""``movie_speed.py`` section 3: cold sequential reads of each format's movies against fio.

``movies.read_whole_file`` of a format's movies one after another (as the ``fs`` benchmark reads
them) after fadvise eviction, against one fio job reading the same files one after another,
``fio --rw=read --bs=16M --ioengine=psync --direct=0 --invalidate=1
--file_service_type=sequential`` (judged: harness MB/s >= 0.9x fio's; unjudged beside it, the
same job with ``--fadvise_hint=0``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchlib.cache import Log, evict
from benchlib.figures import Figure, Side, measure_round
from benchlib.fio import COLD_READ_OPTIONS, describe_fio, existing_files_options, fio_runner
from pytest_cryobench.data import movies, provision
from pytest_cryobench.plugin.session import DATA_SEED
from pytest_cryobench.profiles import Profile

MB = 1e6
# The harness's block size (movies.READ_BLOCK) is fio's.
FIO_BS = movies.READ_BLOCK
READ_FORMATS = ("tiff", "eer", "mrc")  # in the order the benchmarks run them


def fio_movie_job(fmt: str, files: Sequence[Path], link_dir: Path) -> list[str]:
    """One fio job reading ``files`` one after another in 16 MiB reads, like the harness."""
    return [f"--name=movies-{fmt}", "--rw=read", f"--bs={FIO_BS}", *COLD_READ_OPTIONS,
            "--file_service_type=sequential", *existing_files_options(files, link_dir)]


def describe_movie_job(fmt: str, files: Sequence[Path], link_dir: Path, extra: Sequence[str] = ()) -> str:
    """The options of :func:`fio_movie_job` (plus ``extra``) for printing, the file list abbreviated."""
    return describe_fio([*fio_movie_job(fmt, files, link_dir), *extra],
                        f"hard links to the {len(files)} movies, ':'-separated, in order")


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
    """Cold reads of every format's movies, harness and fio, ``repeats`` times; figures and details."""
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
        judged = Figure(name, "fio read", describe_movie_job(fmt, files, link_dir))
        sides: list[Side] = [(f"harness {name}", harness_movie_read(files, buffer, per_file), judged.harness)]
        figs = [judged]
        fio_bytes = sum(s // FIO_BS * FIO_BS for s in sizes)
        use_fio = fio if min(sizes) >= FIO_BS else None
        if fio and not use_fio:
            print(f"  {fmt}: a movie is smaller than one {FIO_BS >> 20} MiB block, which fio refuses: no reference")
        if use_fio:
            no_hint = ["--fadvise_hint=0"]
            plain = Figure(name, "fio read, no hint", describe_movie_job(fmt, files, link_dir, no_hint), judged=False,
                           harness=judged.harness)
            figs.append(plain)
            sides += [(f"fio {name}", fio_runner([fio, *fio_movie_job(fmt, files, link_dir)], fio_bytes, name),
                       judged.reference),
                      (f"fio {name} no hint",
                       fio_runner([fio, *fio_movie_job(fmt, files, link_dir), *no_hint], fio_bytes, name),
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
    """Diagnostic: both sides from a warm page cache (their CPU-bound ceilings).

    Returns
    -------
    dict
        ``harness_mb_per_s`` and, with fio, ``fio_mb_per_s``.
    """
    run = harness_movie_read(files, buffer, [])
    run()  # warms the cache
    out = {"harness_mb_per_s": run()}
    if fio:
        argv = [fio, *fio_movie_job(fmt, files, link_dir), "--invalidate=0"]
        out["fio_mb_per_s"] = fio_runner(argv, fio_bytes, f"{fmt} warm")()
    return out
