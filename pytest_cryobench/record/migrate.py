"""Reading schema-1 result and reference files as schema 2, as asv does with ``update_to_N``.

Schema 1 stored medians, not samples: a migrated case keeps what it had as a ``summary``
(``from: 1``; its metrics, median timings and the total's round statistics) and has no
``samples``, so :mod:`pytest_cryobench.record.derive` gives it exactly the figures it was written
with and verdicts on it are those of schema 1. Rates renamed to the ``<quantity>_per_s`` scheme
are renamed here too, so that old files still compare with new runs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

#: Rates of schema 1 -> their name in schema 2 (units unchanged: they already matched).
RATE_RENAMES = (
    (re.compile(r"^(tiff|eer|mrc)_(read|decode)_rate$"), "mb_per_s"),
    (re.compile(r"^particle_cache_rate$"), "mb_per_s"),
    (re.compile(r"^particle_(sequential|random)_read_rate$"), "particles_per_s"),
    (re.compile(r"^particle_(sequential|random)_read_rate_mb$"), "mb_per_s"),
    (re.compile(r"^voxels_per_s$"), "voxel_candidates_per_s"),
    (re.compile(r"^correlations_per_s$"), "template_angles_per_s"),
    (re.compile(r"^memory_bandwidth$"), "gb_per_s"),  # requirement values measured in a unit per second
    (re.compile(r"^(project_storage_read|ssd_random_read_rate)$"), "mb_per_s"),
)


def new_metric_name(name: str) -> str:
    """The schema-2 name of a schema-1 metric (most keep theirs)."""
    for pattern, new in RATE_RENAMES:
        if pattern.match(name):
            return new
    return name


def _case(entry: Mapping[str, Any], *, stats: Mapping[str, Any] | None, origin: Any) -> dict[str, Any]:
    """One schema-2 case object from a schema-1 per-test entry (reference shape)."""
    info = dict(entry.get("info", {}))
    if entry.get("requirement") is not None:
        info["requirement"] = entry["requirement"]
    if entry.get("tolerance") is not None:
        info["tolerance"] = entry["tolerance"]
    metrics = {new_metric_name(name): dict(metric) for name, metric in entry.get("metrics", {}).items()}
    summary: dict[str, Any] = {"from": origin, "metrics": metrics, "timings": dict(entry.get("timings", {}))}
    if stats:
        summary["stats"] = dict(stats)
    case = {"nodeid": entry.get("nodeid", ""), "outcome": entry.get("outcome", "passed"),
            "reason": entry.get("reason"), "samples": {}, "tags": copy.deepcopy(entry.get("tags", {})),
            "amounts": {}, "headline": None, "rates": [], "values": {},
            "checks": dict(entry.get("checks", {"passed": bool(entry.get("checks_passed", True))})),
            "warm": bool(entry.get("warm", False)), "residency": list(entry.get("residency", [])),
            "info": info, "verdicts": copy.deepcopy(entry.get("verdicts", {})), "summary": summary}
    if entry.get("not_comparable"):
        case["not_comparable"] = entry["not_comparable"]
    return case


def reference_to_2(doc: Mapping[str, Any], origin: Any = 1) -> dict[str, Any]:
    """A schema-1 reference document as schema 2 (``origin``: what the summaries came from)."""
    out = {k: copy.deepcopy(v) for k, v in doc.items() if k != "tests"}
    out["schema_version"] = 2
    tests = {}
    for group, entries in doc["tests"].items():
        tests[group] = {}
        for test, entry in entries.items():
            iqr = next((m.get("iqr") for m in entry.get("metrics", {}).values() if m.get("iqr") is not None), None)
            total = entry.get("timings", {}).get("total")
            stats = {k: v for k, v in (("median", total), ("iqr", iqr)) if v is not None}
            tests[group][test] = _case(entry, stats=stats, origin=origin)
    out["tests"] = tests
    return out


def result_to_2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 result document (one group, stored by column) as schema 2 (one object per case).

    The CryoSPARC-shaped ``timings`` stays as it was (it is the view schema 2 writes too).
    """
    tests = {}
    for test, status in doc["status"].items():
        stats = doc["stats"].get(test, {})
        metrics = {name: dict(m) for name, m in doc["metrics"].get(test, {}).items()}
        for metric in metrics.values():
            if metric.get("unit") == "s" and stats.get("iqr") is not None:
                metric.setdefault("iqr", stats["iqr"])  # as schema 1's readers did
        entry = {**status, "metrics": metrics, "timings": doc["timings"].get(test, {}),
                 "tags": doc.get("tags", {}).get(test, {}), "checks": doc["checks"].get(test, {})}
        tests[test] = _case(entry, stats=stats, origin=1)
    return {"schema_version": 2, "kind": doc["kind"], "type": doc["type"], "run_id": doc["run_id"],
            "test_info": copy.deepcopy(doc["test_info"]), "tests": tests,
            "timings": copy.deepcopy(doc["timings"])}


def update_to_2(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-1 result or reference document as schema 2 (a schema-2 one unchanged)."""
    if doc.get("schema_version") == 2:
        return dict(doc)
    if doc.get("kind") == "cryobench-reference":
        return reference_to_2(doc)
    return result_to_2(doc)
