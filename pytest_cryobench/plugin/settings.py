"""The resolved settings of one run, built once from pytest's config (or the CLI's arguments)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_cryobench.plugin.options import OPTIONS, OptionError, resolve

PATH_OPTIONS = ("data", "data-dir", "project-dir", "cache-dir", "output", "baseline")


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """Per-user cache dir for generated data: ``$XDG_CACHE_HOME/pytest-cryobench``."""
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-cryobench"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every ``--cryobench-*`` value after precedence, parsing and defaults.

    ``sources`` maps each option name to where its value came from, for error messages.
    """

    profile: str
    data: Path | None
    data_dir: Path
    project_dir: Path
    cache_dir: Path | None
    cache_dir_is_default: bool
    backend: str
    gpus: Any
    output: Path
    run_id: str | None
    references: tuple[str, ...]
    tolerance: float | None
    baseline: Path | None
    drop_caches: str
    rounds: int | None
    keep_data: bool
    no_fail: bool
    strict: bool
    anonymize: bool
    pytest_benchmark_table: bool
    eer_fractions: int | None
    eer_superres: int
    live_camera: str | None
    live_rate: float | None
    sources: Mapping[str, str]

    @property
    def use_ssd(self) -> bool:
        return self.cache_dir is not None


def build_settings(
    get_cli: Callable[[str], Any],
    get_ini: Callable[[str], Any],
    environ: Mapping[str, str],
    invocation_dir: Path,
    ini_dir: Path | None = None,
) -> Settings:
    """Resolve all options.

    Parameters
    ----------
    get_cli, get_ini : callable
        Look up a raw value by ``OptionSpec.dest`` / ``OptionSpec.ini_name``; ``None`` if unset.
    environ : mapping
        The process environment.
    invocation_dir : Path
        Where the user ran the command; relative paths (and defaults) are placed here.
    ini_dir : Path, optional
        The directory of the ini file; a relative path given in the ini file is placed there
        (as a path in a config file means where the file is, whoever runs it).

    Raises
    ------
    OptionError
        A bad value; the message names the option and its source.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        values[spec.name], sources[spec.name] = resolve(
            spec, get_cli(spec.dest), environ, get_ini(spec.ini_name))

    if ini_dir is not None:
        for name in PATH_OPTIONS:
            if values[name] is not None and sources[name].startswith("ini option") and not values[name].is_absolute():
                values[name] = ini_dir / values[name]
        if sources["reference"].startswith("ini option"):
            values["reference"] = [str(ini_dir / spec) if not Path(spec).is_absolute() and (ini_dir / spec).exists()
                                   else spec for spec in values["reference"]]
    data_dir = values["data-dir"] or default_data_dir(environ)
    no_ssd = values["no-ssd"]
    cache_dir = None if no_ssd else (values["cache-dir"] or data_dir / "ssd-cache")
    if no_ssd and values["cache-dir"] is not None:
        raise OptionError(
            f"--cryobench-no-ssd ({sources['no-ssd']}) and --cryobench-cache-dir "
            f"({sources['cache-dir']}) contradict each other: give one of them")

    def absolute(path: Path | None) -> Path | None:
        return None if path is None else (path if path.is_absolute() else invocation_dir / path)

    return Settings(
        profile=values["profile"],
        data=absolute(values["data"]),
        data_dir=absolute(data_dir),
        project_dir=absolute(values["project-dir"] or data_dir / "project"),
        cache_dir=absolute(cache_dir),
        cache_dir_is_default=values["cache-dir"] is None,
        backend=values["backend"],
        gpus=values["gpus"],
        output=absolute(values["output"] or Path("cryobench-results")),
        run_id=values["run-id"],
        references=tuple(values["reference"]),
        tolerance=values["tolerance"],
        baseline=absolute(values["baseline"]),
        drop_caches=values["drop-caches"],
        rounds=values["rounds"],
        keep_data=values["keep-data"],
        no_fail=values["no-fail"],
        strict=values["strict"],
        anonymize=values["anonymize"],
        pytest_benchmark_table=values["pytest-benchmark-table"],
        eer_fractions=values["eer-fractions"],
        eer_superres=int(values["eer-superres"]),
        live_camera=values["live-camera"],
        live_rate=values["live-rate"],
        sources=sources,
    )
