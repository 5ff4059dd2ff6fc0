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
class MovieSize:
    """Shape of the synthetic movies of one format.

    Attributes
    ----------
    n_movies : int
        Movies per format (CryoSPARC's data set has 3).
    width, height : int
        Frame size, pixels (for EER: the physical 4K-style grid, before super-resolution).
    frames : int
        Frames per movie (for EER: hardware frames).
    fractions : int
        EER only: fractions the hardware frames are summed into when decoding.
    """

    n_movies: int
    width: int
    height: int
    frames: int
    fractions: int = 0

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclasses.dataclass(frozen=True)
class Profile:
    """All sizes of one profile.

    ``fsc_box`` and ``nu_box`` are the edges of the FSC and NU half maps (voxels); ``map_apix``
    their voxel size (Å); ``gpu_rounds`` the timed rounds of compute cases (after one warm-up).
    """

    name: str
    particles: ParticleStackSize
    tiff: MovieSize
    mrc: MovieSize
    eer: MovieSize
    io_rounds: int
    cpu_rounds: int
    fsc_box: int = 64
    nu_box: int = 48
    map_apix: float = 1.5
    gpu_rounds: int = 3
    picking_size: int = 1024
    picking_micrographs: int = 1
    picking_templates: int = 3
    picking_particles: int = 40


PROFILES = {
    "smoke": Profile(
        "smoke", ParticleStackSize(2_000, 64, 20),
        tiff=MovieSize(3, 1024, 768, 8), mrc=MovieSize(3, 512, 512, 8),
        eer=MovieSize(3, 256, 256, 100, fractions=10), io_rounds=3, cpu_rounds=3,
        fsc_box=64, nu_box=48),
    "standard": Profile(
        "standard", ParticleStackSize(10_000, 256, 100),
        tiff=MovieSize(3, 5760, 4092, 20), mrc=MovieSize(3, 3710, 3838, 20),
        eer=MovieSize(3, 4096, 4096, 200, fractions=40), io_rounds=3, cpu_rounds=3,
        fsc_box=256, nu_box=160, picking_size=4096, picking_templates=10, picking_particles=600),
    "full": Profile(
        "full", ParticleStackSize(50_000, 256, 500),
        tiff=MovieSize(3, 11520, 8184, 70), mrc=MovieSize(3, 3710, 3838, 44),
        eer=MovieSize(3, 4096, 4096, 1008, fractions=48), io_rounds=3, cpu_rounds=3,
        fsc_box=384, nu_box=256, picking_size=4096, picking_micrographs=2, picking_templates=20,
        picking_particles=600),
}


def get_profile(name: str) -> Profile:
    return PROFILES[name]
