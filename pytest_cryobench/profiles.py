"""Data sizes of the three profiles (``docs/design.md``, benchmark data). Ratios between profiles are kept."""

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
class EngineSize:
    """The engine cases' data and search grid.

    ``particles`` images of ``box^2`` pixels (``apix`` Å) in ``files`` stacks; the rotation grid
    has ``directions`` view directions times in-plane angles every ``psi_step_deg``; shifts are
    integer pixels up to ``shift_extent_px``; the search uses Fourier coefficients up to shell
    ``r_search``, the reconstruction up to ``r_reconstruct``; ``snr`` is the particles' signal to
    noise ratio (variance); the reconstruction's FSC against the truth must stay above 0.5 up to
    shell ``fsc05_shell``; ``batch`` caps the particles per batch.
    """

    particles: int
    box: int
    files: int
    apix: float
    directions: int
    psi_step_deg: float
    shift_extent_px: int
    r_search: int
    r_reconstruct: int
    snr: float
    fsc05_shell: int
    batch: int


@dataclasses.dataclass(frozen=True)
class RequirementSize:
    """Sizes of the requirements suite's measurements.

    ``triad_elements`` is the length of each float64 array of the memory-bandwidth triad (STREAM
    asks for 4x the last-level cache per array); ``storage_bytes`` the file read cold from the
    project dir; ``random_bytes`` the file read in random 256 KiB pieces from the cache dir;
    ``live_scale`` the linear size of the Live test movie relative to the camera's and
    ``live_frames`` its frames (``None``: the camera's; fewer pixels or frames are extrapolated
    to a whole movie).
    """

    triad_elements: int
    storage_bytes: int
    random_bytes: int
    live_scale: float
    live_frames: int | None


@dataclasses.dataclass(frozen=True)
class WorkflowSize:
    """The whole-workflow chain's data and searches (group ``workflow``).

    ``movies`` TIFF movies of ``size^2`` pixels (``apix`` Å) and ``frames`` frames at
    ``dose_per_frame`` counts per pixel, each holding ``particles`` particles; extraction boxes of
    ``box`` pixels Fourier-cropped to ``work_box``; the particles are band-limited at ``band_A``
    (the refinement's designed limit); ``patches`` per side for patch motion (patch CTF has its
    own 2, ``workflow.preprocess.CTF_PATCHES``);
    ``classes`` 2D classes; ab-initio at ``abinit_box`` with ``abinit_iterations`` mini-batches
    of ``abinit_batch``; refinement grids of ``refine_directions`` x ``refine_psi_deg``.
    """

    movies: int
    size: int
    frames: int
    particles: int
    apix: float
    box: int
    work_box: int
    dose_per_frame: float
    band_A: float
    patches: int
    classes: int
    abinit_box: int
    abinit_iterations: int
    abinit_batch: int
    refine_directions: int
    refine_psi_deg: float
    refine_iterations: int


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
    engine: EngineSize = EngineSize(256, 48, 4, 4.0, 46, 30.0, 1, 10, 16, 0.05, 8, 64)
    requirements: RequirementSize = RequirementSize(8 << 20, 64 << 20, 32 << 20, 0.125, 8)
    workflow: WorkflowSize = WorkflowSize(6, 512, 8, 40, 2.0, 48, 24, 40.0, 16.0, 3, 10, 24, 30, 60, 600, 10.0, 2)


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
        fsc_box=256, nu_box=160, picking_size=4096, picking_templates=10, picking_particles=600,
        engine=EngineSize(4_000, 128, 20, 2.0, 103, 20.0, 1, 20, 32, 0.01, 20, 500),
        requirements=RequirementSize(64 << 20, 1 << 30, 512 << 20, 0.5, 16),
        workflow=WorkflowSize(12, 2048, 20, 250, 1.5, 128, 64, 6.0, 8.0, 5, 20, 32, 100, 200, 3000, 5.0, 3)),
    "full": Profile(
        "full", ParticleStackSize(50_000, 256, 500),
        tiff=MovieSize(3, 11520, 8184, 70), mrc=MovieSize(3, 3710, 3838, 44),
        eer=MovieSize(3, 4096, 4096, 1008, fractions=48), io_rounds=3, cpu_rounds=3,
        fsc_box=384, nu_box=256, picking_size=4096, picking_micrographs=2, picking_templates=20,
        picking_particles=600, engine=EngineSize(20_000, 256, 100, 1.0, 412, 10.0, 2, 40, 64, 0.01, 40, 1000),
        requirements=RequirementSize(128 << 20, 4 << 30, 2 << 30, 1.0, None),
        workflow=WorkflowSize(40, 3838, 40, 600, 1.3, 256, 128, 4.0, 4.0, 7, 50, 48, 300, 500, 10000, 3.0, 4)),
}


def get_profile(name: str) -> Profile:
    return PROFILES[name]
