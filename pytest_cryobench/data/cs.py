"""CryoSPARC ``.cs`` datasets: NumPy structured arrays saved in ``.npy`` format.

A ``.cs`` file is what ``cryosparc-tools``' ``Dataset.save`` writes by default: an ``.npy``
file (magic ``\\x93NUMPY``) of one structured array whose fields are named ``group/field``
(``uid``, ``blob/path``, ``alignments3D/pose``, ``ctf/df1_A``, ...). Strings are fixed-width
bytes. The newer compressed stream format (magic ``\\x95CSDAT``) is recognised and refused with
a message saying how to convert it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.measure.fsutil import atomic_write

NPY_MAGIC = b"\x93NUMPY"
CSDAT_MAGIC = b"\x95CSDAT"


def make_dataset(columns: Mapping[str, np.ndarray], uid_seed: int = 0) -> np.ndarray:
    """Build a structured array from columns of equal length.

    Parameters
    ----------
    columns : mapping of str to array
        Field name -> values; a column of shape ``(n, k)`` becomes a sub-array field of ``k``
        values (``alignments3D/pose`` is ``(n, 3)`` float32). Text columns become fixed-width
        bytes. A ``uid`` column is added (seeded random uint64) unless given.
    uid_seed : int
        Seed of the generated uids.

    Returns
    -------
    numpy.ndarray, shape (n,)
        The dataset.
    """
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns of different lengths: { {k: len(v) for k, v in arrays.items()} }")
    n = lengths.pop()
    if "uid" not in arrays:
        arrays = {"uid": np.random.default_rng(uid_seed).integers(1, 2**63, n, dtype=np.uint64), **arrays}
    dtype = []
    for name, array in arrays.items():
        if array.dtype.kind in "US":
            array = np.char.encode(array, "utf-8") if array.dtype.kind == "U" else array
            arrays[name] = array
        dtype.append((name, array.dtype.str, array.shape[1:]) if array.ndim > 1 else (name, array.dtype.str))
    out = np.empty(n, dtype=dtype)
    for name, array in arrays.items():
        out[name] = array
    return out


def write_cs(path: Path, dataset: np.ndarray) -> None:
    """Save a dataset as a ``.cs`` file (``.npy`` format, written atomically)."""
    with atomic_write(Path(path), "wb") as handle:
        np.save(handle, dataset, allow_pickle=False)


def read_cs(path: Path, required: Sequence[str] = ()) -> np.ndarray:
    """Load a ``.cs`` file and check it has the ``required`` fields.

    Raises
    ------
    CryobenchError
        Missing, not a ``.cs`` file, truncated, in the compressed CSDAT format, or lacking a
        required field; the message names the file (and the missing fields).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise CryobenchError(f"{path}: cannot read this .cs file ({exc.strerror})") from None
    if magic == CSDAT_MAGIC:
        raise CryobenchError(f"{path}: a compressed CSDAT .cs file; convert it with cryosparc-tools "
                             "(Dataset.load(path).save(out)) to the plain format")
    if magic != NPY_MAGIC:
        raise CryobenchError(f"{path}: not a .cs dataset (no NumPy header)")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CryobenchError(f"{path}: damaged or truncated .cs file ({exc})") from None
    if data.dtype.names is None:
        raise CryobenchError(f"{path}: not a .cs dataset (an array without named fields)")
    missing = [name for name in required if name not in data.dtype.names]
    if missing:
        raise CryobenchError(f"{path}: the dataset lacks field(s) {', '.join(missing)} "
                             f"(it has {len(data.dtype.names)}: {', '.join(data.dtype.names[:12])}...)")
    return data
