"""The engine's inputs on disk: the ``.cs`` dataset, the particle stacks and the volumes.

:func:`load_engine_dataset` reads and checks everything a pass needs before anything is timed,
with one clear error per problem: a ``.cs`` file without pose or CTF fields, stacks holding fewer
particles than the ``.cs`` file names, stacks whose box differs from the volume's.
:class:`ParticleReader` reads a batch of particles from the stacks (one ``pread`` per run of
consecutive particles in a file) or from memory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.data.cs import read_cs
from pytest_cryobench.data.engine import ENGINE_DIR, PARTICLES_CS, REFERENCE_VOLUME, TRUTH_VOLUME
from pytest_cryobench.data.maps import read_map
from pytest_cryobench.data.particles import mrc_stack_layout
from pytest_cryobench.errors import CryobenchError

POSE_FIELDS = ("alignments3D/pose", "alignments3D/shift")
CTF_FIELDS = ("ctf/df1_A", "ctf/df2_A", "ctf/df_angle_rad", "ctf/accel_kv", "ctf/cs_mm", "ctf/amp_contrast")
BLOB_FIELDS = ("blob/path", "blob/idx")


@dataclasses.dataclass(frozen=True)
class EngineDataset:
    """Everything an engine pass reads, checked.

    Attributes
    ----------
    reference : numpy.ndarray of float32, shape (n, n, n)
        The search reference.
    truth : numpy.ndarray of float32, shape (n, n, n), or None
        The volume the particles were made from (generated data only).
    apix : float
        Pixel size, Å.
    stacks : tuple of Path
        The particle stacks, in the order of their first use.
    file_index, particle_index : numpy.ndarray of int64, shape (P,)
        Where each particle lives: stack and index within it.
    offsets : numpy.ndarray of int64, shape (n_stacks,)
        Byte offset of each stack's first particle.
    poses : numpy.ndarray of float64, shape (P, 3) or None
        ``alignments3D/pose`` (axis-angle, radians).
    shifts : numpy.ndarray of float64, shape (P, 2) or None
        ``alignments3D/shift`` (pixels).
    ctf : CtfParams
        Per-particle CTF.
    truth_info : dict or None
        Ground truth of generated data (grid, SNR, designed resolution).
    """

    reference: np.ndarray
    truth: np.ndarray | None
    apix: float
    stacks: tuple[Path, ...]
    file_index: np.ndarray
    particle_index: np.ndarray
    offsets: np.ndarray
    poses: np.ndarray | None
    shifts: np.ndarray | None
    ctf: Any
    truth_info: dict[str, Any] | None

    @property
    def n(self) -> int:
        return int(self.reference.shape[0])

    @property
    def particles(self) -> int:
        return int(self.file_index.size)

    def relocated(self, stacks: Sequence[Path]) -> EngineDataset:
        """The same dataset reading its particles from copies of the stacks (same order)."""
        if len(stacks) != len(self.stacks):
            raise ValueError("a relocated dataset needs one path per stack")
        return dataclasses.replace(self, stacks=tuple(Path(p) for p in stacks))


def _resolve_blob(root: Path, cs_path: Path, blob: str) -> Path:
    """A ``blob/path`` is relative to the project (job folders): try the engine folder, then the root."""
    for base in (cs_path.parent, root / ENGINE_DIR, root):
        candidate = base / blob
        if candidate.is_file():
            return candidate
    raise CryobenchError(f"{cs_path}: particle stack {blob!r} not found under {cs_path.parent} or {root}")


def load_engine_dataset(root: Path, truth_info: dict[str, Any] | None = None, *,
                        cs_name: str = PARTICLES_CS, reference_name: str = REFERENCE_VOLUME,
                        truth_name: str | None = TRUTH_VOLUME, limit: int | None = None) -> EngineDataset:
    """Read and check the engine's inputs under a data root.

    Parameters
    ----------
    root : Path
        The data set (generated or CryoSPARC's).
    truth_info : dict, optional
        Ground truth of generated data.
    cs_name, reference_name, truth_name : str
        Paths relative to ``root``; ``truth_name`` may be ``None`` or missing (real data).
    limit : int, optional
        Use only the first ``limit`` particles.

    Raises
    ------
    CryobenchError
        A missing or unreadable file, a ``.cs`` file without the pose, CTF or blob fields, a
        particle index beyond its stack's length, or stacks whose box differs from the volume's.
    """
    from pytest_cryobench.kernels.pose_search import CtfParams

    root = Path(root)
    cs_path = root / cs_name
    data = read_cs(cs_path, required=BLOB_FIELDS + POSE_FIELDS + CTF_FIELDS)
    if limit is not None:
        data = data[:limit]
    if len(data) == 0:
        raise CryobenchError(f"{cs_path}: the dataset has no particles")
    reference, apix = read_map(root / reference_name)
    if reference.ndim != 3 or len(set(reference.shape)) != 1:
        raise CryobenchError(f"{root / reference_name}: the reference must be a cubic volume, got {reference.shape}")
    n = reference.shape[0]
    truth = None
    if truth_name is not None and (root / truth_name).is_file():
        truth, _ = read_map(root / truth_name)
        if truth.shape != reference.shape:
            raise CryobenchError(f"{root / truth_name}: shape {truth.shape} differs from the reference's "
                                 f"{reference.shape}")
    paths = np.char.decode(data["blob/path"].astype(bytes), "utf-8") if data["blob/path"].dtype.kind == "S" \
        else data["blob/path"].astype(str)
    names, file_index = np.unique(paths, return_inverse=True)
    stacks, offsets = [], []
    index = data["blob/idx"].astype(np.int64)
    for f, blob in enumerate(names):
        path = _resolve_blob(root, cs_path, str(blob))
        offset, shape, dtype = mrc_stack_layout(path)
        if dtype != np.float32:
            raise CryobenchError(f"{path}: particles must be float32 (MRC mode 2), got {dtype}")
        if shape[1:] != (n, n):
            raise CryobenchError(f"{path}: particles of {shape[2]}x{shape[1]} px, but the volume "
                                 f"{root / reference_name} is {n}^3: the box must match")
        used = index[file_index == f]
        if used.max() >= shape[0] or used.min() < 0:
            raise CryobenchError(f"{cs_path}: names particle {int(used.max())} of {path}, which holds "
                                 f"{shape[0]}: the .cs file does not match the stacks")
        stacks.append(path)
        offsets.append(offset)
    ctf = CtfParams(data["ctf/df1_A"].astype(np.float64), data["ctf/df2_A"].astype(np.float64),
                    data["ctf/df_angle_rad"].astype(np.float64), accel_kv=float(data["ctf/accel_kv"][0]),
                    cs_mm=float(data["ctf/cs_mm"][0]), amp_contrast=float(data["ctf/amp_contrast"][0]))
    return EngineDataset(reference.astype(np.float32, copy=False),
                         None if truth is None else truth.astype(np.float32, copy=False), float(apix),
                         tuple(stacks), file_index.astype(np.int64), index, np.asarray(offsets, dtype=np.int64),
                         data["alignments3D/pose"].astype(np.float64),
                         data["alignments3D/shift"].astype(np.float64), ctf, truth_info)


class ParticleReader:
    """Reads batches of particles, from the stacks on disk or from a copy in memory.

    Parameters
    ----------
    dataset : EngineDataset
    preloaded : numpy.ndarray, shape (P, n, n), optional
        All particles in memory (``memory`` cases); batches are then views of it.
    """

    def __init__(self, dataset: EngineDataset, preloaded: np.ndarray | None = None) -> None:
        self.dataset = dataset
        self.preloaded = preloaded
        self.bytes_read = 0

    @property
    def files(self) -> tuple[Path, ...]:
        return self.dataset.stacks

    def read(self, lo: int, hi: int, out: np.ndarray | None = None) -> np.ndarray:
        """Particles ``lo .. hi - 1`` as float32, shape (hi - lo, n, n).

        From disk: one ``os.pread`` per run of consecutive particles of one stack, into ``out``
        (or a new array). Raises CryobenchError on a short read (a stack truncated meanwhile).
        """
        if self.preloaded is not None:
            return self.preloaded[lo:hi]
        d = self.dataset
        n = d.n
        count = hi - lo
        out = np.empty((count, n, n), dtype=np.float32) if out is None else out[:count]
        files, idx = d.file_index[lo:hi], d.particle_index[lo:hi]
        # runs: same file and the next particle of it
        breaks = np.flatnonzero((np.diff(files) != 0) | (np.diff(idx) != 1)) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [count]])
        per = n * n * 4
        view = out.reshape(count, -1).view(np.uint8)
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            f = int(files[s])
            fd = os.open(d.stacks[f], os.O_RDONLY)
            try:
                want = (e - s) * per
                got = os.preadv(fd, [memoryview(view[s:e]).cast("B")], int(d.offsets[f]) + int(idx[s]) * per)
            finally:
                os.close(fd)
            if got != want:
                raise CryobenchError(f"{d.stacks[f]}: short read ({got} of {want} bytes): the stack changed on disk")
            self.bytes_read += got
        return out

    def preload(self) -> np.ndarray:
        """Every particle in memory (for the ``memory`` cases)."""
        return self.read(0, self.dataset.particles)
