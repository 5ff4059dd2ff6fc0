"""``fs_speed.py``'s comparisons on one particle stack: harness reads and copy against fio and cp.

Sequential and random particle reads (``ParticleReader.read_all``) against fio reading exactly
the same bytes with the same block size (one particle), and the cache copy (``copy_stack_bytes``,
as the benchmark case times it: read+write, every file fsynced) against ``cp`` followed by
``sync`` of the copies; all cold, who runs first rotating with the repeat. A warm-cache pass over part
of the stack shows each side's CPU-bound ceiling.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchlib.cache import Log, evict, settle
from benchlib.figures import Figure, Side, measure_round
from benchlib.fio import COLD_READ_OPTIONS, describe_fio, existing_files_options, fio_file_options, fio_runner
from pytest_cryobench.data.particles import (
    COPY_BLOCK,
    ParticleReader,
    ParticleStack,
    copy_stack_bytes,
    make_read_plan,
)
from pytest_cryobench.profiles import ParticleStackSize

MB = 1e6
# The random order the benchmark case uses (bench_suites/bench_fs_particles.RANDOM_ORDER_SEED).
RANDOM_ORDER_SEED = 7
# The warm-cache diagnostic reads at most this much of the stack.
WARM_SUBSET_BYTES = 512 * MB
REPLAY_OPTIONS = ("--replay_no_stall=1", "--ioengine=psync", "--direct=0", "--invalidate=1",
                  "--fadvise_hint=0", "--output-format=json")


# --------------------------------------------------------------------------- harness side

def harness_read(stack: ParticleStack, order: str) -> Callable[[], float]:
    """A timed pass over the plan; the reader and its buffers are built before timing.

    Returns
    -------
    callable
        ``run() -> MB/s``; raises when a pass reads fewer bytes than planned.
    """
    reader = ParticleReader(stack, make_read_plan(stack, order, RANDOM_ORDER_SEED))

    def run() -> float:
        start = time.perf_counter()
        got = reader.read_all()
        elapsed = time.perf_counter() - start
        if got != reader.expected_bytes:
            raise RuntimeError(f"harness {order} read {got} bytes, expected {reader.expected_bytes}")
        mismatched = reader.mismatched_particles()
        if mismatched:
            raise RuntimeError(f"harness {order} read: {len(mismatched)} particle(s) differ")
        return reader.expected_bytes / elapsed / MB

    return run


def harness_copy(stack: ParticleStack, destination: Path) -> float:
    """``copy_stack_bytes`` into ``destination``, exactly as the benchmark case times it (every
    byte through a buffer allocated before timing, each file fsynced); MB/s of file bytes.

    Raises when fewer bytes were written than the stack holds."""
    buffer = bytearray(COPY_BLOCK)
    start = time.perf_counter()
    _, written = copy_stack_bytes(stack, destination, buffer)
    elapsed = time.perf_counter() - start
    if written != stack.total_bytes:
        raise RuntimeError(f"harness copy wrote {written} bytes, expected {stack.total_bytes}")
    return written / elapsed / MB


# --------------------------------------------------------------------------- reference tools

def fio_job(stack: ParticleStack, order: str, link_dir: Path) -> list[str]:
    """fio options that read every particle of the stack once, one particle per read.

    Sequential: the files one after another in stack order (``file_service_type=sequential``),
    each from its first particle (``offset`` = the MRC header) to its end. Random: each block of
    each file exactly once (``norandommap=0``) in a repeatable order, a file picked at random per
    read. Blocks are aligned on ``offset``, i.e. on particle boundaries as in the harness.
    ``link_dir`` holds the short names of :func:`benchlib.fio.fio_file_options`.
    """
    offsets = set(int(o) for o in stack.data_offsets)
    if len(offsets) != 1:
        raise RuntimeError(f"the files have different data offsets {sorted(offsets)}; one fio job cannot mirror them")
    common = [f"--bs={stack.size.particle_bytes}", f"--offset={offsets.pop()}", *COLD_READ_OPTIONS,
              *existing_files_options(stack.files, link_dir)]
    if order == "sequential":
        return ["--name=seq", "--rw=read", "--file_service_type=sequential", *common]
    if order == "random":
        return ["--name=rnd", "--rw=randread", "--file_service_type=random", "--norandommap=0",
                "--randrepeat=1", *common]
    raise ValueError(order)


def describe_fio_job(stack: ParticleStack, order: str, link_dir: Path, extra: Sequence[str] = ()) -> str:
    """The fio options of :func:`fio_job` (plus ``extra``) for printing, the file list abbreviated."""
    return describe_fio([*fio_job(stack, order, link_dir), *extra],
                        f"hard links to the {len(stack.files)} stack files, ':'-separated, in order")


def fio_read(fio: str, stack: ParticleStack, order: str, link_dir: Path,
             extra: Sequence[str] = ()) -> Callable[[], float]:
    """A fio run over the same bytes as the harness's plan.

    Returns
    -------
    callable
        ``run() -> MB/s`` from fio's ``read.bw_bytes``; raises when fio read other than the
        particle bytes.
    """
    argv = [fio, *fio_job(stack, order, link_dir), *extra]
    return fio_runner(argv, stack.particle_bytes_total, order)


def write_replay_log(stack: ParticleStack, order: str, link_dir: Path, path: Path) -> Path:
    """A fio version-2 iolog of the harness's own read plan: same files, offsets, lengths, order.

    All files are opened first and closed last, as :meth:`ParticleReader.read_all` does. Files
    are named by their hard links in ``link_dir`` (see :func:`benchlib.fio.fio_file_options`).
    """
    fio_file_options(stack.files, link_dir)
    names = [str(link_dir / str(i)) for i in range(len(stack.files))]
    if any(any(c.isspace() for c in name) for name in names):
        raise RuntimeError(f"{link_dir}: a path with white space cannot go into a fio iolog")
    plan = make_read_plan(stack, order, RANDOM_ORDER_SEED)
    nbytes = stack.size.particle_bytes
    with open(path, "w") as log:
        log.write("fio version 2 iolog\n")
        log.writelines(f"{name} add\n" for name in names)
        log.writelines(f"{name} open\n" for name in names)
        log.writelines(f"{names[f]} read {off} {nbytes}\n"
                       for f, off in zip(plan.file_index.tolist(), plan.offset.tolist(), strict=True))
        log.writelines(f"{name} close\n" for name in names)
    return path


def fio_replay(fio: str, stack: ParticleStack, order: str, link_dir: Path) -> Callable[[], float]:
    """fio replaying the harness's exact read sequence (``read_iolog``), without fadvise hints.

    This separates the cost of the harness's loop from the access pattern: fio's own random
    generator does not produce the same order (nor the same share of reads that follow the
    previous read of their file, which the kernel's readahead rewards).
    """
    log = write_replay_log(stack, order, link_dir, link_dir.parent / f"fio-replay-{order}.log")
    argv = [fio, f"--name=replay-{order}", f"--read_iolog={log}", *REPLAY_OPTIONS]
    return fio_runner(argv, stack.particle_bytes_total, f"replay {order}")


def cp_copy(files: Sequence[Path], destination: Path) -> float:
    """``cp FILE... DEST/`` then ``sync -- DEST/FILE...`` (coreutils ``sync`` with file operands
    fsyncs each), timed together from the outside (process starts included); MB/s of file bytes."""
    destination.mkdir(parents=True, exist_ok=True)
    nbytes = sum(os.stat(f).st_size for f in files)
    copies = [str(destination / f.name) for f in files]
    start = time.perf_counter()
    subprocess.run(["cp", "--", *map(str, files), f"{destination}/"], check=True)
    subprocess.run(["sync", "--", *copies], check=True)
    elapsed = time.perf_counter() - start
    return nbytes / elapsed / MB


# --------------------------------------------------------------------------- comparisons

def prime_copy(files: Sequence[Path], destination: Path) -> None:
    """An untimed ``cp`` before the timed copies.

    On a VM whose balloon reports free pages to the host (virtio-balloon free page reporting),
    page-cache pages that sat free for a few seconds are handed back and must be faulted in
    again; the first copy after a pause then pays for ~2x the stack of fresh guest memory and
    runs several times slower, whichever tool makes it. The primer takes that cost for both.
    """
    settle(destination)
    evict(files)
    cp_copy(files, destination)
    settle(destination)


def read_figures(stack: ParticleStack, order: str, fio: str | None, link_dir: Path) -> tuple[list[Figure], list[Side]]:
    """The figures of one read order and the sides that fill them.

    The judged reference is fio as the requirement states it (fio's default ``fadvise_hint=1``
    advises ``POSIX_FADV_SEQUENTIAL``/``RANDOM``). Two unjudged fio runs follow the harness more
    closely: ``--fadvise_hint=0`` gives no advice, as the harness does, and a replay of the
    harness's own plan (:func:`fio_replay`) also reads in exactly its order.
    """
    name = f"{order} read"
    tool = "fio read" if order == "sequential" else "fio randread"
    judged = Figure(name, tool, describe_fio_job(stack, order, link_dir))
    sides: list[Side] = [(f"harness {name}", harness_read(stack, order), judged.harness)]
    if not fio:
        return [judged], sides
    no_hint = ["--fadvise_hint=0"]
    plain = Figure(name, f"{tool}, no hint", describe_fio_job(stack, order, link_dir, no_hint),
                   judged=False, harness=judged.harness)
    replay = Figure(name, "fio replay", "fio --read_iolog=<the harness's plan: same files, offsets, order> "
                    + " ".join(REPLAY_OPTIONS[:-1]), judged=False, harness=judged.harness)
    sides += [(f"fio {name}", fio_read(fio, stack, order, link_dir), judged.reference),
              (f"fio {name} no hint", fio_read(fio, stack, order, link_dir, no_hint), plain.reference),
              (f"fio {name} replay", fio_replay(fio, stack, order, link_dir), replay.reference)]
    return [judged, plain, replay], sides


def compare(stack: ParticleStack, workdir: Path, fio: str | None, repeats: int, log: Log) -> list[Figure]:
    """All compared figures over ``repeats`` cold repeats."""
    link_dir = workdir / "fio-names"
    harness_dest, cp_dest = workdir / "copy-harness", workdir / "copy-cp"
    seq, seq_sides = read_figures(stack, "sequential", fio, link_dir)
    rnd, rnd_sides = read_figures(stack, "random", fio, link_dir)
    cache = Figure("cache copy", "cp + sync", "cp -- FILE... DEST/; sync -- DEST/FILE... (both sides fsync every file)")
    copy_sides: list[Side] = [
        ("harness cache copy", lambda: harness_copy(stack, harness_dest), cache.harness),
        ("cp cache copy", lambda: cp_copy(stack.files, cp_dest), cache.reference)]
    for repeat in range(repeats):
        settle(harness_dest, cp_dest)
        measure_round(repeat, log, stack.files, seq_sides)
        measure_round(repeat, log, stack.files, rnd_sides)
        measure_round(repeat, log, stack.files, copy_sides, before=lambda: settle(harness_dest, cp_dest),
                      prime=lambda: prime_copy(stack.files, cp_dest))
    settle(harness_dest, cp_dest)
    return [*seq, *rnd, cache]


def sub_stack(stack: ParticleStack, max_bytes: float) -> ParticleStack:
    """The first files of the stack, at most ``max_bytes`` of particles (at least one file)."""
    size = stack.size
    per_file_bytes = size.per_file * size.particle_bytes
    k = int(max(1, min(size.n_files, max_bytes // per_file_bytes)))
    return ParticleStack(stack.files[:k], ParticleStackSize(k * size.per_file, size.box, k),
                         stack.data_offsets[:k], stack.digests[:k * size.per_file])


def warm_ceiling(stack: ParticleStack, fio: str | None, link_dir: Path) -> dict[str, dict[str, float]]:
    """Diagnostic: sequential and random reads from a warm page cache (the CPU-bound ceiling).

    A harness that is far faster warm than cold is not what limits the cold figure; the
    per-read time warm is the cost of the Python loop plus the copy out of the page cache.

    Returns
    -------
    dict
        Per order: ``harness_mb_per_s``, ``harness_us_per_read`` (microseconds), ``bytes`` read
        and, with fio, ``fio_mb_per_s`` and ``fio_us_per_read``.
    """
    sub = sub_stack(stack, WARM_SUBSET_BYTES)
    n_reads = sub.size.n_particles
    out: dict[str, dict[str, float]] = {}
    for order in ("sequential", "random"):
        run = harness_read(sub, order)
        run()  # warms the cache
        rate = run()
        row = {"harness_mb_per_s": rate,
               "harness_us_per_read": sub.particle_bytes_total / rate / MB / n_reads * 1e6,
               "bytes": sub.particle_bytes_total}
        if fio:
            fio_rate = fio_read(fio, sub, order, link_dir, extra=["--invalidate=0"])()
            row.update(fio_mb_per_s=fio_rate,
                       fio_us_per_read=sub.particle_bytes_total / fio_rate / MB / n_reads * 1e6)
        out[order] = row
    return out
