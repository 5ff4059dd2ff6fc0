#!/usr/bin/env python3
"""Check that the filesystem benchmark measures the disk and not itself.

On the same particle stack, with a cold page cache and the same block size (one particle), the
harness's figures are compared with those of reference tools:

* sequential and random particle reads (``ParticleReader.read_all``) against
  ``fio --rw=read|randread --bs=<one particle> --invalidate=1 --direct=0`` reading exactly the
  same bytes (every particle once, the 1024-byte MRC header skipped with ``offset``);
* the cache copy (``copy_stack_bytes``, as the case times it: read+write, each file fsynced)
  against ``cp`` of the same files followed by ``sync`` of the copies (each file fsynced).

Each harness figure should be at least 0.9x the reference tool's. Beside the judged fio runs,
two unjudged ones follow the harness more closely: fio without fadvise hints (the harness gives
none; fio's default advises ``POSIX_FADV_RANDOM`` for randread, which turns readahead off) and
fio replaying the harness's own read order from an iolog. Who runs first rotates with the
repeat, and a warm-cache pass over part of the stack shows each side's CPU-bound ceiling.

With ``--memory`` the peak
resident memory of a ``pytest --cryobench -m fs`` run of the profile is measured as well (all
processes of the run summed); it should stay under 2 GiB.

This is a developer tool: fio is not a dependency of the project. Without fio the read figures
are reported without a reference.

Examples
--------
::

    python3 benchmarks/fs_speed.py --profile standard --repeats 3
    python3 benchmarks/fs_speed.py --profile full --repeats 1 --memory --json full.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchlib.cache import Log
from benchlib.cli import add_fio_option, add_json_option, add_repeats_option, check_repeats, write_json
from benchlib.figures import print_figures
from benchlib.fio import resolve_fio
from benchlib.machine import machine_info, print_machine_info
from benchlib.particle_reads import compare, warm_ceiling
from benchlib.pytest_memory import peak_memory, print_memory

from pytest_cryobench.data.particles import write_particle_stack
from pytest_cryobench.measure.fsutil import free_bytes, human_bytes
from pytest_cryobench.profiles import PROFILES, ParticleStackSize

STACK_SEED = 1


# --------------------------------------------------------------------------- output

def print_machine(info: dict[str, object], profile: str, size: ParticleStackSize, repeats: int) -> None:
    print_machine_info(info, 11)
    print(f"profile: {profile}: {size.n_particles} particles of {size.box}x{size.box} float32 "
          f"({size.particle_bytes} bytes = block size) in {size.n_files} files, "
          f"{human_bytes(size.total_bytes)}; {repeats} repeat(s), medians reported", flush=True)


def print_warm(warm: dict[str, dict[str, float]]) -> None:
    print("\nwarm-cache diagnostic (not judged; the CPU-bound ceiling of each side):")
    for order, row in warm.items():
        line = f"  {order:<10} harness {row['harness_mb_per_s']:9.1f} MB/s ({row['harness_us_per_read']:.1f} us/read)"
        if "fio_mb_per_s" in row:
            line += f"   fio {row['fio_mb_per_s']:9.1f} MB/s ({row['fio_us_per_read']:.1f} us/read)"
        print(line + f"   over {human_bytes(row['bytes'])}")


# --------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to work (a fresh subdirectory is made in it; default: the temp dir)")
    add_repeats_option(parser, "cold repeats per figure (median reported)")
    add_json_option(parser)
    parser.add_argument("--memory", action="store_true",
                        help="also measure the peak memory of a pytest --cryobench -m fs run")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    add_fio_option(parser)
    args = parser.parse_args(argv)
    check_repeats(parser, args)
    return args


def check_space(directory: Path, size: ParticleStackSize, memory: bool) -> None:
    """Refuse early when the stack, one copy (and the pytest run's stack and copy) do not fit."""
    needed = 2 * size.total_bytes * 1.05
    if free_bytes(directory) < needed:
        raise SystemExit(f"{directory}: needs {human_bytes(needed)} free, has {human_bytes(free_bytes(directory))}")
    if memory:
        print("note: the memory run writes its own stack and copy after this script's files are removed")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    profile = PROFILES[args.profile]
    fio = resolve_fio(args.fio)
    info = machine_info(workdir, fio)
    print_machine(info, args.profile, profile.particles, args.repeats)
    if fio is None:
        print("fio: not found (apt-get install fio): read figures are reported without a reference")
    check_space(workdir, profile.particles, args.memory)
    print(f"\nwriting the stack to {workdir / 'stack'} ...", flush=True)
    start = time.perf_counter()
    stack = write_particle_stack(workdir / "stack", profile.particles, STACK_SEED)
    print(f"  written in {time.perf_counter() - start:.1f} s ({human_bytes(stack.total_bytes)} on disk)")
    log = Log()
    print("\ncold measurements (residency measured with mincore after fadvise eviction):", flush=True)
    figures = compare(stack, workdir, fio, args.repeats, log)
    warm = warm_ceiling(stack, fio, workdir / "fio-names")
    print(f"\nresults ({args.profile} profile, median of {args.repeats}):")
    print_figures(figures)
    print_warm(warm)
    result: dict[str, object] = {
        "machine": info, "profile": args.profile, "repeats": args.repeats,
        "stack": {"particles": stack.size.n_particles, "box": stack.size.box, "files": stack.size.n_files,
                  "particle_bytes": stack.size.particle_bytes, "file_bytes": stack.total_bytes},
        "figures": [f.as_dict() for f in figures], "measurements": log.entries, "warm": warm,
    }
    if args.memory:
        if not args.keep:  # frees the disk for the run's own stack (the links hold the inodes too)
            for name in ("stack", "fio-names"):
                shutil.rmtree(workdir / name, ignore_errors=True)
        mem = peak_memory(args.profile, workdir)
        print_memory(mem)
        result["memory"] = mem
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = args.dir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="cryobench-fs-speed-", dir=base))
    try:
        result = run(args, workdir)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    write_json(args.json, result)
    failed = [f for f in result["figures"] if f["passed"] is False]
    mem_failed = "memory" in result and not result["memory"]["passed"]
    return 1 if failed or mem_failed else 0


if __name__ == "__main__":
    sys.exit(main())
