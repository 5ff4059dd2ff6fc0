"""Keys under which the plugin keeps its state in pytest's ``config.stash`` / ``item.stash``."""

from __future__ import annotations

import pytest

from pytest_cryobench.plugin.case import Case
from pytest_cryobench.plugin.session import RunState

RUN_KEY = pytest.StashKey[RunState]()
CASE_KEY = pytest.StashKey[Case]()
