"""Where a run's movies come from: the generated data set, or a real one (``--cryobench-data``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_cryobench.data import layout, provision
from pytest_cryobench.data.movies import movie_component
from pytest_cryobench.profiles import Profile


class MovieSource:
    """Benchmark data (movies, maps), generated on first use or found in a real data set.

    Parameters
    ----------
    profile : Profile
        Sizes of the generated movies.
    data_dir : Path
        Root of generated data (``--cryobench-data-dir``).
    real : Path or None
        A real CryoSPARC data set (``--cryobench-data``), validated before the run.
    seed : int
        Seed of the generated data set.
    progress_for : callable
        ``progress_for(label)`` -> context manager yielding ``update(done, total)``.
    say : callable
        Receives one-line messages.
    """

    def __init__(self, profile: Profile, data_dir: Path, real: Path | None, seed: int,
                 progress_for: Callable[[str], contextlib.AbstractContextManager],
                 say: Callable[[str], None]) -> None:
        self.profile = profile
        self.root = real if real is not None else provision.data_root(data_dir, profile.name)
        self.real = real is not None
        self.seed = seed
        self._progress_for = progress_for
        self._say = say
        self._truths: dict[str, dict[str, Any]] = {}

    def files(self, fmt: str) -> list[Path]:
        """The movies of ``fmt``, generating them first if needed."""
        if self.real:
            return layout.matches(self.root, layout.MOVIE_PATTERNS[fmt])
        files, self._truths[fmt] = self.ensure(movie_component(fmt, self.profile, self.seed))
        return files

    def ensure(self, component: provision.Component) -> tuple[list[Path], dict[str, Any]]:
        """Generate (or reuse) a synthetic component; returns its files and ground truth."""
        entry = provision.ensure(self.root, component, self.seed, progress_for=self._progress_for,
                                 say=self._say)
        return [self.root / name for name in component.files], entry["truth"]

    def truth(self, fmt: str, path: Path) -> dict[str, Any] | None:
        """The generator's ground truth of one movie (``None`` for real data)."""
        if self.real:
            return None
        return self._truths[fmt][str(path.relative_to(self.root))]
