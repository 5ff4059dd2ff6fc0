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

This is a developer tool; fio is not a dependency of the project. The sections are measured in
``benchlib.movie_generation``, ``benchlib.movie_decode`` and ``benchlib.movie_reads`` (beside
this script), their tables printed by ``benchlib.movie_tables``.

Examples
--------
::

    python3 benchmarks/movie_speed.py --profile smoke --repeats 1
    python3 benchmarks/movie_speed.py --profile standard --repeats 3 --json standard.json
    python3 benchmarks/movie_speed.py --data-dir /scratch/mv --keep --sections decode
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from benchlib.cache import Log
from benchlib.cli import add_fio_option, add_json_option, add_repeats_option, check_repeats, write_json
from benchlib.figures import TARGET_RATIO
from benchlib.fio import resolve_fio
from benchlib.machine import filesystem_description, load_average, machine_info, print_machine_info
from benchlib.movie_decode import DECODE_TARGET, section_decode
from benchlib.movie_generation import has_data, section_generate
from benchlib.movie_reads import section_read
from benchlib.movie_tables import print_decode, print_generation, print_read

from pytest_cryobench.data import movies, provision
from pytest_cryobench.measure.fsutil import free_bytes, human_bytes
from pytest_cryobench.profiles import PROFILES, Profile

PROFILE_CHOICES = ("smoke", "standard")
SECTIONS = ("generate", "decode", "read")


def describe_machine(data_dir: Path, fio: str | None) -> dict[str, object]:
    """:func:`benchlib.machine.machine_info` less ``cp``, plus cores, ``/dev/shm``, libraries, load."""
    info = machine_info(data_dir, fio)
    info.pop("cp", None)
    info["usable_cores"] = movies.usable_threads()
    info["shm"] = " ".join(dict.fromkeys(filesystem_description(Path("/dev/shm")).split()))  # stacked mounts
    info["libraries"] = (f"numpy {np.__version__}, tifffile {tifffile.__version__}, "
                         f"imagecodecs {imagecodecs.__version__}")
    info["load_at_start"] = load_average()
    return info


def print_machine(info: dict[str, object], profile: Profile, repeats: int) -> None:
    print_machine_info(info, 14)
    t, m, e = profile.tiff, profile.mrc, profile.eer
    print(f"profile: {profile.name}: TIFF {t.n_movies}x {t.width}x{t.height}x{t.frames} uint8 LZW; "
          f"MRC {m.n_movies}x {m.width}x{m.height}x{m.frames} uint16; EER {e.n_movies}x {e.width}x{e.height}x"
          f"{e.frames} hardware frames -> {e.fractions} fractions; {repeats} repeat(s), medians reported",
          flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILE_CHOICES, default="standard")
    add_repeats_option(parser, "repeats per figure (median reported)")
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="where the movies go (DIR/synthetic-<profile>; existing data there is reused by "
                             "sections 2 and 3, generation is then timed into scratch roots); default: a temp "
                             "dir, removed at the end unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep the generated movies")
    add_json_option(parser)
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    add_fio_option(parser)
    args = parser.parse_args(argv)
    check_repeats(parser, args)
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
    fio = resolve_fio(args.fio)
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
            sections["generation"] = {"figures": [g.as_dict() for g in gen], "load_after": load_average()}
            tables.append(lambda: (print("\n1. generation throughput"), print_generation(gen, args.repeats)))
        if "decode" in args.sections:
            dec, dec_info = section_decode(profile, data_root, args.repeats, threads)
            sections["decode"] = {"figures": [d.as_dict() for d in dec], "info": dec_info, "threads": threads,
                                  "target_ratio_max": DECODE_TARGET, "load_after": load_average()}
            tables.append(lambda: (print("\n2. decode overhead (harness vs bare, same threads)"),
                                   print_decode(dec, dec_info, args.repeats)))
        if "read" in args.sections:
            log = Log()
            rd, rd_details = section_read(profile, data_root, work, fio, args.repeats, log)
            sections["read"] = {"figures": [f.as_dict() for f in rd], "details": rd_details,
                                "measurements": log.entries, "target_ratio_min": TARGET_RATIO,
                                "load_after": load_average()}
            tables.append(lambda: (print("\n3. cold sequential movie reads (harness vs fio)"),
                                   print_read(rd, rd_details, log, args.repeats)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nresults ({args.profile} profile, median of {args.repeats}; machine: {info['cpu']}, "
          f"{info['usable_cores']} usable cores, {info['memory_gib']} GiB, data on {info['filesystem']}; "
          f"load now {load_average()}):")
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
    write_json(args.json, result)
    failed = [f for section in result["sections"].values() for f in section["figures"] if f.get("passed") is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
