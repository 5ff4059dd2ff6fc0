"""Filesystem benchmark: particle cache copy, sequential and random reads.

The randn particle stack is written to the project dir once per run (untimed), copied to the
cache dir (``particle_cache``: every byte read and written, each copy flushed to its device
with ``fsync`` inside the clock, as CryoSPARC's cache copies; no extent cloning), and read back
cold, one particle per read, in file order
(``particle_sequential_read``) and in a seeded random order (``particle_random_read``). With
``--cryobench-no-ssd`` the reads come from the project dir and there is no cache step.
"""

from __future__ import annotations

import pytest

from pytest_cryobench.data import particles
from pytest_cryobench.measure.fsutil import require_free_space

# Disk figures are noisier than compute figures: references allow a 1.5x slowdown.
pytestmark = [pytest.mark.fs, pytest.mark.cryobench_tolerance(1.5)]
RANDOM_ORDER_SEED = 7


def test_particle_cache(benchmark, cryobench_case, cryobench_profile,
                        particle_stack, cache_work_dir):
    """Copy the stack from the project dir to the cache dir, source evicted before each round."""
    case = cryobench_case
    destination = cache_work_dir / "cache-copy"
    require_free_space(cache_work_dir, particle_stack.total_bytes, "cache dir")
    copies = []
    buffer = bytearray(particles.COPY_BLOCK)

    def remove_previous_copy():
        particles.remove_tree(destination)

    def copy(st):
        with st.span("copy_particles", "IO"):
            copies.append(particles.copy_stack_bytes(particle_stack, destination, buffer))

    case.measure(benchmark, copy, rounds=cryobench_profile.io_rounds,
                 setup=remove_previous_copy, cold_files=lambda: particle_stack.files)
    try:
        copy_, _ = copies[-1]
        short = [(n, w) for n, (_, w) in enumerate(copies) if w != particle_stack.total_bytes]
        sizes = [p.stat().st_size for p in copy_.files] == [p.stat().st_size for p in particle_stack.files]
        case.check("copy_bytes", not short and sizes,
                   f"round {short[0][0]} wrote {short[0][1]} of {particle_stack.total_bytes} bytes" if short
                   else "a cached file differs in size from its source", expected=particle_stack.total_bytes)
        mismatched = particles.verify_sample(copy_)
        case.check("copy_content", not mismatched, f"{len(mismatched)} particle(s) differ after the copy",
                   mismatched=len(mismatched))
    finally:
        particles.remove_tree(destination)
    case.amounts(bytes=particle_stack.total_bytes)
    case.headline("particle_cache_time")
    case.rates("mb_per_s")
    case.info(files=len(particle_stack.files), copy_method=particles.COPY_METHOD)


def _read_case(case, benchmark, stack, order: str, rounds: int) -> None:
    reader = particles.ParticleReader(stack, particles.make_read_plan(stack, order, RANDOM_ORDER_SEED))
    bytes_read = []

    def read(st):
        with st.span("read_particles", "IO"):
            bytes_read.append(reader.read_all())

    case.measure(benchmark, read, rounds=rounds, cold_files=lambda: stack.files)
    short = [n for n in bytes_read if n != reader.expected_bytes]
    case.check("bytes_read", not short,
               f"a round read {short[0] if short else 0} bytes, expected {reader.expected_bytes}",
               expected=reader.expected_bytes)
    mismatched = reader.mismatched_particles()
    case.check("content", not mismatched, f"{len(mismatched)} particle(s) differ from what was written",
               particles_checked=len(reader.kept_reads), mismatched=len(mismatched))
    n = stack.size.n_particles
    case.amounts(particles=n, bytes=reader.expected_bytes)
    case.headline(f"particle_{order}_read_time")
    case.rates("particles_per_s", "mb_per_s")
    case.info(particle_bytes=stack.size.particle_bytes, reads=n, source=str(stack.files[0].parent))


def test_particle_sequential_read(benchmark, cryobench_case, cryobench_profile, particle_source):
    """Every particle in file order, one read each, cold cache."""
    _read_case(cryobench_case, benchmark, particle_source, "sequential", cryobench_profile.io_rounds)


def test_particle_random_read(benchmark, cryobench_case, cryobench_profile, particle_source):
    """Every particle once in a seeded random order, one read each, cold cache."""
    _read_case(cryobench_case, benchmark, particle_source, "random", cryobench_profile.io_rounds)
