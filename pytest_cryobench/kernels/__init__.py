"""Compute kernels of the GPU workloads, written once for NumPy and CuPy.

Every kernel takes its array module from its inputs (:func:`xp_of`), so one code path serves
both backends; SciPy's and CuPy's ``ndimage`` and ``sparse`` are picked the same way (:func:`ndimage_of`,
:func:`sparse_of`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pytest_cryobench.measure.backend import namespace_of


def xp_of(*arrays: Any) -> ModuleType:
    """``numpy`` or ``cupy``: the module of the first array given (all must agree)."""
    modules = {namespace_of(a).__name__ for a in arrays if a is not None}
    if len(modules) > 1:
        raise TypeError(f"arrays from different backends: {sorted(modules)}")
    return namespace_of(next(a for a in arrays if a is not None))


def ndimage_of(xp: ModuleType) -> ModuleType:
    """``scipy.ndimage`` for NumPy, ``cupyx.scipy.ndimage`` for CuPy."""
    if xp.__name__ == "cupy":
        import cupyx.scipy.ndimage as ndimage
    else:
        import scipy.ndimage as ndimage
    return ndimage


def sparse_of(xp: ModuleType) -> ModuleType:
    """``scipy.sparse`` for NumPy, ``cupyx.scipy.sparse`` for CuPy."""
    if xp.__name__ == "cupy":
        import cupyx.scipy.sparse as sparse
    else:
        import scipy.sparse as sparse
    return sparse


def fft_of(xp: ModuleType) -> ModuleType:
    """``numpy.fft`` or ``cupy.fft``."""
    return xp.fft
