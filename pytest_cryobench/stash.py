"""Keys under which the plugin keeps its state in pytest's ``config.stash`` / ``item.stash``."""

from __future__ import annotations

import pytest

from .case import Case
from .session import RunState

RUN_KEY = pytest.StashKey[RunState]()
CASE_KEY = pytest.StashKey[Case]()
