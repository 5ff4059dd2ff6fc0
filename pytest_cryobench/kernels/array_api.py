"""The array backend of the kernels: which namespace an array lives in, and what goes with it.

Every kernel takes its array module from its inputs (:func:`array_namespace`), so one code path
serves NumPy and CuPy. The SciPy functions that go with a namespace (``ndimage``, ``sparse``,
``fft``) come from :func:`scipy_namespace_for`, results come back to the host with
:func:`to_host`, and :func:`synchronize` waits for queued device work before a clock is read.
The layer follows SciPy's ``scipy/_lib/_array_api.py``.

CuPy is never imported here for its own sake: a namespace is ``cupy`` only when an array of it
was given, and then CuPy is already imported by whoever made the array.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy

_SCIPY_SUBMODULES = ("ndimage", "sparse", "fft")


def is_cupy(xp: ModuleType) -> bool:
    """Whether ``xp`` is the ``cupy`` namespace."""
    return getattr(xp, "__name__", None) == "cupy"


def _namespace_of_one(array: Any) -> ModuleType:
    if type(array).__module__.split(".")[0] == "cupy":
        return importlib.import_module("cupy")
    return numpy


def array_namespace(*arrays: Any) -> ModuleType:
    """``numpy`` or ``cupy``: the module of the arrays given (``None`` entries are skipped).

    Raises
    ------
    TypeError
        Arrays of different backends.
    """
    modules = {_namespace_of_one(a).__name__ for a in arrays if a is not None}
    if len(modules) > 1:
        raise TypeError(f"arrays from different backends: {sorted(modules)}")
    return _namespace_of_one(next(a for a in arrays if a is not None))


def scipy_namespace_for(xp: ModuleType, submodule: str | None = None) -> ModuleType:
    """``scipy`` for NumPy, ``cupyx.scipy`` for CuPy, or their ``submodule``.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``.
    submodule : {"ndimage", "sparse", "fft"}, optional
        The subpackage wanted, imported on demand.
    """
    base = "cupyx.scipy" if is_cupy(xp) else "scipy"
    if submodule is None:
        return importlib.import_module(base)
    if submodule not in _SCIPY_SUBMODULES:
        raise ValueError(f"unknown SciPy submodule {submodule!r}; known: {', '.join(_SCIPY_SUBMODULES)}")
    return importlib.import_module(f"{base}.{submodule}")


def to_host(array: Any) -> numpy.ndarray:
    """A host NumPy copy of a CuPy array, or the NumPy array itself (``numpy.asarray``)."""
    if type(array).__module__.split(".")[0] == "cupy":
        return array.get()
    return numpy.asarray(array)


def synchronize(xp: ModuleType, device: int | None = None) -> None:
    """Wait until the CUDA device (``device``, else the current one) has finished its queued work.

    A no-op for NumPy. Call it before every clock read that should include GPU work.
    """
    if is_cupy(xp):
        xp.cuda.Device(device).synchronize()


def bin_sums(index: Any, weights: Any = None, length: int | None = None) -> Any:
    """Per-bin sums of ``weights`` (counts without them): ``numpy.bincount(index, weights,
    minlength=length)``, on the indices' backend, without hidden device syncs.

    CuPy's ``bincount`` checks the indices for negatives and takes their maximum before it
    counts: two device synchronisations and two extra passes per call, in the hot loops of the
    back-projection and the FSC. On CuPy this is a scatter-add (``cupyx.scatter_add``) into
    ``length`` zeros instead, which queues without waiting; NumPy keeps ``numpy.bincount``.

    Parameters
    ----------
    index : int array, shape (N,)
        Bin of each element; every index must lie in ``[0, length)`` (not checked on CuPy, which
        is the point).
    weights : real array, shape (N,), optional
        Added into the bins; counts of 1 when omitted.
    length : int
        Number of bins (required on CuPy, where it is not read back from the indices).

    Returns
    -------
    float64 array (with weights) or int64 array (counts), shape (length,)
    """
    xp = array_namespace(index, weights)
    if not is_cupy(xp):
        return numpy.bincount(index, weights, minlength=length or 0)
    if length is None:
        raise ValueError("bin_sums on CuPy needs length: it does not read the indices back")
    import cupyx

    out = xp.zeros(int(length), dtype=xp.float64)
    cupyx.scatter_add(out, index, 1.0 if weights is None else weights.astype(xp.float64, copy=False))
    return out if weights is not None else out.astype(xp.int64)
