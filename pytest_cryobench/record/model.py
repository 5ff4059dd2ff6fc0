"""The result record of a run: one :class:`CaseRecord` per case, written per group as JSON and CSV.

File names follow CryoSPARC's Benchmark job (``<run-id>_<group>_benchmark_data.json``), and each
file keeps its shape (``type``, ``timings`` of median seconds, ``test_info``) as a view derived on
write. The record itself (schema 2, ``schemas/result-2.schema.json``) is one object per case under
``tests``, holding each number once (see :class:`CaseRecord` and ``docs/design.md``). Files are
written atomically: an interrupted run leaves complete files or none.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_cryobench.measure.fsutil import atomic_write
from pytest_cryobench.record import derive

RESULT_SCHEMA_VERSION = 2
RESULT_KIND = "cryobench-result"
GROUPS = ("fs", "cpu", "gpu", "requirements", "workflow")


@dataclasses.dataclass
class CaseRecord:
    """Everything recorded for one case of one run (or of a reference), each number once.

    Stats, medians, the headline's value and the rates are not stored: they are computed from
    ``samples`` and ``amounts`` by :mod:`pytest_cryobench.record.derive`.

    Attributes
    ----------
    group : str
        ``fs``, ``cpu``, ``gpu``, ...
    test : str
        The case's name in result files (``particle_random_read``, ``fsc_loose[gpu0]``).
    nodeid : str
        pytest node id.
    samples : dict of list of float
        Seconds of every timed round: ``total`` and each sub-timing (same length, round order).
    tags : dict
        Component tags of each sub-timing.
    amounts : dict of float
        What rates are made of: ``bytes``, ``particles``, ``movies``, ``poses``, ...
    headline : dict or None
        ``{"name": ..., "per": amount or None}``: the case's headline figure is the total time of
        a round divided by ``amounts[per]`` (seconds per movie), or the total itself.
    rates : list of str
        Rates the case reports, named ``<quantity>_per_s`` (see
        :func:`pytest_cryobench.record.derive.rate_unit`): ``amount / total`` of each round.
    values : dict
        Figures measured otherwise than by the rounds' clock (requirements):
        ``{name: {"value", "unit", "better"}}``.
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
        Anything else worth keeping (threads used, device, ``tolerance``, ``requirement``, ...).
    summary : dict or None
        Only in a record read from a schema-1 file (or imported from CryoSPARC), which kept medians
        and no samples: ``{"from": ..., "metrics": {...}, "timings": {...}, "stats": {...}}`` as
        they were written.
    not_comparable : str or None
        Why an imported figure has no counterpart here (a CryoSPARC figure of another test).
    """

    group: str
    test: str
    nodeid: str = ""
    samples: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    tags: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    amounts: dict[str, float] = dataclasses.field(default_factory=dict)
    headline: dict[str, Any] | None = None
    rates: list[str] = dataclasses.field(default_factory=list)
    values: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    checks: dict[str, Any] = dataclasses.field(default_factory=dict)
    outcome: str = "passed"
    reason: str | None = None
    warm: bool = False
    residency: list[float] = dataclasses.field(default_factory=list)
    verdicts: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: dict[str, Any] | None = None
    not_comparable: str | None = None

    @property
    def checks_passed(self) -> bool:
        return bool(self.checks.get("passed", True))

    @property
    def tolerance(self) -> float | None:
        """The case's own tolerance (noisier IO cases carry one), if any."""
        value = self.info.get("tolerance")
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        """The case's object in a schema-2 file (``group`` and ``test`` are its keys there)."""
        out = {"nodeid": self.nodeid, "outcome": self.outcome, "reason": self.reason,
               "samples": {k: [float(x) for x in v] for k, v in self.samples.items()},
               "tags": {k: list(v) for k, v in self.tags.items()}, "amounts": dict(self.amounts),
               "headline": self.headline, "rates": list(self.rates), "values": dict(self.values),
               "checks": dict(self.checks), "warm": self.warm, "residency": list(self.residency),
               "info": self.info, "verdicts": self.verdicts}
        if self.summary is not None:
            out["summary"] = self.summary
        if self.not_comparable:
            out["not_comparable"] = self.not_comparable
        return out

    @classmethod
    def from_json(cls, group: str, test: str, obj: Mapping[str, Any]) -> CaseRecord:
        """The record of one case object of a schema-2 file."""
        fields = {f.name for f in dataclasses.fields(cls)} - {"group", "test"}
        return cls(group=group, test=test, **{k: v for k, v in obj.items() if k in fields})


def group_document(group: str, records: Iterable[CaseRecord], test_info: dict[str, Any],
                   run_id: str) -> dict[str, Any]:
    """The schema-2 JSON document of one group: one object per case under ``tests``, and the
    CryoSPARC-shaped view (``type``, ``timings`` of median seconds per sub-timing of the cases that
    were timed, ``test_info``), derived here and never read back."""
    records = list(records)
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "kind": RESULT_KIND,
        "type": group,
        "run_id": run_id,
        "test_info": test_info,
        "tests": {rec.test: rec.to_json() for rec in records},
        "timings": {rec.test: medians for rec in records if (medians := derive.timings(rec))},
    }


def records_of(doc: Mapping[str, Any]) -> list[CaseRecord]:
    """The records of one schema-2 group document."""
    return [CaseRecord.from_json(doc["type"], test, obj) for test, obj in doc["tests"].items()]


CSV_COLUMNS = ("type", "test", "timing", "value", "unit", "tags")


def csv_rows(doc: Mapping[str, Any]) -> list[tuple]:
    """One row per test and timing (median seconds), then one per test and figure."""
    rows = []
    for rec in records_of(doc):
        for name, seconds in derive.timings(rec).items():
            rows.append((doc["type"], rec.test, name, seconds, "s", " ".join(rec.tags.get(name, []))))
        for name, figure in derive.figures(rec).items():
            rows.append((doc["type"], rec.test, name, figure.value, figure.unit, ""))
    return rows


def result_paths(output: Path, run_id: str, group: str) -> tuple[Path, Path]:
    stem = f"{run_id}_{group}_benchmark_data"  # not with_suffix: a run id may contain dots
    return output / f"{stem}.json", output / f"{stem}.csv"


def write_group(output: Path, doc: dict[str, Any]) -> list[Path]:
    """Write one group's JSON and CSV atomically; returns the two paths."""
    json_path, csv_path = result_paths(output, doc["run_id"], doc["type"])
    with atomic_write(json_path) as handle:
        # allow_nan=False: bare NaN is not JSON; a NaN figure fails the write, and the run with it
        json.dump(_nulls_for_non_finite(doc), handle, indent=2, sort_keys=False, default=_json_default,
                  allow_nan=False)
        handle.write("\n")
    with atomic_write(csv_path) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(doc))
    return [json_path, csv_path]


MEASURED = frozenset({"samples", "amounts"})
"""Keys whose numbers are measurements: a NaN there is a case that measured nothing, and fails the
write (so the run) instead of becoming ``null``."""


def _nulls_for_non_finite(value: Any, key: str | None = None) -> Any:
    """The document with NaN and infinities outside ``samples`` and ``amounts`` written as ``null``
    (JSON has neither): a check's figure that came out NaN is kept as "no number", and the check
    itself says it failed."""
    if key in MEASURED:
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulls_for_non_finite(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulls_for_non_finite(v) for v in value]
    if hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:  # a numpy scalar
        return _nulls_for_non_finite(value.item())
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars become numbers, arrays lists
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
