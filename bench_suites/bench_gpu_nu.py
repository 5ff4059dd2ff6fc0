"""GPU benchmark: Non-Uniform Refinement's core, ``matched_cv_filter_estimation``.

Per round: upload both half maps (``put_maps_on_gpu``, PCIe), estimate the local filter by
matched cross-validation over the candidate low-pass filters (many 3-D FFTs; spans ``fft``,
``filter``, ``cv_error``, ``argmin``), download the resolution map (``get_resolution_map``).
The index map the checks read comes to the host after the clock stops.

Known answer (generated data): the two regions of the half maps are band-limited at 4.5 and
9 Å; the median of the resolution map inside each region must be within one candidate step of
its band limit. Real data: the resolution map must be finite and within the candidates' range,
and the same in every round.
"""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cryobench.kernels.nu_filter import candidate_resolutions, matched_cv_filter_estimation, memory_plan

pytestmark = pytest.mark.gpu


def test_matched_cv_filter_estimation(benchmark, cryobench_case, cryobench_backend, cryobench_profile, nu_maps):
    case = cryobench_case
    backend = cryobench_backend
    xp = backend.xp
    half_a, half_b, apix, truth = nu_maps
    n = half_a.shape[0]
    candidates = candidate_resolutions(n, apix)
    maps = []
    last = {}

    def run(st):
        with st.span("put_maps_on_gpu", "PCIe"):
            a, b = xp.asarray(half_a), xp.asarray(half_b)
        result = matched_cv_filter_estimation(a, b, apix, candidates, sub_timings=st)
        with st.span("get_resolution_map", "PCIe"):
            maps.append(backend.asnumpy(result.resolution_map))
        last["index_map"] = result.index_map  # stays on the device until the clock stops
        case.info(n_fft=int(result.n_fft))

    case.measure(benchmark, run, rounds=cryobench_profile.gpu_rounds, warmup_rounds=1)
    index_map, resolution_map = backend.asnumpy(last.pop("index_map")), maps[-1]
    if truth is not None:
        for region, limit in zip(("region1_core", "region2_core"), truth["band_limits_A"], strict=True):
            expected = int(np.argmin(np.abs(candidates - limit)))
            found = int(np.median(index_map[truth[region]]))
            case.check(f"{region}_band_limit", abs(found - expected) <= 1,
                       f"{region}: found candidate {found} ({candidates[found]:.2f} A), "
                       f"expected {expected} ({limit} A) within one step",
                       found_A=float(candidates[found]), expected_A=float(limit))
    else:
        case.check("resolution_map_sane", bool(np.isfinite(resolution_map).all())
                   and resolution_map.min() >= candidates.min() - 1e-3
                   and resolution_map.max() <= candidates.max() + 1e-3,
                   "the resolution map is not finite or leaves the candidates' range")
        case.check("rounds_agree", all(np.array_equal(m, resolution_map) for m in maps),
                   "rounds chose different local filters on the same data")
    case.amounts(voxel_candidates=n**3 * len(candidates))  # voxels times candidate filters
    case.headline("matched_cv_filter_estimation")
    case.rates("voxel_candidates_per_s")
    case.info(box=n, apix=apix, candidates=len(candidates), memory_plan_bytes=int(memory_plan(n, len(candidates))))
