"""``cryobench data verify``: check every file a run reads, the way the run reads it.

A real data set (``--cryobench-data``) is checked for the layout and each movie's structure
(:func:`~pytest_cryobench.data.layout.validate`), then read the way the cases read it: the half
maps (same shape and voxel size, no NaN), every ``.cs`` file, the engine's particles against
their stacks and volume, the picking inputs. Generated data is checked against its manifest
(sizes, SHA-256) and each file read by its kind. Every problem is one line naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pytest_cryobench.data import layout, provision
from pytest_cryobench.errors import CryobenchError


def _check_npy(path: Path) -> None:
    import numpy as np

    try:
        np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CryobenchError(f"{path}: damaged or truncated .npy file ({exc})") from None


def _check_mrc_image(path: Path) -> None:
    """An MRC image or stack: header against size, values finite."""
    import numpy as np

    from pytest_cryobench.data.particles import mrc_stack_layout

    mrc_stack_layout(path)
    import mrcfile

    with mrcfile.mmap(path, mode="r", permissive=True) as mrc:
        if mrc.data is not None and np.issubdtype(mrc.data.dtype, np.floating) and not np.isfinite(mrc.data).all():
            raise CryobenchError(f"{path}: holds NaN or infinite values")


def _check_cs(path: Path) -> None:
    from pytest_cryobench.data.cs import read_cs

    read_cs(path)


def _check_map(path: Path) -> None:
    from pytest_cryobench.data.maps import read_map

    read_map(path)


def file_check(rel: str) -> Callable[[Path], None] | None:
    """How the run reads the file at ``rel`` (a path relative to the data root), by its kind."""
    from pytest_cryobench.data.movies import CHECKS

    for fmt, pattern in layout.MOVIE_PATTERNS.items():
        if Path(rel).match(pattern):
            return CHECKS[fmt]
    if rel.endswith(".cs"):
        return _check_cs
    if rel.endswith(".npy"):
        return _check_npy
    if rel.endswith(".mrc"):
        return _check_map if _is_volume(rel) else _check_mrc_image
    return None


def _is_volume(rel: str) -> bool:
    name = Path(rel).name
    return rel.startswith(("gpu_fsc_test/", "gpu_nu_test/")) or name.endswith("volume.mrc") or "half_map" in name


def _problem(check: Callable[[], object]) -> list[str]:
    try:
        check()
    except CryobenchError as exc:
        return [str(exc)]
    return []


def real_data_problems(root: Path) -> list[str]:
    """Every problem a run would meet in a real CryoSPARC data set (empty: it is usable)."""
    from pytest_cryobench.data.cs import read_cs
    from pytest_cryobench.data.engine_source import load_engine_dataset
    from pytest_cryobench.data.maps import read_half_maps

    problems = layout.validate(root)
    if not root.is_dir():
        return problems
    fsc = root / "gpu_fsc_test"
    if (fsc / "half_map_A.mrc").is_file() and (fsc / "half_map_B.mrc").is_file():
        problems += _problem(lambda: read_half_maps(fsc / "half_map_A.mrc", fsc / "half_map_B.mrc"))
    for pattern in (p for p, _ in layout.EXPECTED if p.endswith(".cs")):  # the .cs files the run reads
        for path in layout.matches(root, pattern):
            problems += _problem(lambda path=path: read_cs(path))
    engine_cs = root / "gpu_engine_test" / "abinit_particles.cs"
    if engine_cs.is_file() and not any(str(engine_cs) in p for p in problems):
        problems += _problem(lambda: load_engine_dataset(root, None, cs_name="gpu_engine_test/abinit_particles.cs",
                                                         reference_name="gpu_engine_test/abinit_volume.mrc",
                                                         truth_name=None))
    for pattern in ("picking_test/*.mrc", "class2D_test/*.mrc"):
        for path in layout.matches(root, pattern):
            problems += _problem(lambda path=path: _check_mrc_image(path))
    for path in layout.matches(root, "picking_test/*.npy"):
        problems += _problem(lambda path=path: _check_npy(path))
    return list(dict.fromkeys(problems))


def generated_profiles(data_dir: Path) -> list[str]:
    """Profiles with generated data (a ``synthetic-<profile>`` dir) under ``data_dir``."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name.removeprefix("synthetic-") for p in data_dir.glob("synthetic-*") if p.is_dir())


def generated_data_report(root: Path) -> provision.VerifyReport:
    """:func:`provision.verify` with each file read by its kind; a corrupt manifest is a problem."""
    try:
        report = provision.verify(root, file_check)
    except CryobenchError as exc:
        report = provision.VerifyReport(problems=[str(exc)])
    if report.ok and report.checked:
        report.problems += _generated_pairs(root)
    return report


def _generated_pairs(root: Path) -> list[str]:
    """Files that must agree with each other (both half maps of one kind)."""
    from pytest_cryobench.data.maps import read_half_maps

    problems = []
    for a in sorted(root.glob("**/*half_map_A*.mrc")):
        b = a.with_name(a.name.replace("half_map_A", "half_map_B"))
        if b.is_file():
            problems += _problem(lambda a=a, b=b: read_half_maps(a, b))
    return problems
