"""Can this worker keep up with the microscope? The ``live_throughput`` requirement.

One movie of the chosen camera's format (at the profile's fraction of the camera's size, with
known frame shifts) is preprocessed as a Live worker does it (read cold, decompress, upload,
gain-correct, one motion-correction pass; :func:`pytest_cryobench.requirements.live.preprocess_movie`) over
timed rounds. The median, scaled to the camera's whole movie by pixels x frames when the movie
was smaller, is one GPU's seconds per movie. Live's preprocessing scales linearly with its GPUs:
with ``n`` GPUs, ``max(1, n - 2)`` preprocess (two stream 2D and 3D), so the capacity is
``max(1, n - 2) * 3600 / seconds`` movies per hour, against ``--cryobench-live-rate``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cryobench.requirements.tiers import REQUIREMENTS, report

STAGE_TAGS = {"read": ("IO",), "decompress": ("CPU",), "upload": ("PCIe",), "gain": ("GPU",), "align": ("GPU",)}
EER_FRAMES_PER_FRACTION = 20  # the benchmark data set's Falcon 4 movies: about 1000 hardware frames in 48
MAX_SHIFT_ERROR_PX = 0.5


def movie_geometry(cam: Any, scale: float, frames: int | None) -> tuple[int, int, int, float]:
    """Width, height and frames of the test movie, and the factor from it to a whole movie."""
    width = max(64, int(round(cam.width * scale / 2)) * 2)
    height = max(64, int(round(cam.height * scale / 2)) * 2)
    n = min(frames or cam.frames, cam.frames)
    return width, height, n, (cam.width * cam.height * cam.frames) / (width * height * n)


def planted_shifts(frames: int, seed: int) -> np.ndarray:
    """A drift of a few pixels over the movie with jitter, ``(frames, 2)`` pixels ``(y, x)``."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, frames)[:, None]
    drift = t * rng.uniform(-6, 6, size=(1, 2))
    return drift + rng.normal(0, 0.4, size=(frames, 2))


def measure_throughput(case: Any, run: Any, profile: Any, work_dir: Path, seed: int, benchmark: Any) -> None:
    """Run the ``live_throughput`` case (see the module docstring)."""
    import pytest

    from pytest_cryobench.data.synthetic_movies import synthetic_shifted_movie
    from pytest_cryobench.measure.backend import make_backend, select_gpus
    from pytest_cryobench.requirements.live import camera, keeps_up, preprocess_movie

    s = run.settings
    cam = camera(s.live_camera)
    plan = run.backend_plan
    if plan.backend is None:
        pytest.skip(f"{plan.skip_reason}; with --cryobench-backend numpy the CPU is measured as one "
                    "preprocessing lane")
    gpus = len(select_gpus(run.inventory, s.gpus)) if plan.backend == "cupy" else 0
    lanes = max(1, gpus - 2)
    backend = make_backend(plan.backend, plan.devices[0] if plan.backend == "cupy" else None)
    sizes = profile.requirements
    width, height, frames, factor = movie_geometry(cam, sizes.live_scale, sizes.live_frames)
    truth = planted_shifts(frames, seed)
    movie = synthetic_shifted_movie(
        work_dir / f"live_{cam.name}.{cam.fmt}", cam.fmt, width, height, frames, truth, seed,
        eer_frames_per_fraction=EER_FRAMES_PER_FRACTION)
    with backend.use():
        gain = backend.xp.asarray(movie.gain)
        found: dict[str, Any] = {}

        def one_movie(st: Any) -> None:
            result = preprocess_movie(movie.path, movie.fmt, gain, backend.xp, eer_fractions=movie.eer_fractions,
                                      eer_superres=movie.eer_superres)
            for stage, seconds in result.times.items():
                st.add(stage, seconds, *STAGE_TAGS.get(stage, ()))
            found["shifts"] = result.shifts

        stats = case.measure(benchmark, one_movie, rounds=profile.gpu_rounds, warmup_rounds=0,
                             cold_files=lambda: [movie.path])
    movie.path.unlink()
    error = float(np.max(np.abs(found["shifts"] - (movie.shifts - movie.shifts.mean(axis=0)))))
    case.check("shifts", error <= MAX_SHIFT_ERROR_PX,
               f"motion correction found shifts up to {error:.2f} px from the planted ones", max_error_px=error)
    seconds = stats["median"] * factor
    capacity, verdict = keeps_up(seconds, lanes, s.live_rate)
    # One round preprocesses 1/factor of a camera movie: the headline, seconds per camera movie, is
    # derived from the rounds' samples; the capacity is the requirement's value (stored once there).
    case.amounts(movies=1.0 / factor)
    case.headline("seconds_per_movie", per="movies")
    lane_text = (f"{lanes} preprocessing GPU(s) of {gpus}" if plan.backend == "cupy"
                 else "the CPU as one preprocessing lane (NumPy)")
    scaled = (f"; measured on a {width}x{height}x{frames} movie and scaled by {factor:.1f} to the camera's "
              f"{cam.width}x{cam.height}x{cam.frames}" if not math.isclose(factor, 1.0) else "")
    requirement = dataclasses.replace(REQUIREMENTS["live_throughput"], minimum=s.live_rate, recommended=s.live_rate)
    report(case, requirement, capacity,
           f"{verdict}: {cam.name} movies take {seconds:.2f} s each on one lane; {lane_text} preprocess "
           f"{capacity:,.0f} movies/h against {s.live_rate:,.0f}{scaled}",
           camera=cam.name, lanes=lanes, scale_factor=factor, verdict=verdict)
