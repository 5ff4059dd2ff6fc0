"""GPU benchmark: the alignment and reconstruction engine, CryoSPARC's 14 cases.

Each round is one pass over the particle set (see :mod:`pytest_cryobench.engine.passes`): project
the reference at every rotation of the grid, then per batch read (``disk``: from the stacks in
the cache dir, cold page cache at the start of the round; ``memory``: preloaded), upload,
transform, CTF, score every rotation and shift, assign (``max`` / ``marg``), insert (times the
14 operators for ``D7``), and finally reconstruct.

The clock covers the whole pass, reading included; the checks run after it stops.

Known answer (generated data, made without the search code: particles are analytic real-space
projections of a D7-symmetric blob volume at poses and shifts drawn from the search grid, with a
CTF written from its documented formula and noise at the stated SNR; the D7 group written out),
checked after the timed rounds (see :mod:`pytest_cryobench.engine.checks`): ``poses``: at least
90% of best rotations within one grid step of the truth (up to the volume's symmetry);
``shifts``: the shift right for those; for ``marg``, ``marg_peak_at_truth``: the posterior peaks
within a grid step of the true pose for 95% of the high-SNR particles, and
``marg_spread_follows_snr``: their posteriors are narrower than the low-SNR particles' (fewer
poses hold 0.999 of the mass) and peak exactly at the truth at least as often;
``reconstruction_fsc``: the reconstruction's FSC against the true volume stays above 0.5 up to
the resolution stated in the data's ground truth; ``projection``: slices of the true volume
(prepared as the pass prepares its reference) at true poses match the analytic transforms of the
blobs; for ``linear20``, ``cubic_more_accurate``: tricubic slices of that volume are closer to them
than trilinear ones; for ``D7``, ``symmetry_operators``: the engine's operators are the group's
14 rotations. A real data set (no truth): ``reconstruction_finite`` and, for ``marg``,
``marg_posterior_finite``.
"""

from __future__ import annotations

import pytest

from pytest_cryobench.engine.passes import ENGINE_CASES, EngineCase, make_config, run_pass

pytestmark = pytest.mark.gpu


@pytest.mark.cryobench_name("{name}")
@pytest.mark.parametrize("name", ENGINE_CASES)
def test_engine(benchmark, cryobench_case, cryobench_backend, cryobench_profile, engine_dataset, request, name):
    from pytest_cryobench.data.engine_source import ParticleReader
    from pytest_cryobench.engine import checks as engine_checks

    case = cryobench_case
    backend = cryobench_backend
    xp = backend.xp
    spec = EngineCase.parse(name)
    if spec.location == "disk":
        dataset = request.getfixturevalue("engine_disk_dataset")
        reader = ParticleReader(dataset)
        cold_files = lambda: dataset.stacks  # noqa: E731
    else:
        dataset = engine_dataset
        reader = ParticleReader(dataset, request.getfixturevalue("engine_preloaded"))
        cold_files = None
    config = make_config(cryobench_profile.engine, dataset.n, dataset.apix, xp, spec,
                         free_device_bytes=backend.free_memory_bytes())
    results = []

    def run(st):
        results.append(run_pass(dataset.reference, dataset.ctf, reader.read, dataset.particles, spec, config, xp,
                                st, device_context=backend.use))

    case.measure(benchmark, run, rounds=cryobench_profile.gpu_rounds, warmup_rounds=1, cold_files=cold_files)
    result = results[-1]
    engine_checks.check_pass(case, spec, config, dataset, result, xp)
    poses = dataset.particles * len(config.grid.matrices) * len(config.shifts.shifts)
    case.amounts(particles=dataset.particles, poses=poses)
    case.headline(name)
    case.rates("particles_per_s", "poses_per_s")
    case.info(box=dataset.n, batch=config.batch, batches=result.batches,
              rotations=len(config.grid.matrices), grid_step_deg=config.grid.step_deg,
              shifts=len(config.shifts.shifts), r_search=config.r_search, r_reconstruct=config.r_reconstruct,
              insertions=result.insertions, read_compute_overlap_s=engine_checks.overlap(result))
