"""The ``--cryobench-*`` options: one table shared by the pytest plugin and the CLI.

Every option can be given three ways, and the first that is set wins:

1. the command line (``--cryobench-profile smoke``),
2. the environment (``CRYOBENCH_PROFILE=smoke``),
3. the ini file (``cryobench_profile = smoke``).

A bad value is a :class:`pytest.UsageError` whose message names where the value came from,
in the manner of pytest-timeout.

This module imports only the standard library: it is loaded on every pytest start-up, also in
projects that never pass ``--cryobench``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROFILES = ("smoke", "standard", "full")
BACKENDS = ("auto", "numpy", "cupy")
DROP_CACHES = ("fadvise", "sysctl", "none")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class OptionError(ValueError):
    """A value of a ``--cryobench-*`` option could not be parsed."""


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise OptionError(f"{text!r} is not one of {', '.join(choices)}")
        return value

    return parse


def parse_bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise OptionError(f"{text!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def parse_positive_int(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise OptionError(f"{text!r} is not an integer") from None
    if value < 1:
        raise OptionError(f"{text!r} must be at least 1")
    return value


def parse_tolerance(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise OptionError(f"{text!r} is not a number") from None
    if not value >= 1.0:
        raise OptionError(
            f"{text!r} must be a ratio of at least 1.0 (1.25 allows a time 25% over the reference)"
        )
    return value


def parse_gpus(text: str) -> str | int | tuple[int, ...]:
    """Which GPUs: ``all``; a count ``N`` (the first N, as before) or ``count:N``; device indices
    ``0,2`` (CryoSPARC's lists), ``2,`` for device 2 alone; and ``0`` for device 0 alone (there
    is no count of zero GPUs, so a bare ``0`` can only mean the device).
    """
    value = str(text).strip().lower()
    if value == "all":
        return "all"
    if value.startswith("count:"):
        return parse_positive_int(value.removeprefix("count:"))
    if value == "0":
        return (0,)
    if "," not in value:
        return parse_positive_int(value)
    try:
        indices = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise OptionError(f"{text!r} is not 'all', a count or a list of GPU indices like 0,2") from None
    if not indices or min(indices) < 0 or len(set(indices)) != len(indices):
        raise OptionError(f"{text!r} must list distinct GPU indices, each 0 or more")
    return indices


def parse_positive_number(text: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise OptionError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise OptionError(f"{text!r} must be a positive number")
    return value


def parse_camera(text: str) -> str:
    """A camera of CryoSPARC Live's memory table (see :mod:`pytest_cryobench.requirements.live`), by its name."""
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.requirements.live import camera

    try:
        return camera(str(text)).name
    except CryobenchError as exc:
        raise OptionError(str(exc)) from None


def parse_path(text: str) -> Path:
    value = str(text).strip()
    if not value:
        raise OptionError("an empty path")
    return Path(os.path.expandvars(value)).expanduser()


def parse_text(text: str) -> str:
    value = str(text).strip()
    if not value:
        raise OptionError("an empty value")
    return value


@dataclasses.dataclass(frozen=True)
class OptionSpec:
    """One ``--cryobench-<name>`` option.

    Attributes
    ----------
    name : str
        Option name without the prefix, e.g. ``"data-dir"``.
    help : str
        Help text for ``pytest --help`` and ``cryobench --help``.
    parse : callable
        Turns the text of a value into its Python value, raising :class:`OptionError`.
    default : object
        Value when no source sets it (``None``: decided later, e.g. a per-user cache dir).
    flag : bool
        A switch without a value on the command line (``store_true``).
    multiple : bool
        Repeatable on the command line; the environment and ini give a comma/line list.
    metavar : str
        Placeholder shown in the help.
    """

    name: str
    help: str
    parse: Callable[[str], Any] = parse_text
    default: Any = None
    flag: bool = False
    multiple: bool = False
    metavar: str | None = None

    @property
    def cli_flag(self) -> str:
        return f"--cryobench-{self.name}"

    @property
    def dest(self) -> str:
        return "cryobench_" + self.name.replace("-", "_")

    @property
    def env_var(self) -> str:
        return "CRYOBENCH_" + self.name.replace("-", "_").upper()

    @property
    def ini_name(self) -> str:
        return self.dest


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("profile", "data sizes: smoke (CI, seconds), standard (default), full (CryoSPARC sizes)",
               _choice(PROFILES), "standard", metavar="{smoke,standard,full}"),
    OptionSpec("data", "directory holding a real CryoSPARC benchmark data set", parse_path, metavar="DIR"),
    OptionSpec("data-dir", "where generated benchmark data lives (default: a per-user cache dir)",
               parse_path, metavar="DIR"),
    OptionSpec("project-dir", "the filesystem under test for particle writes (default: under the data dir)",
               parse_path, metavar="DIR"),
    OptionSpec("cache-dir", "the local 'SSD' particle cache; must exist (default: under the data dir)",
               parse_path, metavar="DIR"),
    OptionSpec("no-ssd", "do not use the cache dir: particles are read from the project dir",
               parse_bool, False, flag=True),
    OptionSpec("backend", "array backend for compute cases: auto (CuPy if a GPU is usable), numpy, cupy",
               _choice(BACKENDS), "auto", metavar="{auto,numpy,cupy}"),
    OptionSpec("gpus", "GPUs to benchmark: 'all'; device indices like 0,2 (one device: 0 or 3,); a single "
               "integer N from 1 is a count, the first N GPUs (also count:N)", parse_gpus, "all",
               metavar="N|LIST|all"),
    OptionSpec("output", "directory for result files (default: ./cryobench-results)", parse_path,
               metavar="DIR"),
    OptionSpec("run-id", "name of this run, the prefix of its result files (default: date and time)",
               parse_text, metavar="ID"),
    OptionSpec("reference", "reference to compare with: a shipped name or a path (repeatable)",
               parse_text, multiple=True, metavar="NAME|PATH"),
    OptionSpec("tolerance", "allowed slowdown ratio against a reference (default 1.25, or the reference's own)",
               parse_tolerance, metavar="RATIO"),
    OptionSpec("baseline", "a previous run's result file to compare with", parse_path, metavar="RUN.json"),
    OptionSpec("drop-caches", "how to evict files from the page cache before cold reads",
               _choice(DROP_CACHES), "fadvise", metavar="{fadvise,sysctl,none}"),
    OptionSpec("rounds", "timed rounds per case, fixed (default: adaptive, until the median is known to the "
               "profile's precision or the case's time budget is spent)", parse_positive_int, metavar="N"),
    OptionSpec("keep-data", "keep generated particle files in the project and cache dirs",
               parse_bool, False, flag=True),
    OptionSpec("no-fail", "report 'slower' verdicts without failing the cases", parse_bool, False, flag=True),
    OptionSpec("strict", "an 'inconclusive' verdict (the spread too wide to decide) fails the case too",
               parse_bool, False, flag=True),
    OptionSpec("eer-fractions", "EER decoding: fractions to sum hardware frames into (default: the profile's)",
               parse_positive_int, metavar="N"),
    OptionSpec("eer-superres", "EER decoding: super-resolution 0 (4K), 1 (8K) or 2 (16K)",
               _choice(("0", "1", "2")), "0", metavar="{0,1,2}"),
    OptionSpec("anonymize", "strip host names, bus ids and paths from the result files",
               parse_bool, False, flag=True),
    OptionSpec("pytest-benchmark-table", "also print pytest-benchmark's own table (shown anyway when a "
               "--benchmark-* option is given)", parse_bool, False, flag=True),
    OptionSpec("live-camera", "Live readiness: the camera whose movies to preprocess (K2, K2-superres, K3, "
               "K3-superres, Falcon3, Falcon4, Falcon4-EER)", parse_camera, metavar="CAMERA"),
    OptionSpec("live-rate", "Live readiness: the microscope's rate to keep up with, movies per hour",
               parse_positive_number, metavar="MOVIES_PER_HOUR"),
    OptionSpec("workflow-steps", "workflow group: the steps to run, comma-separated (motion, ctf, picking, "
               "extraction, classify2d, abinitio, refinement; default all)", parse_text, metavar="LIST"),
)

OPTIONS_BY_NAME = {spec.name: spec for spec in OPTIONS}


def add_to_argparse(group: Any, *, prefix: str = "--cryobench-") -> None:
    """Add every option to an :mod:`argparse` group (or a pytest ``OptionGroup``).

    Defaults stay ``None`` so that an unset command-line value can fall through to the
    environment and the ini file.
    """
    add = group.addoption if hasattr(group, "addoption") else group.add_argument
    for spec in OPTIONS:
        kwargs: dict[str, Any] = dict(dest=spec.dest, default=None, help=spec.help)
        if spec.flag:
            kwargs.update(action="store_const", const="true")
        else:
            kwargs["metavar"] = spec.metavar
            if spec.multiple:
                kwargs["action"] = "append"
        add(prefix + spec.name, **kwargs)


def _split_multiple(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def resolve(spec: OptionSpec, cli_value: Any, environ: dict[str, str], ini_value: Any) -> tuple[Any, str]:
    """Pick one option's value by precedence and parse it.

    Parameters
    ----------
    spec : OptionSpec
        The option.
    cli_value : object
        The raw command-line value (``None`` when not given; a list for repeatable options).
    environ : mapping
        The process environment.
    ini_value : object
        The raw ini value (``None`` or ``""`` when not set).

    Returns
    -------
    value, source : tuple
        The parsed value and a human-readable description of where it came from.

    Raises
    ------
    OptionError
        With a message that names the option and the source of the bad value.
    """
    if cli_value not in (None, []):
        raw, source = cli_value, f"command line {spec.cli_flag}"
    elif environ.get(spec.env_var, "") != "":
        raw, source = environ[spec.env_var], f"environment variable {spec.env_var}"
    elif ini_value not in (None, "", []):
        raw, source = ini_value, f"ini option {spec.ini_name}"
    else:
        return ([] if spec.multiple else spec.default), "default"
    try:
        if spec.multiple:  # repeated on the command line; a comma or line list in the ini file and environment
            items = raw if source.startswith("command line") else [
                part for item in (raw if isinstance(raw, list) else [raw]) for part in _split_multiple(str(item))]
            return [spec.parse(item) for item in items], source
        return spec.parse(raw), source
    except OptionError as exc:
        raise OptionError(f"{spec.cli_flag}: bad value from {source}: {exc}") from None


def is_enabled(cli_value: Any, environ: dict[str, str], ini_value: Any) -> bool:
    """Whether the plugin is switched on (``--cryobench``, ``CRYOBENCH=1``, ini ``cryobench``)."""
    if cli_value:
        return True
    if environ.get("CRYOBENCH", "") != "":
        try:
            return parse_bool(environ["CRYOBENCH"])
        except OptionError as exc:
            raise OptionError(f"--cryobench: bad value from environment variable CRYOBENCH: {exc}") from None
    if ini_value not in (None, ""):
        try:
            return parse_bool(ini_value)
        except OptionError as exc:
            raise OptionError(f"--cryobench: bad value from ini option cryobench: {exc}") from None
    return False
