"""How a collected test maps to a case name and group in the result files."""

from __future__ import annotations

import pytest

from pytest_cryobench.record.model import GROUPS


def case_group(item: pytest.Item) -> str:
    """The case's group: the first of ``fs``, ``cpu``, ``gpu``, ... among its markers."""
    names = {mark.name for mark in item.iter_markers()}
    for group in GROUPS:
        if group in names:
            return group
    return "other"


def case_identity(item: pytest.Item) -> tuple[str, str]:
    """``(group, test)``: ``test_particle_random_read`` -> ``("fs", "particle_random_read")``.

    A ``@pytest.mark.cryobench_name("{variant}")`` marker gives the name as a template over the
    test's parameters (``tiff``, ``fsc_loose``); a device parameter is appended as ``[gpu0]``.
    """
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec is not None else {}
    device = params.pop("cryobench_device", None)
    marker = item.get_closest_marker("cryobench_name")
    if marker is not None:
        name = marker.args[0].format(**params)
    else:
        function = getattr(item, "originalname", item.name)
        name = function[5:] if function.startswith("test_") else function
        if params:
            name += "[" + "-".join(str(v) for v in params.values()) + "]"
    if device is not None:
        name += f"[{device}]"
    return case_group(item), name
