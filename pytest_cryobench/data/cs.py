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
from typing import Any

import numpy as np

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.measure.fsutil import atomic_write

CTF_BLOCK: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("ctf/type", "S9", ()), ("ctf/exp_group_id", "<u4", ()), ("ctf/accel_kv", "<f4", ()),
    ("ctf/cs_mm", "<f4", ()), ("ctf/amp_contrast", "<f4", ()), ("ctf/df1_A", "<f4", ()),
    ("ctf/df2_A", "<f4", ()), ("ctf/df_angle_rad", "<f4", ()), ("ctf/phase_shift_rad", "<f4", ()),
    ("ctf/scale", "<f4", ()), ("ctf/scale_const", "<f4", ()), ("ctf/shift_A", "<f4", (2,)),
    ("ctf/tilt_A", "<f4", (2,)), ("ctf/trefoil_A", "<f4", (2,)), ("ctf/tetra_A", "<f4", (4,)),
    ("ctf/anisomag", "<f4", (4,)), ("ctf/bfactor", "<f4", ()),
)
"""CryoSPARC's ``ctf`` block as its jobs write it: ``(field, dtype, shape)``. ``type`` is text
(``spline``), several fields are vectors; readers take only the fields they use, by name."""
MICROGRAPH_BLOB_BLOCK: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("micrograph_blob/path", "S", ()), ("micrograph_blob/idx", "<u4", ()),
    ("micrograph_blob/shape", "<u4", (2,)), ("micrograph_blob/psize_A", "<f4", ()),
    ("micrograph_blob/format", "S", ()), ("micrograph_blob/is_background_subtracted", "<u4", ()),
    ("micrograph_blob/vmin", "<f4", ()), ("micrograph_blob/vmax", "<f4", ()),
    ("micrograph_blob/import_sig", "<u8", ()),
)
BLOB_BLOCK: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("blob/path", "S", ()), ("blob/idx", "<u4", ()), ("blob/shape", "<u4", (2,)), ("blob/psize_A", "<f4", ()),
    ("blob/sign", "<f4", ()), ("blob/import_sig", "<u8", ()),
)
DEFAULT_TEXT = {"ctf/type": "spline", "micrograph_blob/format": "MRC/1.0", "blob/format": "MRC/1.0"}

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


def full_block_columns(n: int, blocks: Sequence[tuple[tuple[str, str, tuple[int, ...]], ...]],
                       values: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Columns of CryoSPARC's full field blocks for ``n`` rows: ``values`` where given, else
    CryoSPARC's defaults (``ctf/type`` ``spline``, zeros; ``ctf/anisomag`` the identity
    ``(1, 0, 0, 1)``, ``ctf/scale`` 1), in each block's order, then any other ``values``.

    Parameters
    ----------
    n : int
        Rows.
    blocks : sequence of blocks
        :data:`CTF_BLOCK`, :data:`MICROGRAPH_BLOB_BLOCK`, :data:`BLOB_BLOCK`.
    values : mapping of field name to array-like
        Given columns (broadcast to ``n`` rows).

    Returns
    -------
    dict of str to numpy.ndarray
        For :func:`make_dataset`.
    """
    out: dict[str, np.ndarray] = {}
    for block in blocks:
        for name, dtype, shape in block:
            if name in values:
                column = np.asarray(values[name])
                if dtype != "S":
                    column = column.astype(dtype if column.dtype.kind not in "US" else column.dtype)
                out[name] = np.broadcast_to(column, (n, *shape)).copy() if column.ndim < 1 + len(shape) else column
            elif dtype.startswith("S"):
                text = DEFAULT_TEXT.get(name, "")
                out[name] = np.full(n, text, dtype=dtype if len(dtype) > 1 else f"S{max(1, len(text))}")
            else:
                column = np.zeros((n, *shape), dtype=dtype)
                if name == "ctf/anisomag":
                    column[:] = (1, 0, 0, 1)
                elif name in ("ctf/scale", "blob/sign"):
                    column[:] = 1 if name == "ctf/scale" else -1
                out[name] = column
    out.update({name: np.asarray(v) for name, v in values.items() if name not in out})
    return out


def text_column(column: np.ndarray) -> np.ndarray:
    """A text field (fixed-width bytes or str) as ``str``, shape unchanged."""
    return np.char.decode(column, "utf-8") if column.dtype.kind == "S" else column.astype(str)


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
