"""The random particle stack of the filesystem benchmark (see ``docs/design.md``).

``n_particles`` float32 images of ``box x box`` drawn from ``numpy.random.randn``, split over
``n_files`` MRC stacks. The stack is written one file at a time (never held whole), each file
to a temporary name and renamed; a failure or Ctrl-C removes everything written so far.

Reads go one particle per ``preadv`` call into preallocated buffers, so that the figure is the
storage's and not Python's: the loop does one system call per particle and nothing else. A
seeded sample of the particles read is kept and checked against digests taken at write time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import mrcfile
import numpy as np

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.measure.fsutil import copy_file, reporting_full_disk, require_free_space
from pytest_cryobench.profiles import ParticleStackSize

DIGEST_BYTES = 16
MRC_HEADER_BYTES = 1024
# At most this many bytes of the particles read are kept for the content check.
VERIFY_BUDGET_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class ParticleStack:
    """Particle stack files on disk and the digest of every particle.

    Attributes
    ----------
    files : list of Path
        The MRC stacks, in order; file ``f`` holds particles ``f*per_file ... (f+1)*per_file-1``.
    size : ParticleStackSize
        Counts and box.
    data_offsets : numpy.ndarray, shape (n_files,), int64
        Byte offset of the first particle in each file (1024 plus any extended header).
    digests : numpy.ndarray, shape (n_particles, 16), uint8
        BLAKE2b-128 of each particle's bytes, taken when it was written.
    """

    files: tuple[Path, ...]
    size: ParticleStackSize
    data_offsets: np.ndarray
    digests: np.ndarray

    @property
    def total_bytes(self) -> int:
        return sum(os.stat(f).st_size for f in self.files)

    @property
    def particle_bytes_total(self) -> int:
        return self.size.total_bytes

    def relocated(self, directory: Path) -> ParticleStack:
        """The same stack with its files in another directory (after a copy)."""
        return dataclasses.replace(self, files=tuple(directory / f.name for f in self.files))


def _digest(buffer) -> bytes:
    return hashlib.blake2b(buffer, digest_size=DIGEST_BYTES).digest()


def particle_file_name(index: int) -> str:
    return f"particles_{index:05d}.mrc"


def write_particle_stack(directory: Path, size: ParticleStackSize, seed: int,
                         progress: Callable[[int, int], None] | None = None) -> ParticleStack:
    """Generate and write the stack.

    Parameters
    ----------
    directory : Path
        Where the files go; created if missing. Must hold nothing of the user's with the same names.
    size : ParticleStackSize
        Particle count, box and file count.
    seed : int
        Seed; file ``f`` draws from ``numpy.random.default_rng([seed, f])``.
    progress : callable, optional
        Called as ``progress(files_done, n_files)``.

    Raises
    ------
    NotEnoughSpace
        Before anything is written, when the filesystem lacks room for the stack.
    """
    directory.mkdir(parents=True, exist_ok=True)
    per_file = size.per_file
    needed = size.total_bytes + size.n_files * MRC_HEADER_BYTES
    require_free_space(directory, needed, "the particle stack's directory")
    digests = np.empty((size.n_particles, DIGEST_BYTES), dtype=np.uint8)
    offsets = np.empty(size.n_files, dtype=np.int64)
    written: list[Path] = []
    try:
        with reporting_full_disk(directory, needed):
            for f in range(size.n_files):
                rng = np.random.default_rng([seed, f])
                data = rng.standard_normal((per_file, size.box, size.box), dtype=np.float32)
                for i in range(per_file):
                    digests[f * per_file + i] = np.frombuffer(_digest(data[i]), dtype=np.uint8)
                path = directory / particle_file_name(f)
                tmp = directory / f".{path.name}.tmp"
                written.append(tmp)
                with mrcfile.new(tmp, overwrite=True) as mrc:
                    mrc.set_data(data)
                    mrc.voxel_size = 1.0
                os.replace(tmp, path)
                written[-1] = path
                offsets[f], shape, _ = mrc_stack_layout(path)
                if shape != (per_file, size.box, size.box):
                    raise CryobenchError(f"{path}: written with shape {shape}, expected "
                                         f"{(per_file, size.box, size.box)}")
                if progress is not None:
                    progress(f + 1, size.n_files)
    except BaseException:
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    files = tuple(directory / particle_file_name(f) for f in range(size.n_files))
    return ParticleStack(files, size, offsets, digests)


def mrc_stack_layout(path: Path) -> tuple[int, tuple[int, int, int], np.dtype]:
    """Data offset, shape ``(n, ny, nx)`` and dtype of an MRC stack, from its header.

    Raises
    ------
    CryobenchError
        The file is not a readable MRC file, or is shorter than its header says.
    """
    try:
        with mrcfile.open(path, mode="r", header_only=True, permissive=False) as mrc:
            header = mrc.header
            shape = (int(header.nz), int(header.ny), int(header.nx))
            dtype = mrcfile.utils.data_dtype_from_header(header)
            offset = MRC_HEADER_BYTES + int(header.nsymbt)
    except (ValueError, OSError) as exc:
        raise CryobenchError(f"{path}: not a readable MRC file ({exc})") from None
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    actual = os.stat(path).st_size
    if actual < expected:
        raise CryobenchError(
            f"{path}: truncated MRC file: its header describes {expected} bytes, the file has {actual}")
    return offset, shape, dtype


@dataclasses.dataclass(frozen=True)
class ReadPlan:
    """The order of one pass over the stack, one read per particle.

    Attributes
    ----------
    particle : numpy.ndarray, shape (n_reads,), int64
        Global particle index of each read, in read order.
    file_index : numpy.ndarray, shape (n_reads,), int64
        File of each read.
    offset : numpy.ndarray, shape (n_reads,), int64
        Byte offset of each read within its file.
    """

    particle: np.ndarray
    file_index: np.ndarray
    offset: np.ndarray


def make_read_plan(stack: ParticleStack, order: str, seed: int = 0) -> ReadPlan:
    """Plan a pass: ``"sequential"`` (file order) or ``"random"`` (a seeded permutation)."""
    n = stack.size.n_particles
    if order == "sequential":
        particle = np.arange(n, dtype=np.int64)
    elif order == "random":
        particle = np.random.default_rng([seed, 0x5EED]).permutation(n).astype(np.int64)
    else:
        raise ValueError(f"unknown read order {order!r}")
    file_index, within = np.divmod(particle, stack.size.per_file)
    offset = stack.data_offsets[file_index] + within * stack.size.particle_bytes
    return ReadPlan(particle, file_index, offset)


class ParticleReader:
    """Reads a plan's particles one ``preadv`` each; keeps a sample for the content check.

    Parameters
    ----------
    stack : ParticleStack
        What to read (its ``files`` say where).
    plan : ReadPlan
        Read order.

    Notes
    -----
    All buffers and the per-read destination list are built here, before timing; the timed
    :meth:`read_all` opens the files, runs one ``preadv`` per particle and closes them.
    """

    def __init__(self, stack: ParticleStack, plan: ReadPlan) -> None:
        self.stack = stack
        self.plan = plan
        nbytes = stack.size.particle_bytes
        n_reads = len(plan.particle)
        n_keep = max(1, min(n_reads, VERIFY_BUDGET_BYTES // nbytes))
        self.kept_reads = np.linspace(0, n_reads - 1, n_keep).round().astype(np.int64)
        self.kept = np.zeros((n_keep, nbytes), dtype=np.uint8)
        self.kept.fill(0)  # touch every page now: first-touch page faults would land in the timed read
        scratch = memoryview(bytearray(nbytes))
        dests = [scratch] * n_reads
        for slot, read in enumerate(self.kept_reads.tolist()):
            dests[read] = memoryview(self.kept[slot])
        self._dests = [[d] for d in dests]
        self._file_index = plan.file_index.tolist()
        self._offset = plan.offset.tolist()
        self.expected_bytes = n_reads * nbytes

    def read_all(self) -> int:
        """Read every planned particle; returns the bytes read (short reads show as a deficit)."""
        fds = [os.open(path, os.O_RDONLY) for path in self.stack.files]
        try:
            preadv = os.preadv
            total = 0
            for f, off, dest in zip(self._file_index, self._offset, self._dests, strict=True):
                total += preadv(fds[f], dest, off)
            return total
        finally:
            for fd in fds:
                os.close(fd)

    def mismatched_particles(self) -> list[int]:
        """Global indices of kept particles whose bytes differ from their write-time digest."""
        bad = []
        for slot, read in enumerate(self.kept_reads.tolist()):
            particle = int(self.plan.particle[read])
            if _digest(self.kept[slot]) != self.stack.digests[particle].tobytes():
                bad.append(particle)
        return bad


def copy_stack(stack: ParticleStack, directory: Path) -> ParticleStack:
    """Copy every file of the stack into ``directory`` (as ``cp`` would); returns the copy."""
    copy_files(stack.files, [directory / path.name for path in stack.files])
    return stack.relocated(directory)


def copy_files(sources: Sequence[Path], targets: Sequence[Path]) -> None:
    """Copy ``sources[i]`` to ``targets[i]`` (as ``cp`` would), checking free space first.

    Raises
    ------
    NotEnoughSpace
        Before copying, or when the disk fills during the copy (the copies made are removed).
    """
    if not targets:
        return
    directory = targets[0].parent
    directory.mkdir(parents=True, exist_ok=True)
    needed = sum(os.stat(path).st_size for path in sources)
    require_free_space(directory, needed, "the cache dir")
    try:
        with reporting_full_disk(directory, needed):
            for source, target in zip(sources, targets, strict=True):
                copy_file(source, target)
    except BaseException:
        remove_stack_files(targets)
        raise


COPY_METHOD = "read+write, fsync"
"""How :func:`copy_stack_bytes` copies (recorded with the cache figure)."""
COPY_BLOCK = 16 << 20
"""Bytes per read and write of :func:`copy_stack_bytes`."""


def copy_stack_bytes(stack: ParticleStack, directory: Path,
                     buffer: bytearray | None = None) -> tuple[ParticleStack, int]:
    """Copy every file of the stack into ``directory`` as CryoSPARC's particle cache does.

    Every byte is read into memory and written out (no ``copy_file_range`` / ``sendfile``, which
    may clone extents on XFS reflink, btrfs or NFS 4.2 so that no byte moves), and each
    destination file is flushed to its device (``fsync``) before it is closed, so the figure is
    not that of a page-cache write.

    Parameters
    ----------
    stack : ParticleStack
    directory : Path
        Created if missing.
    buffer : bytearray, optional
        The transfer buffer (``COPY_BLOCK`` bytes by default), allocated before timing.

    Returns
    -------
    (ParticleStack, int)
        The copy, and the bytes written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    view = memoryview(buffer if buffer is not None else bytearray(COPY_BLOCK))
    written = 0
    for path in stack.files:
        with open(path, "rb", buffering=0) as fin, open(directory / path.name, "wb", buffering=0) as fout:
            while True:
                got = fin.readinto(view)
                if not got:
                    break
                done = 0
                while done < got:
                    done += fout.write(view[done:got])
                written += got
            os.fsync(fout.fileno())
    return stack.relocated(directory), written


def remove_stack_files(files: Sequence[Path]) -> None:
    """Delete stack files written by the harness (missing ones are ignored)."""
    for path in files:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_tree(directory: Path) -> None:
    """Delete a directory the harness created for this run."""
    shutil.rmtree(directory, ignore_errors=True)


def verify_sample(stack: ParticleStack, n: int = 64, seed: int = 11) -> list[int]:
    """Read a seeded sample of ``n`` particles and return those whose digest does not match."""
    total = stack.size.n_particles
    chosen = np.random.default_rng(seed).choice(total, size=min(n, total), replace=False)
    nbytes = stack.size.particle_bytes
    buffer = bytearray(nbytes)
    bad = []
    for particle in sorted(int(p) for p in chosen):
        f, i = divmod(particle, stack.size.per_file)
        with open(stack.files[f], "rb") as handle:
            handle.seek(int(stack.data_offsets[f]) + i * nbytes)
            got = handle.readinto(buffer)
        if got != nbytes or _digest(buffer) != stack.digests[particle].tobytes():
            bad.append(particle)
    return bad
