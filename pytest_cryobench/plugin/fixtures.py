"""Fixtures for the benchmark suites. Registered as a plugin only when ``--cryobench`` is on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cryobench.data import particles
from pytest_cryobench.measure.backend import make_backend
from pytest_cryobench.measure.fsutil import ensure_writable_dir, require_free_space
from pytest_cryobench.measure.gpus import label
from pytest_cryobench.measure.progress import progress
from pytest_cryobench.measure.rounds import PROFILE_ROUNDS
from pytest_cryobench.plugin.case import CASE_KEY, Case
from pytest_cryobench.plugin.naming import case_identity
from pytest_cryobench.plugin.session import DATA_SEED, RUN_KEY, RunState
from pytest_cryobench.profiles import get_profile
from pytest_cryobench.record.model import CaseRecord


@pytest.fixture(scope="session")
def cryobench_run(pytestconfig: pytest.Config) -> RunState:
    """The run's state: settings, references, records."""
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture(scope="session")
def cryobench_profile(cryobench_run: RunState):
    """Sizes of the selected profile."""
    return get_profile(cryobench_run.settings.profile)


@pytest.fixture
def cryobench_case(request: pytest.FixtureRequest, cryobench_run: RunState) -> Case:
    """The :class:`~pytest_cryobench.plugin.case.Case` of this test: measure, metrics, checks."""
    group, test = case_identity(request.node)
    record = CaseRecord(group=group, test=test, nodeid=request.node.nodeid)
    s = cryobench_run.settings
    backend = request.getfixturevalue("cryobench_backend") if "cryobench_backend" in request.fixturenames else None
    case = Case(record, drop_caches=s.drop_caches, rounds=s.rounds, backend=backend,
                policy=PROFILE_ROUNDS[s.profile])
    request.node.stash[CASE_KEY] = case
    return case


def _project_work_dir(run: RunState) -> Path:
    s = run.settings
    where = f"project dir ({s.sources['project-dir']})"
    ensure_writable_dir(s.project_dir, where, create=s.sources["project-dir"] == "default")
    return run.work_dir(s.project_dir)


def _cache_work_dir(run: RunState) -> Path:
    s = run.settings
    where = f"cache dir ({s.sources['cache-dir']})"
    ensure_writable_dir(s.cache_dir, where, create=s.cache_dir_is_default)
    return run.work_dir(s.cache_dir)


@pytest.fixture(scope="session")
def particle_stack(pytestconfig: pytest.Config, cryobench_run: RunState,
                   cryobench_profile) -> Iterator[particles.ParticleStack]:
    """The random particle stack, written to the project dir (removed at the end)."""
    directory = _project_work_dir(cryobench_run) / "particles"
    size = cryobench_profile.particles
    with progress(pytestconfig, f"writing {size.n_particles} particles to {directory}") as update:
        stack = particles.write_particle_stack(directory, size, DATA_SEED, update)
    yield stack
    if not cryobench_run.settings.keep_data:
        particles.remove_tree(directory)


@pytest.fixture(scope="session")
def particle_source(pytestconfig: pytest.Config, cryobench_run: RunState,
                    particle_stack: particles.ParticleStack) -> Iterator[particles.ParticleStack]:
    """Where particle reads come from: a copy in the cache dir, or the project dir without SSD."""
    if not cryobench_run.settings.use_ssd:
        yield particle_stack
        return
    directory = _cache_work_dir(cryobench_run) / "particles"
    require_free_space(cryobench_run.settings.cache_dir, particle_stack.total_bytes, "cache dir")
    stack = particles.copy_stack(particle_stack, directory)
    yield stack
    if not cryobench_run.settings.keep_data:
        particles.remove_tree(directory)


@pytest.fixture(scope="session")
def project_work_dir(cryobench_run: RunState) -> Path:
    """This run's own directory inside the project dir (removed at the end of the run)."""
    return _project_work_dir(cryobench_run)


@pytest.fixture(scope="session")
def cache_work_dir(cryobench_run: RunState) -> Path:
    """This run's own directory inside the cache dir (skips the case under ``--cryobench-no-ssd``)."""
    if not cryobench_run.settings.use_ssd:
        pytest.skip("--cryobench-no-ssd: particles are read from the project dir, no cache step")
    return _cache_work_dir(cryobench_run)


@pytest.fixture
def cryobench_backend(cryobench_run: RunState, cryobench_device: str):
    """The array backend of this case's device; skips with the reason where no GPU is usable."""
    backend = backend_for(cryobench_run, cryobench_device)
    with backend.use():
        yield backend


@pytest.fixture(scope="session")
def movie_source(pytestconfig: pytest.Config, cryobench_run: RunState, cryobench_profile):
    """Movies of each format: generated (and cached) on first use, or the real data set's."""
    from pytest_cryobench.data.sources import MovieSource
    from pytest_cryobench.measure.progress import say

    s = cryobench_run.settings
    return MovieSource(cryobench_profile, s.data_dir, s.data, DATA_SEED,
                       progress_for=lambda label: progress(pytestconfig, label),
                       say=lambda text: say(pytestconfig, text))


@pytest.fixture(scope="session")
def shm_work_dir(cryobench_run: RunState) -> Path:
    """This run's directory in ``/dev/shm`` (RAM), where movies are copied before decoding."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm on this machine: decompression is measured from a RAM copy only")
    return cryobench_run.work_dir(shm)


def _real_half_maps(movie_source):
    """A real data set's ``gpu_fsc_test`` half maps: ``(half_a, half_b, apix)``."""
    from pytest_cryobench.data.maps import read_half_maps

    root = movie_source.root / "gpu_fsc_test"
    return read_half_maps(root / "half_map_A.mrc", root / "half_map_B.mrc")


@pytest.fixture(scope="session")
def nu_maps(movie_source, cryobench_profile):
    """Half maps for the filter estimation: ``(half_a, half_b, apix, truth or None)`` on the host.

    Generated: two regions band-limited at known resolutions, with their core masks. Real data:
    CryoSPARC's ``gpu_fsc_test`` half maps, without a planted answer.
    """
    import numpy as np

    from pytest_cryobench.data.maps import nu_component, read_half_maps

    if movie_source.real:
        return (*_real_half_maps(movie_source), None)
    files, truth = movie_source.ensure(nu_component(cryobench_profile, DATA_SEED))
    a, b, apix = read_half_maps(files[0], files[1])
    with np.load(files[2]) as regions:
        info = dict(truth[str(files[0].relative_to(movie_source.root))])
        info.update(region1_core=regions["region1_core"], region2_core=regions["region2_core"])
    return a, b, apix, info


@pytest.fixture(scope="session")
def fsc_maps(movie_source, cryobench_profile):
    """FSC half maps on the host: ``(half_a, half_b, apix, truth)``; ``truth`` holds the clean
    signal and the noise level for generated data, ``None`` for a real data set."""
    from pytest_cryobench.data.maps import fsc_component, read_half_maps, read_map

    if movie_source.real:
        return (*_real_half_maps(movie_source), None)
    files, truth = movie_source.ensure(fsc_component(cryobench_profile, DATA_SEED))
    a, b, apix = read_half_maps(files[0], files[1])
    signal, _ = read_map(files[2])
    info = dict(truth[str(files[0].relative_to(movie_source.root))])
    info["signal"] = signal
    return a, b, apix, info


@pytest.fixture(scope="session")
def picking_data(movie_source, cryobench_profile):
    """``(micrographs, templates, apix, ctf parameters per micrograph, truth per micrograph or None)``.

    The templates come at their own pixel size (their MRC header) and are resampled to the
    micrographs'; each micrograph's CTF is its exposure row, matched by file name.
    """
    from pytest_cryobench.data.layout import matches
    from pytest_cryobench.data.picking import (
        EXPOSURES_FILE,
        TEMPLATES_FILE,
        picking_component,
        read_exposure_ctfs,
        templates_at_pixel_size,
    )

    root = movie_source.root
    if movie_source.real:
        mic_paths = matches(root, "picking_test/*_doseweighted.mrc")
        truths = [None] * len(mic_paths)
    else:
        files, truth = movie_source.ensure(picking_component(cryobench_profile, DATA_SEED))
        mic_paths = [f for f in files if f.name.endswith("_doseweighted.mrc")]
        truths = [truth[str(p.relative_to(root))] for p in mic_paths]
    ctfs = read_exposure_ctfs(root / EXPOSURES_FILE, mic_paths)
    micrographs, apix = [], None
    for path in mic_paths:
        micrographs.append(_read_stack(path)[0])
        apix = _voxel_size(path)
    templates = templates_at_pixel_size(_read_stack(root / TEMPLATES_FILE), _voxel_size(root / TEMPLATES_FILE), apix)
    return micrographs, templates, apix, ctfs, truths


def _read_stack(path):
    """A 2-D image or a stack of them from an MRC file, float32, shape (n, h, w)."""
    import mrcfile
    import numpy as np

    from pytest_cryobench.errors import CryobenchError

    try:
        with mrcfile.open(path, mode="r", permissive=False) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32)
    except (ValueError, OSError) as exc:
        raise CryobenchError(f"{path}: cannot read this MRC file ({exc})") from None
    return data[np.newaxis] if data.ndim == 2 else data


def _voxel_size(path):
    import mrcfile

    with mrcfile.open(path, mode="r", header_only=True) as mrc:
        return float(mrc.voxel_size.x)


@pytest.fixture(scope="session")
def engine_dataset(movie_source, cryobench_profile):
    """The engine's inputs, read and checked (:class:`~.data.engine_source.EngineDataset`).

    Generated: a D7-symmetric volume and particles projected from it at known poses, with the
    ground truth. Real data: CryoSPARC's ``gpu_engine_test`` (its first ``engine.particles``
    particles), without a planted answer.
    """
    from pytest_cryobench.data.engine import TRUTH_VOLUME, engine_component
    from pytest_cryobench.data.engine_source import load_engine_dataset

    limit = cryobench_profile.engine.particles
    if movie_source.real:
        return load_engine_dataset(movie_source.root, None, truth_name=None, limit=limit)
    files, truth = movie_source.ensure(engine_component(cryobench_profile, DATA_SEED))
    return load_engine_dataset(movie_source.root, dict(truth[TRUTH_VOLUME]), limit=limit)


@pytest.fixture(scope="session")
def engine_disk_dataset(cryobench_run: RunState, engine_dataset):
    """The engine's dataset reading its stacks from copies in the cache dir (``disk`` cases);
    from where they are under ``--cryobench-no-ssd``. The copies go with the run's work dir."""
    if not cryobench_run.settings.use_ssd:
        return engine_dataset
    target = _cache_work_dir(cryobench_run) / "engine"
    copies = [target / f"{i:03d}_{path.name}" for i, path in enumerate(engine_dataset.stacks)]
    particles.copy_files(engine_dataset.stacks, copies)
    return engine_dataset.relocated(copies)


@pytest.fixture(scope="session")
def engine_preloaded(engine_dataset):
    """Every engine particle in host memory (``memory`` cases), float32 (P, n, n)."""
    from pytest_cryobench.data.engine_source import ParticleReader

    return ParticleReader(engine_dataset).preload()


def backend_for(state: RunState, device_label: str):
    """The backend of one case, or ``pytest.skip`` with the reason no GPU can be used."""
    if device_label == "cpu":
        return make_backend("numpy", None)
    plan = state.backend_plan
    if plan.backend is None:
        pytest.skip(plan.skip_reason)
    device = next(d for d in plan.devices if label(d) == device_label)
    return make_backend("cupy", device)
