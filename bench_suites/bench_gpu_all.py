"""GPU benchmark: the engine on every selected GPU at once.

``all_gpus_engine`` runs the engine case ``memory_multi_linear10_max_C1`` (see
:mod:`pytest_cryobench.engine.passes`) on each selected GPU alone, then on all of them at once,
one worker thread per GPU, and reports each GPU's time together against its own time alone. A
slowdown names what the GPUs share on a multi-GPU worker: host memory bandwidth, a PCIe switch,
CPU cores (and, with threads, the Python interpreter lock for the host-side steps). On one GPU
it is the single case. Without a usable GPU it could not run, and says why.

The round's total is the wall time until the last GPU finishes; each GPU's pass synchronises
its device before its clock stops.
"""

from __future__ import annotations

import threading
import time

import pytest

from pytest_cryobench.engine.passes import EngineCase, make_config, run_pass
from pytest_cryobench.measure.backend import make_backend

pytestmark = pytest.mark.gpu
CASE = "memory_multi_linear10_max_C1"


def _plan_devices(run):
    if run.settings.backend == "numpy":
        pytest.skip("all_gpus_engine runs the engine on every GPU at once: it needs GPUs and CuPy "
                    "(this run uses the NumPy backend)")
    plan = run.backend_plan
    if plan.backend != "cupy":
        pytest.skip(plan.skip_reason)
    return plan.devices


def test_all_gpus_engine(benchmark, cryobench_case, cryobench_run, cryobench_profile, request):
    from pytest_cryobench.data.engine_source import ParticleReader

    devices = _plan_devices(cryobench_run)
    case = cryobench_case
    dataset = request.getfixturevalue("engine_dataset")  # generated only once GPUs are known
    reader = ParticleReader(dataset, request.getfixturevalue("engine_preloaded"))
    spec = EngineCase.parse(CASE)
    backends = [make_backend("cupy", device) for device in devices]
    configs = []
    for backend in backends:
        with backend.use():
            configs.append(make_config(cryobench_profile.engine, dataset.n, dataset.apix, backend.xp, spec,
                                       free_device_bytes=backend.free_memory_bytes()))

    def one(i: int) -> float:
        backend = backends[i]
        with backend.use():
            start = time.perf_counter()
            run_pass(dataset.reference, dataset.ctf, reader.read, dataset.particles, spec, configs[i], backend.xp,
                     device_context=backend.use)
            backend.synchronize()
            return time.perf_counter() - start

    alone = []
    for i in range(len(backends)):
        one(i)  # warm-up: plans, kernels, pool
        alone.append(one(i))
    together: list[list[float]] = []

    def all_at_once(st) -> None:
        times = [0.0] * len(backends)
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                times[i] = one(i)
            except BaseException as exc:  # raised in the caller below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,), name=f"cryobench-gpu{d.index}")
                   for i, d in enumerate(devices)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        together.append(times)

    case.measure(benchmark, all_at_once, rounds=cryobench_profile.gpu_rounds, warmup_rounds=0)
    best = [min(times[i] for times in together) for i in range(len(devices))]
    slowdown = {backend.label: round(best[i] / alone[i], 3) for i, backend in enumerate(backends)}
    case.amounts(particles=dataset.particles * len(devices))
    case.headline("all_gpus_engine")
    case.rates("particles_per_s")
    case.metric("worst_slowdown", max(slowdown.values()), "x", better="lower")
    case.info(engine_case=CASE, gpus=[b.label for b in backends], workers="one thread per GPU",
              alone_s={b.label: round(alone[i], 4) for i, b in enumerate(backends)},
              together_s={b.label: round(best[i], 4) for i, b in enumerate(backends)},
              slowdown=slowdown, batch=[c.batch for c in configs])
