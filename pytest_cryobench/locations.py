"""Where the bundled suites and references are, installed or in a source checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


# top-level folder of the source tree -> the subpackage a wheel installs it as
_SUBPACKAGE = {"bench_suites": "bench_suites", "references": "shipped_references"}


def bundled_dir(name: str) -> Path | None:
    """The folder ``name`` (``bench_suites`` or ``references``) that ships with the package.

    A wheel installs it as a subpackage (``pytest_cryobench.bench_suites``,
    ``pytest_cryobench.shipped_references``); in a source checkout (also when ``python -m pytest``
    puts the checkout first on ``sys.path``) it is the top-level folder beside the package.
    """
    try:
        spec = importlib.util.find_spec(f"pytest_cryobench.{_SUBPACKAGE[name]}")
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    beside = _PACKAGE.parent / name
    return beside if beside.is_dir() else None
