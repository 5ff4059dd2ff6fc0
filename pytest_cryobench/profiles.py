"""Data sizes of the three profiles (SPEC section 4). Ratios between profiles are kept."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ParticleStackSize:
    """Size of the random particle stack of the filesystem benchmark.

    Attributes
    ----------
    n_particles : int
        Number of particles in the whole stack.
    box : int
        Edge of one particle image, pixels (each particle is ``box x box`` float32).
    n_files : int
        Number of MRC files the stack is split into (``n_particles / n_files`` each).
    """

    n_particles: int
    box: int
    n_files: int

    @property
    def particle_bytes(self) -> int:
        return self.box * self.box * 4

    @property
    def per_file(self) -> int:
        return self.n_particles // self.n_files

    @property
    def total_bytes(self) -> int:
        return self.n_particles * self.particle_bytes


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    particles: ParticleStackSize
    io_rounds: int


PROFILES = {
    "smoke": Profile("smoke", ParticleStackSize(2_000, 64, 20), io_rounds=3),
    "standard": Profile("standard", ParticleStackSize(10_000, 256, 100), io_rounds=3),
    "full": Profile("full", ParticleStackSize(50_000, 256, 500), io_rounds=3),
}


def get_profile(name: str) -> Profile:
    return PROFILES[name]
