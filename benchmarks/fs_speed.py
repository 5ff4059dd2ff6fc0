#!/usr/bin/env python3
"""Check that the filesystem benchmark measures the disk and not itself.

On the same particle stack, with a cold page cache and the same block size (one particle), the
harness's figures are compared with those of reference tools:

* sequential and random particle reads (``ParticleReader.read_all``) against
  ``fio --rw=read|randread --bs=<one particle> --invalidate=1 --direct=0`` reading exactly the
  same bytes (every particle once, the 1024-byte MRC header skipped with ``offset``);
* the cache copy (``copy_stack``) against ``cp`` of the same files (neither side fsyncs).

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
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from pytest_cryobench.data.particles import (
    ParticleReader,
    ParticleStack,
    copy_stack,
    make_read_plan,
    write_particle_stack,
)
from pytest_cryobench.measure import pagecache
from pytest_cryobench.measure.fsutil import free_bytes, human_bytes
from pytest_cryobench.profiles import PROFILES, ParticleStackSize

MB = 1e6
MIB = 1 << 20
TARGET_RATIO = 0.9
MEMORY_LIMIT_BYTES = 2 << 30
# The random order the benchmark case uses (bench_suites/bench_fs_particles.RANDOM_ORDER_SEED).
RANDOM_ORDER_SEED = 7
STACK_SEED = 1
MEMORY_POLL_S = 0.1
# The warm-cache diagnostic reads at most this much of the stack.
WARM_SUBSET_BYTES = 512 * MB


# --------------------------------------------------------------------------- machine description

def _run_text(argv: Sequence[str]) -> str | None:
    """Stdout of a command, stripped, or None when it cannot run."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def cpu_model() -> str:
    """The ``model name`` of the first CPU in ``/proc/cpuinfo`` (or the platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def filesystem_description(path: Path) -> str:
    """``findmnt -T`` of ``path``: source, type, mount point and options."""
    text = _run_text(["findmnt", "-T", str(path), "-n", "-o", "SOURCE,FSTYPE,TARGET,OPTIONS"])
    return " ".join(text.split()) if text else "unknown (findmnt failed)"


def fio_version(fio: str | None) -> str | None:
    return _run_text([fio, "--version"]) if fio else None


def machine_info(directory: Path, fio: str | None) -> dict[str, object]:
    """CPU, core count, memory, kernel, filesystem of ``directory`` and the fio version."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
        "kernel": platform.release(),
        "filesystem": filesystem_description(directory),
        "fio": fio_version(fio) or "not installed",
        "cp": (_run_text(["cp", "--version"]) or "unknown").splitlines()[0],
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- cache control

@dataclasses.dataclass
class Log:
    """Per-measurement lines: residency before each timed run and the rate it gave."""

    entries: list[dict[str, object]] = dataclasses.field(default_factory=list)

    def add(self, repeat: int, what: str, residency: pagecache.Residency, rate: float | None) -> None:
        frac = residency.fraction if residency.measured else None
        self.entries.append({"repeat": repeat, "what": what, "residency": frac, "mb_s": rate})
        shown = f"{frac:6.2%}" if frac is not None else "unknown"
        warm = "  WARNING: not cold" if residency.warm else ""
        rate_text = f"{rate:9.1f} MB/s" if rate is not None else "      n/a"
        print(f"  [{repeat + 1}] {what:<28} residency before {shown}  {rate_text}{warm}", flush=True)


def settle(*directories: Path) -> None:
    """Remove earlier copies and write back dirty pages, so one run's writeback does not slow the next."""
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    os.sync()


def evict(files: Sequence[Path]) -> pagecache.Residency:
    """Evict ``files`` with fadvise and return their residency afterwards (should be ~0)."""
    return pagecache.drop_and_measure(list(files), "fadvise")


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
    """``copy_stack`` into ``destination`` (no fsync, as in the benchmark); MB/s of file bytes."""
    nbytes = stack.total_bytes
    start = time.perf_counter()
    copy_stack(stack, destination)
    elapsed = time.perf_counter() - start
    return nbytes / elapsed / MB


# --------------------------------------------------------------------------- reference tools

# fio refuses option values longer than this; a stack's full paths easily exceed it.
FIO_MAX_OPTION_CHARS = 4096


def fio_file_options(files: Sequence[Path], link_dir: Path) -> list[str]:
    """``--directory`` and ``--filename`` options naming ``files`` in order, within fio's limits.

    fio splits ``filename`` on ':' and rejects a value over 4096 characters, so each file gets
    a hard link (a symlink where hard links fail) named by its index in ``link_dir``: the same
    inode, hence the same blocks and the same page cache, under a name of a few characters.
    """
    link_dir.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(files):
        link = link_dir / str(index)
        if link.exists() or link.is_symlink():
            continue
        try:
            os.link(path, link)
        except OSError:
            os.symlink(path.resolve(), link)
    names = ":".join(str(index) for index in range(len(files)))
    if len(names) >= FIO_MAX_OPTION_CHARS:
        raise RuntimeError(f"{len(files)} files: too many for one fio --filename list")
    return [f"--directory={link_dir}", f"--filename={names}"]


def fio_job(stack: ParticleStack, order: str, link_dir: Path) -> list[str]:
    """fio options that read every particle of the stack once, one particle per read.

    Sequential: the files one after another in stack order (``file_service_type=sequential``),
    each from its first particle (``offset`` = the MRC header) to its end. Random: each block of
    each file exactly once (``norandommap=0``) in a repeatable order, a file picked at random per
    read. Blocks are aligned on ``offset``, i.e. on particle boundaries as in the harness.
    ``link_dir`` holds the short names of :func:`fio_file_options`.
    """
    offsets = set(int(o) for o in stack.data_offsets)
    if len(offsets) != 1:
        raise RuntimeError(f"the files have different data offsets {sorted(offsets)}; one fio job cannot mirror them")
    common = [
        f"--bs={stack.size.particle_bytes}", f"--offset={offsets.pop()}",
        "--ioengine=psync", "--iodepth=1", "--numjobs=1", "--direct=0", "--invalidate=1",
        "--allow_file_create=0", *fio_file_options(stack.files, link_dir),
        "--output-format=json",
    ]
    if order == "sequential":
        return ["--name=seq", "--rw=read", "--file_service_type=sequential", *common]
    if order == "random":
        return ["--name=rnd", "--rw=randread", "--file_service_type=random", "--norandommap=0",
                "--randrepeat=1", *common]
    raise ValueError(order)


def describe_fio_job(stack: ParticleStack, order: str, link_dir: Path, extra: Sequence[str] = ()) -> str:
    """The fio options of :func:`fio_job` (plus ``extra``) for printing, the file list abbreviated."""
    shown = []
    for arg in [*fio_job(stack, order, link_dir), *extra]:
        if arg.startswith("--directory="):
            continue
        if arg.startswith("--filename="):
            arg = f"--filename=<hard links to the {len(stack.files)} stack files, ':'-separated, in order>"
        elif arg.startswith("--output-format="):
            continue
        shown.append(arg)
    return "fio " + " ".join(shown)


def _parse_fio_json(text: str) -> dict:
    # fio may print notices before its JSON document.
    start = text.find("{")
    if start < 0:
        raise RuntimeError(f"fio printed no JSON: {text[-500:]}")
    return json.loads(text[start:])


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
    return _fio_runner(argv, stack.particle_bytes_total, order)


def _fio_runner(argv: Sequence[str], expected: int, what: str) -> Callable[[], float]:
    """``run() -> MB/s`` (fio's ``read.bw_bytes``) of one fio command; checks the bytes read."""

    def run() -> float:
        done = subprocess.run(list(argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"fio failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        read = _parse_fio_json(done.stdout)["jobs"][0]["read"]
        if read["io_bytes"] != expected:
            raise RuntimeError(f"fio {what} read {read['io_bytes']} bytes, expected {expected}")
        return read["bw_bytes"] / MB

    return run


def write_replay_log(stack: ParticleStack, order: str, link_dir: Path, path: Path) -> Path:
    """A fio version-2 iolog of the harness's own read plan: same files, offsets, lengths, order.

    All files are opened first and closed last, as :meth:`ParticleReader.read_all` does. Files
    are named by their hard links in ``link_dir`` (see :func:`fio_file_options`).
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


REPLAY_OPTIONS = ("--replay_no_stall=1", "--ioengine=psync", "--direct=0", "--invalidate=1",
                  "--fadvise_hint=0", "--output-format=json")


def fio_replay(fio: str, stack: ParticleStack, order: str, link_dir: Path) -> Callable[[], float]:
    """fio replaying the harness's exact read sequence (``read_iolog``), without fadvise hints.

    This separates the cost of the harness's loop from the access pattern: fio's own random
    generator does not produce the same order (nor the same share of reads that follow the
    previous read of their file, which the kernel's readahead rewards).
    """
    log = write_replay_log(stack, order, link_dir, link_dir.parent / f"fio-replay-{order}.log")
    argv = [fio, f"--name=replay-{order}", f"--read_iolog={log}", *REPLAY_OPTIONS]
    return _fio_runner(argv, stack.particle_bytes_total, f"replay {order}")


def cp_copy(files: Sequence[Path], destination: Path) -> float:
    """``cp FILE... DEST/`` timed from the outside (process start included); MB/s of file bytes."""
    destination.mkdir(parents=True, exist_ok=True)
    nbytes = sum(os.stat(f).st_size for f in files)
    start = time.perf_counter()
    subprocess.run(["cp", "--", *map(str, files), f"{destination}/"], check=True)
    elapsed = time.perf_counter() - start
    return nbytes / elapsed / MB


# --------------------------------------------------------------------------- comparisons

@dataclasses.dataclass
class Figure:
    """One compared figure: the harness's rate and a reference tool's, per repeat (MB/s).

    ``judged`` figures are the requirement's; the others are diagnostics shown beside them.
    Figures of the same measurement share the ``harness`` list.
    """

    name: str
    tool: str
    tool_detail: str
    judged: bool = True
    harness: list[float] = dataclasses.field(default_factory=list)
    reference: list[float] = dataclasses.field(default_factory=list)

    @property
    def harness_median(self) -> float:
        return statistics.median(self.harness)

    @property
    def reference_median(self) -> float | None:
        return statistics.median(self.reference) if self.reference else None

    @property
    def ratio(self) -> float | None:
        ref = self.reference_median
        return self.harness_median / ref if ref else None

    @property
    def paired_ratio(self) -> float | None:
        """Median over repeats of harness/reference within a repeat (robust to drift between repeats)."""
        if not self.reference:
            return None
        return statistics.median(h / r for h, r in zip(self.harness, self.reference, strict=True))

    @property
    def passed(self) -> bool | None:
        if not self.judged or self.ratio is None:
            return None
        return self.ratio >= TARGET_RATIO

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "no reference"
        if not self.judged:
            return "info"
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, object]:
        return {"figure": self.name, "tool": self.tool_detail, "judged": self.judged,
                "harness_mb_s": self.harness_median, "reference_mb_s": self.reference_median,
                "ratio": self.ratio, "paired_ratio": self.paired_ratio, "target": TARGET_RATIO,
                "passed": self.passed, "harness_samples_mb_s": self.harness,
                "reference_samples_mb_s": self.reference}


# One side of a measurement: its label, the timed run (returns MB/s) and where its samples go.
Side = tuple[str, Callable[[], float], list]


def measure_round(repeat: int, log: Log, cold_files: Sequence[Path], sides: Sequence[Side],
                  before: Callable[[], None] = lambda: None, prime: Callable[[], None] | None = None) -> None:
    """Run every side once, cold; who goes first rotates with the repeat.

    ``before`` runs (untimed) before each side; ``prime`` once before them all, untimed, so that
    the first side does not pay alone for a state the others inherit from it.
    """
    if prime is not None:
        prime()
    k = repeat % len(sides)
    for label, run, samples in [*sides[k:], *sides[:k]]:
        before()
        residency = evict(cold_files)
        rate = run()
        samples.append(rate)
        log.add(repeat, label, residency, rate)


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
    cache = Figure("cache copy", "cp", "cp -- FILE... DEST/ (no fsync on either side)")
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
    """
    sub = sub_stack(stack, WARM_SUBSET_BYTES)
    n_reads = sub.size.n_particles
    out: dict[str, dict[str, float]] = {}
    for order in ("sequential", "random"):
        run = harness_read(sub, order)
        run()  # warms the cache
        rate = run()
        row = {"harness_mb_s": rate, "harness_us_per_read": sub.particle_bytes_total / rate / MB / n_reads * 1e6,
               "bytes": sub.particle_bytes_total}
        if fio:
            fio_rate = fio_read(fio, sub, order, link_dir, extra=["--invalidate=0"])()
            row.update(fio_mb_s=fio_rate, fio_us_per_read=sub.particle_bytes_total / fio_rate / MB / n_reads * 1e6)
        out[order] = row
    return out


# --------------------------------------------------------------------------- peak memory

def _tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and all its descendants, bytes (processes gone meanwhile count 0)."""
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _read_pytest_rates(output_dir: Path) -> dict[str, float]:
    """The MB/s figures that the pytest run itself reported (its result JSON)."""
    rates: dict[str, float] = {}
    for path in output_dir.glob("*_fs_*.json"):
        metrics = json.loads(path.read_text()).get("metrics", {})
        for case, values in metrics.items():
            for name, metric in values.items():
                if metric.get("unit") == "MB/s":
                    rates[f"{case}.{name}"] = metric["value"]
    return rates


def peak_memory(profile: str, workdir: Path) -> dict[str, object]:
    """Peak memory of ``pytest --cryobench -m fs`` for ``profile``, run from an empty directory.

    The process tree's summed RSS is sampled every 0.1 s with psutil (children included);
    ``ru_maxrss`` from ``wait4`` (the largest single process) is reported alongside.
    """
    cwd = workdir / "pytest-cwd"
    cwd.mkdir()
    output, data = workdir / "pytest-out", workdir / "pytest-data"
    argv = [sys.executable, "-m", "pytest", "--cryobench", "--cryobench-profile", profile, "-m", "fs",
            "-p", "no:cacheprovider", "--cryobench-output", str(output),
            "--cryobench-data-dir", str(data), "-q"]
    log_path = workdir / "pytest.log"
    print(f"\nmemory run: {' '.join(argv)}", flush=True)
    peak = 0
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        while True:
            pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss(proc))
            time.sleep(MEMORY_POLL_S)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    tail = log_path.read_text(errors="replace").splitlines()[-25:]
    largest = rusage.ru_maxrss * 1024  # Linux reports KiB
    # Sampling can miss a short spike that ru_maxrss (exact, one process) catches: judge the larger.
    judged = max(peak, largest)
    result = {"command": argv, "exit_code": child.returncode, "wall_s": elapsed,
              "peak_tree_rss_mib": peak / MIB, "ru_maxrss_mib": largest / MIB, "peak_mib": judged / MIB,
              "limit_mib": MEMORY_LIMIT_BYTES / MIB, "passed": judged < MEMORY_LIMIT_BYTES,
              "pytest_rates_mb_s": _read_pytest_rates(output), "log_tail": tail}
    shutil.rmtree(data, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- output

def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(figures: Sequence[Figure]) -> None:
    header = ("figure", "harness MB/s", "reference tool", "tool MB/s", "ratio", "paired ratio", "target",
              "result")
    rows = [header]
    for f in figures:
        target = f">= {TARGET_RATIO}" if f.judged else "-"
        rows.append((f.name, _fmt(f.harness_median), f.tool, _fmt(f.reference_median),
                     _fmt(f.ratio, ".3f"), _fmt(f.paired_ratio, ".3f"), target, f.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("  ratio = harness median / tool median (the judged figure); paired ratio = median of "
          "per-repeat ratios; 'info' rows are not judged")
    for f in figures:
        print(f"  {f.tool}: {f.tool_detail}")


def print_machine(info: dict[str, object], profile: str, size: ParticleStackSize, repeats: int) -> None:
    print("machine:")
    for key, value in info.items():
        print(f"  {key:<11} {value}")
    print(f"profile: {profile}: {size.n_particles} particles of {size.box}x{size.box} float32 "
          f"({size.particle_bytes} bytes = block size) in {size.n_files} files, "
          f"{human_bytes(size.total_bytes)}; {repeats} repeat(s), medians reported", flush=True)


def print_warm(warm: dict[str, dict[str, float]]) -> None:
    print("\nwarm-cache diagnostic (not judged; the CPU-bound ceiling of each side):")
    for order, row in warm.items():
        line = (f"  {order:<10} harness {row['harness_mb_s']:9.1f} MB/s ({row['harness_us_per_read']:.1f} us/read)")
        if "fio_mb_s" in row:
            line += f"   fio {row['fio_mb_s']:9.1f} MB/s ({row['fio_us_per_read']:.1f} us/read)"
        print(line + f"   over {human_bytes(row['bytes'])}")


def print_memory(mem: dict[str, object]) -> None:
    verdict = "PASS" if mem["passed"] else "FAIL"
    print(f"\npeak memory of the pytest fs run: {mem['peak_mib']:.0f} MiB (process tree RSS summed, sampled "
          f"every {MEMORY_POLL_S} s: {mem['peak_tree_rss_mib']:.0f} MiB; largest single process ru_maxrss: "
          f"{mem['ru_maxrss_mib']:.0f} MiB), limit {mem['limit_mib']:.0f} MiB: {verdict}; "
          f"exit code {mem['exit_code']}, {mem['wall_s']:.0f} s")
    for name, value in mem["pytest_rates_mb_s"].items():
        print(f"  reported by the run: {name} = {value:.1f} MB/s")
    if mem["exit_code"] != 0:
        print("  pytest output (tail):\n    " + "\n    ".join(mem["log_tail"]))


# --------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="standard")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to work (a fresh subdirectory is made in it; default: the temp dir)")
    parser.add_argument("--repeats", type=int, default=3, help="cold repeats per figure (median reported)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the figures here")
    parser.add_argument("--memory", action="store_true",
                        help="also measure the peak memory of a pytest --cryobench -m fs run")
    parser.add_argument("--keep", action="store_true", help="keep the files written")
    parser.add_argument("--fio", default=shutil.which("fio"), help="fio executable (default: from PATH)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
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
    fio = args.fio if args.fio and shutil.which(args.fio) else None
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
    print_table(figures)
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
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"figures written to {args.json}")
    failed = [f for f in result["figures"] if f["passed"] is False]
    mem_failed = "memory" in result and not result["memory"]["passed"]
    return 1 if failed or mem_failed else 0


if __name__ == "__main__":
    sys.exit(main())
