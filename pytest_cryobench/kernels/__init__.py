"""Compute kernels of the GPU workloads: array maths only, written once for NumPy and CuPy.

No I/O, no pytest and no test-data generators live here (those are in :mod:`pytest_cryobench.data`);
the array backend layer (namespace, SciPy counterparts, to-host, synchronise) is
:mod:`pytest_cryobench.kernels.array_api`.
"""
