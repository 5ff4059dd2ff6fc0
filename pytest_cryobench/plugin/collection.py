"""Collection once ``--cryobench`` is on: the bundled suites, one case per selected device, and the
requirements suite only when asked for (design: data flow, step 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cryobench.measure.gpus import label, select_gpus
from pytest_cryobench.plugin.configure import suites_dir
from pytest_cryobench.plugin.session import RUN_KEY, RunState


def collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` of the bundled suites (pytest's own patterns would skip them)."""
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest's python plugin collects it
    try:
        file_path.relative_to(suites_dir())
    except ValueError:
        return None
    return pytest.Module.from_parent(parent, path=file_path)


def parametrize_devices(metafunc: pytest.Metafunc) -> None:
    """Run cases that use ``cryobench_device`` once per selected GPU, or once on the CPU."""
    if "cryobench_device" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash[RUN_KEY]
    s = state.settings
    if s.backend == "numpy":
        metafunc.parametrize("cryobench_device", ["cpu"], scope="function")
        return
    metafunc.parametrize("cryobench_device", _gpu_labels(state), scope="function")


def _gpu_labels(state: RunState) -> list[str]:
    """``gpu0``, ``gpu1``, ... of the selected GPUs NVML lists; ``gpu`` alone when there is none
    (its cases then say why they could not run)."""
    try:
        gpus = select_gpus(state.inventory, state.settings.gpus)
        if not gpus and state.inventory.error and state.settings.backend == "cupy":
            gpus = state.backend_plan.devices  # NVML not usable: CuPy's own device list
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return [label(g) for g in gpus] or ["gpu"]


def parametrize_gpus(metafunc: pytest.Metafunc) -> None:
    """Run requirement cases that use ``cryobench_gpu`` once per selected GPU that NVML lists,
    whatever the array backend (``gpu`` alone when there is none: the case says why)."""
    if "cryobench_gpu" not in metafunc.fixturenames:
        return
    metafunc.parametrize("cryobench_gpu", _gpu_labels(metafunc.config.stash[RUN_KEY]), scope="function")


def deselect_unasked_requirements(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The requirements suite answers another question than the benchmark: it runs only when asked
    for by marker (``-m requirements``, as ``cryobench requirements`` does)."""
    if "requirements" in (config.option.markexpr or ""):
        return
    named = {Path(arg.split("::")[0]).resolve() for arg in config.args}  # a module given by path asks for it
    keep, drop = [], []
    for item in items:
        asked = Path(item.path).resolve() in named
        (drop if item.get_closest_marker("requirements") is not None and not asked else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config.stash[RUN_KEY].requirements_not_asked = len(drop)


TOLERANCE_KEY = pytest.StashKey["float | None"]()
"""The case's marker tolerance, parsed once by :func:`check_markers` at collection."""


def case_tolerance(item: pytest.Item) -> float | None:
    """The ratio of the closest ``@pytest.mark.cryobench_tolerance(ratio)`` marker (on the test, its
    class or its module's ``pytestmark``), or ``None`` without one: the value :func:`check_markers`
    stashed, or parsed here for an item it did not see.

    Raises
    ------
    pytest.UsageError
        A marker without exactly one ratio of at least 1.0, naming the test and the marker.
    """
    if TOLERANCE_KEY in item.stash:
        return item.stash[TOLERANCE_KEY]
    return _parse_tolerance_marker(item)


def _parse_tolerance_marker(item: pytest.Item) -> float | None:
    marker = item.get_closest_marker("cryobench_tolerance")
    if marker is None:
        return None
    from pytest_cryobench.plugin.options import OptionError, parse_tolerance

    where = f"@pytest.mark.cryobench_tolerance on {item.nodeid}"
    if len(marker.args) != 1 or marker.kwargs:
        raise pytest.UsageError(f"{where}: give exactly one ratio, e.g. cryobench_tolerance(1.5)")
    try:
        return parse_tolerance(marker.args[0])
    except OptionError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None


def check_markers(items: list[pytest.Item]) -> None:
    """Refuse a bad ``cryobench_tolerance`` marker before any case runs; keep each parsed value."""
    for item in items:
        item.stash[TOLERANCE_KEY] = _parse_tolerance_marker(item)
