"""Fixtures of the record tests: hand-built records, result documents and runs on disk."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cryobench.record.model import CaseRecord, group_document
from tests.helpers import RUN_ID, fs_records, gpu_records, make_test_info, write_run


@pytest.fixture
def test_info() -> dict[str, Any]:
    return make_test_info()


@pytest.fixture
def fs_doc(test_info) -> dict[str, Any]:
    return group_document("fs", fs_records(), test_info, RUN_ID)


@pytest.fixture
def gpu_doc(test_info) -> dict[str, Any]:
    return group_document("gpu", gpu_records(), test_info, RUN_ID)


@pytest.fixture
def records_fs() -> list[CaseRecord]:
    return fs_records()


@pytest.fixture
def records_gpu() -> list[CaseRecord]:
    return gpu_records()


@pytest.fixture
def info_factory():
    """``make_test_info(**overrides)``."""
    return make_test_info


@pytest.fixture
def run_id() -> str:
    return RUN_ID


@pytest.fixture
def runs(tmp_path, info_factory):
    """Result files of three runs (gpu group paths): before, after (fsc slower, picking faster, engine could not run, cache checks failed) and a
    run of another profile."""
    before = write_run(info_factory, tmp_path, "cb20251101-080000")
    after = write_run(info_factory, tmp_path, "cb20251102-080000",
                      {"fsc_loose[cpu]": 1.6, "picking[cpu]": 0.5, "particle_cache": 1.1,
                       "particle_random_read": 1.05},
                      skipped=("memory_single_linear10_max_C1[cpu]",), bad_checks=("particle_cache",),
                      created_at=1_763_786_400.0)
    smoke = write_run(info_factory, tmp_path, "cb20251103-080000", {"picking[cpu]": 0.01}, profile="smoke",
                      created_at=1_763_872_800.0)
    return before, after, smoke
