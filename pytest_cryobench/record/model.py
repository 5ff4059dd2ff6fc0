"""The result record of a run: one :class:`CaseRecord` per case, written per group as JSON and CSV.

File names and shape follow CryoSPARC's Benchmark job (``<run-id>_<group>_benchmark_data.json``
with ``type``, ``timings``, ``test_info``), extended with ``stats``, ``checks``, ``metrics``,
``tags`` and ``status``. Files are written atomically: an interrupted run leaves complete files
or none.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_cryobench.measure.fsutil import atomic_write

RESULT_SCHEMA_VERSION = 1
RESULT_KIND = "cryobench-result"
GROUPS = ("fs", "cpu", "gpu", "requirements", "workflow")


@dataclasses.dataclass
class Metric:
    """One reported figure of a case.

    Attributes
    ----------
    value : float
        The figure (a median over rounds for times and the rates derived from them).
    unit : str
        ``"s"``, ``"particles/s"``, ``"MB/s"``, ...
    better : {"lower", "higher"}
        Which direction is an improvement; decides how a verdict reads the ratio.
    """

    value: float
    unit: str
    better: str = "lower"

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "better": self.better}


@dataclasses.dataclass
class CaseRecord:
    """Everything recorded for one case of one run.

    Attributes
    ----------
    group : str
        ``fs``, ``cpu``, ``gpu``, ...
    test : str
        The case's name in result files (``particle_random_read``, ``fsc_loose[gpu0]``).
    nodeid : str
        pytest node id.
    timings : dict
        Median seconds of each sub-timing, plus ``total``.
    tags : dict
        Component tags of each sub-timing.
    stats : dict
        Round statistics of the total (see :func:`pytest_cryobench.measure.timing.round_stats`).
    metrics : dict of Metric
        Named figures compared with references.
    checks : dict
        Known-answer checks: ``passed`` and the figures they looked at.
    outcome : str
        ``passed``, ``failed``, ``skipped`` (could not run) or ``error``.
    reason : str or None
        Why it failed or could not run.
    warm : bool
        Some cold-read round found its files still in the page cache.
    residency : list of float
        Share of the files resident before each cold round.
    verdicts : dict
        Verdict per reference name (see :mod:`pytest_cryobench.record.verdicts`).
    info : dict
        Anything else worth keeping (threads used, bytes read, device, ...).
    """

    group: str
    test: str
    nodeid: str
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    tags: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    stats: dict[str, float] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Metric] = dataclasses.field(default_factory=dict)
    checks: dict[str, Any] = dataclasses.field(default_factory=dict)
    outcome: str = "passed"
    reason: str | None = None
    warm: bool = False
    residency: list[float] = dataclasses.field(default_factory=list)
    verdicts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def checks_passed(self) -> bool:
        return bool(self.checks.get("passed", True))


def group_document(group: str, records: Iterable[CaseRecord], test_info: dict[str, Any],
                   run_id: str) -> dict[str, Any]:
    """The JSON document of one group (SPEC section 6)."""
    doc: dict[str, Any] = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "kind": RESULT_KIND,
        "type": group,
        "run_id": run_id,
        "timings": {}, "tags": {}, "stats": {}, "metrics": {}, "checks": {}, "status": {},
        "test_info": test_info,
    }
    for rec in records:
        doc["timings"][rec.test] = dict(rec.timings)
        doc["tags"][rec.test] = {k: list(v) for k, v in rec.tags.items()}
        doc["stats"][rec.test] = dict(rec.stats)
        doc["metrics"][rec.test] = {k: m.to_json() for k, m in rec.metrics.items()}
        doc["checks"][rec.test] = dict(rec.checks)
        doc["status"][rec.test] = {
            "outcome": rec.outcome, "reason": rec.reason, "warm": rec.warm,
            "residency": list(rec.residency), "verdicts": rec.verdicts, "nodeid": rec.nodeid,
            "info": rec.info,
        }
    return doc


CSV_COLUMNS = ("type", "test", "timing", "value", "unit", "tags")


def csv_rows(doc: dict[str, Any]) -> list[tuple]:
    """One row per test and timing (seconds), then one per test and metric."""
    rows = []
    for test, timings in doc["timings"].items():
        tags = doc["tags"].get(test, {})
        for name, seconds in timings.items():
            rows.append((doc["type"], test, name, seconds, "s", " ".join(tags.get(name, []))))
        for name, metric in doc["metrics"].get(test, {}).items():
            rows.append((doc["type"], test, name, metric["value"], metric["unit"], ""))
    return rows


def result_paths(output: Path, run_id: str, group: str) -> tuple[Path, Path]:
    stem = f"{run_id}_{group}_benchmark_data"  # not with_suffix: a run id may contain dots
    return output / f"{stem}.json", output / f"{stem}.csv"


def write_group(output: Path, doc: dict[str, Any]) -> list[Path]:
    """Write one group's JSON and CSV atomically; returns the two paths."""
    json_path, csv_path = result_paths(output, doc["run_id"], doc["type"])
    with atomic_write(json_path) as handle:
        json.dump(doc, handle, indent=2, sort_keys=False, default=_json_default)
        handle.write("\n")
    with atomic_write(csv_path) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(doc))
    return [json_path, csv_path]


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars become numbers, arrays lists
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
