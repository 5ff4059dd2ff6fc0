"""GPU benchmark: host-device copy bandwidth over PCIe, per direction, on every selected GPU.

``pcie_h2d`` and ``pcie_d2h`` time copies of 1 MB up to 1 GB (per profile) between device memory
and a pinned or a pageable host buffer with CUDA events, as nvbandwidth times copy-engine
transfers, and report GB/s for each (the compared figures: pinned and pageable at the largest size), with the PCIe
generation and width NVML reports, current and max, so that a card in a x8 slot or at Gen3 is
named. Without a GPU (``--cryobench-backend numpy``, no CuPy) they could not run, and say why.
"""

from __future__ import annotations

import warnings

import pytest

from pytest_cryobench.errors import CryobenchWarning
from pytest_cryobench.measure import host_link

pytestmark = pytest.mark.gpu


@pytest.mark.cryobench_name("pcie_{direction}")
@pytest.mark.parametrize("direction", host_link.DIRECTIONS)
def test_pcie(benchmark, cryobench_case, cryobench_backend, cryobench_profile, direction):
    backend = cryobench_backend
    if not backend.is_gpu:
        pytest.skip(f"pcie_{direction} times host-device copies: it needs a GPU and CuPy "
                    "(this run uses the NumPy backend)")
    cupy = backend.xp
    case = cryobench_case
    sizes = host_link.SIZES.get(cryobench_profile.name, host_link.SIZES["standard"])
    largest = max(sizes)
    tables = []

    def run(st):  # a round: every size, pinned and pageable, best of 5 copies each
        tables.append(host_link.bandwidth_table(cupy, direction, sizes))

    case.measure(benchmark, run, rounds=cryobench_profile.gpu_rounds, warmup_rounds=0)
    best = {kind: {size: max(t[kind][size] for t in tables) for size in sizes} for kind in ("pinned", "pageable")}
    link = host_link.link_info(backend.device.bus_id)
    case.metric("pinned_gb_per_s", best["pinned"][largest], "GB/s", better="higher")
    case.metric("pageable_gb_per_s", best["pageable"][largest], "GB/s", better="higher")
    case.info(direction=direction, sizes_bytes=list(sizes),
              pinned_gb_per_s={str(k): round(v, 3) for k, v in best["pinned"].items()},
              pageable_gb_per_s={str(k): round(v, 3) for k, v in best["pageable"].items()}, **link)
    problem = host_link.link_verdict(link)
    if problem:
        case.info(pcie_link_warning=problem)
        warnings.warn(CryobenchWarning(f"pcie_{direction} on {backend.label}: the link runs at {problem}"),
                      stacklevel=1)
