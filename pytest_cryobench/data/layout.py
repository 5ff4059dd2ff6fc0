"""CryoSPARC's benchmark data layout, and validation of a real data set (``--cryobench-data``)."""

from __future__ import annotations

from pathlib import Path

from pytest_cryobench.errors import CryobenchError

# (pattern relative to the data set's root, minimum number of matches)
EXPECTED: tuple[tuple[str, int], ...] = (
    ("class2D_test/maps.mrc", 1),
    ("gpu_engine_test/abinit_particles.cs", 1),
    ("gpu_engine_test/abinit_volume.mrc", 1),
    ("gpu_engine_test/J*/extract/*_particles.mrc", 1),
    ("gpu_fsc_test/half_map_A.mrc", 1),
    ("gpu_fsc_test/half_map_B.mrc", 1),
    ("movies/eer/*.eer", 1),
    ("movies/mrc/*.mrc", 1),
    ("movies/tiff/*.tif*", 1),
    ("picking_test/*_doseweighted.mrc", 1),
    ("picking_test/*_background.mrc", 1),
    ("picking_test/*_ctf_spline.npy", 1),
    ("picking_test/picking_templates.mrc", 1),
    ("picking_test/exposure_dataset_for_picking.cs", 1),
    ("picking_test/templates_dataset_for_picking.cs", 1),
)
MOVIE_PATTERNS = {"tiff": "movies/tiff/*.tif*", "mrc": "movies/mrc/*.mrc", "eer": "movies/eer/*.eer"}


def matches(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file())


def validate(root: Path, check_movies: bool = True) -> list[str]:
    """Problems with a real data set: missing or unreadable files, and damaged movies.

    Parameters
    ----------
    root : Path
        The data set.
    check_movies : bool
        Also check each movie's structure (headers, frame chain, size). Before a run only
        presence and readability are checked: a damaged movie fails just the cases that use it.

    Returns
    -------
    list of str
        One line per problem (empty when the data set is complete and readable).
    """
    from pytest_cryobench.data.movies import CHECKS

    if not root.is_dir():
        return [f"{root} is not a directory"]
    problems = []
    for pattern, minimum in EXPECTED:
        found = matches(root, pattern)
        if len(found) < minimum:
            problems.append(f"missing: {root / pattern}")
            continue
        for path in found:
            try:
                with open(path, "rb") as handle:
                    handle.read(1024)
            except OSError as exc:
                problems.append(f"unreadable: {path} ({exc.strerror})")
    if not check_movies:
        return problems
    for fmt, pattern in MOVIE_PATTERNS.items():
        for path in matches(root, pattern):
            try:
                CHECKS[fmt](path)
            except CryobenchError as exc:
                problems.append(str(exc))
    return problems


def validation_error(root: Path, problems: list[str]) -> str:
    lines = "\n  ".join(problems)
    return (f"--cryobench-data {root} is not a complete CryoSPARC benchmark data set "
            f"({len(problems)} problem(s)):\n  {lines}")
