"""CryoSPARC Benchmark results as references.

CryoSPARC's Benchmark job writes one JSON document per test group, shaped like::

    {"type": "gpu",
     "timings": {"fsc_spherical": {"put_mapr_on_gpu": 0.58, ...}, ...},
     "test_info": {"cryosparc_version": "v4.1.0", "created_at": 1666985248.0,
                   "instance_information": {...}, "job_params": {...},
                   "gpu_name": "...", "gpu_bus_id": "..."}}

:func:`convert` turns such documents into this project's reference format (schema
``reference-2``; CryoSPARC keeps medians only, so each case holds them as its ``summary``, with
no samples, as a case read from schema 1 does). Tests that measure the same thing under the same
name here are mapped to their counterparts; the rest are kept, with their timings, and marked not
comparable. CryoSPARC ran on
its own data set and on a GPU, so the reference has profile ``full`` (the data set's shapes),
data ``cryosparc`` and backend ``cupy``: only a run with ``--cryobench-data`` pointing at the
real data set, ``--cryobench-profile full`` and a GPU is compared with it; anything else is
reported as not comparable, never as a failure.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_cryobench import __version__
from pytest_cryobench.engine.passes import ENGINE_CASES
from pytest_cryobench.errors import ResultFileError

GROUP_ALIASES = {"fs": "fs", "filesystem": "fs", "file_system": "fs", "io": "fs", "cpu": "cpu", "gpu": "gpu"}

# CryoSPARC's test (or figure) name -> (test here, metric here); every one is in seconds.
FS_TESTS = {
    "particle_cache_time": ("particle_cache", "particle_cache_time"),
    "particle_sequential_read_time": ("particle_sequential_read", "particle_sequential_read_time"),
    "particle_random_read_time": ("particle_random_read", "particle_random_read_time"),
    "tiff": ("tiff", "tiff"),
    "eer": ("eer", "eer"),
    "mrc": ("mrc", "mrc"),
}
CPU_TESTS = {"tiff": ("tiff", "tiff"), "eer": ("eer", "eer")}
GPU_TESTS = ("fsc_spherical", "fsc_loose", "fsc_tight", "fsc_noisesub", "matched_cv_filter_estimation",
             "picking", *ENGINE_CASES)


def is_cryosparc_document(doc: Any) -> bool:
    """Whether ``doc`` has the shape of a CryoSPARC Benchmark result (and is not one of ours)."""
    return (isinstance(doc, dict) and "kind" not in doc and isinstance(doc.get("timings"), dict)
            and isinstance(doc.get("test_info"), dict) and isinstance(doc.get("type"), str))


def _time(item: Any, where: str) -> float:
    """One time in seconds: a finite number, at least 0."""
    if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item) or item < 0:
        raise ResultFileError(f"{where} is {item!r}, not a time in seconds (a finite number, at least 0)")
    return float(item)


def _seconds(value: Any, where: str) -> tuple[float, dict[str, float]]:
    """A test's time and its sub-timings: a number is the time itself; a mapping of sub-timings
    gives its ``total``, or their sum when CryoSPARC did not record one."""
    if isinstance(value, (bool, int, float)):
        seconds = _time(value, where)
        return seconds, {"total": seconds}
    if isinstance(value, dict):
        subs = {name: _time(item, f"{where}/{name}") for name, item in value.items()}
        if not subs:
            raise ResultFileError(f"{where} has no timings")
        total = subs.get("total", sum(subs.values()))
        return total, {**subs, "total": total}
    raise ResultFileError(f"{where} is {type(value).__name__}, not a time or a mapping of sub-timings")


def _group_tests(group: str, timings: Mapping[str, Any], device: str, source: str) -> dict[str, dict]:
    tests: dict[str, dict] = {}
    for name, value in timings.items():
        total, subs = _seconds(value, f"{source}: timings/{name}")
        if group == "gpu" and name in GPU_TESTS:
            target, metric = f"{name}[{device}]", name
        elif group == "fs" and name in FS_TESTS:
            target, metric = FS_TESTS[name]
        elif group == "cpu" and name in CPU_TESTS:
            target, metric = CPU_TESTS[name]
        else:
            tests[name] = {"outcome": "passed", "metrics": {}, "timings": subs,
                           "not_comparable": f"CryoSPARC's {group} figure {name!r} has no counterpart here"}
            continue
        entry = tests.setdefault(target, {"outcome": "passed", "metrics": {}, "timings": {}})
        entry["metrics"][metric] = {"value": total, "unit": "s", "better": "lower"}
        entry["timings"].update(subs if len(subs) > 1 else {metric: total, "total": total})
    return tests


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return name or "cryosparc"


def convert(docs: Sequence[Mapping[str, Any]], name: str, *, sources: Sequence[Path] = (),
            device: str = "gpu0", description: str = "", command: str = "") -> dict[str, Any]:
    """Reference document (schema ``reference-2``) from CryoSPARC Benchmark result documents.

    Parameters
    ----------
    docs : sequence of mapping
        One document per group (``type`` ``fs``/``filesystem``, ``cpu`` or ``gpu``); a group may
        appear once.
    name : str
        The reference's name (characters other than letters, digits, ``. _ -`` become ``-``).
    sources : sequence of Path
        The files the documents came from, recorded in ``imported_from``.
    device : str
        The device label of GPU tests here (``gpu0`` for ``fsc_loose[gpu0]``): CryoSPARC's files do
        not number their GPU.
    description, command : str
        Recorded in the reference.

    Raises
    ------
    ResultFileError
        A document is not a CryoSPARC Benchmark result, its type is unknown, a group appears twice,
        or a timing is not a number.
    """
    from pytest_cryobench.record.migrate import reference_to_2
    from pytest_cryobench.record.references import REFERENCE_SCHEMA_VERSION, validate

    labels = [str(p) for p in sources] or [f"document {i + 1}" for i in range(len(docs))]
    if not docs:
        raise ResultFileError("no CryoSPARC result given")
    tests: dict[str, dict[str, dict]] = {}
    versions, created, instance, gpus = set(), [], {}, []
    for doc, label in zip(docs, labels, strict=True):
        if not is_cryosparc_document(doc):
            raise ResultFileError(f"{label} is not a CryoSPARC Benchmark result: it needs 'type', 'timings' "
                                  "and 'test_info' (the JSON the Benchmark job writes)")
        group = GROUP_ALIASES.get(doc["type"].lower())
        if group is None:
            raise ResultFileError(f"{label}: unknown type {doc['type']!r}; known: {', '.join(GROUP_ALIASES)}")
        if group in tests:
            raise ResultFileError(f"{label}: a second {group} result; import one run's files at a time")
        tests[group] = _group_tests(group, doc["timings"], device, label)
        info = doc["test_info"]
        versions.add(str(info.get("cryosparc_version", "unknown")))
        when = info.get("created_at")
        if when is not None:
            if isinstance(when, bool) or not isinstance(when, (int, float)) or not 0 <= when < 1e11:
                raise ResultFileError(f"{label}: test_info/created_at is {when!r}, not a date (seconds since 1970)")
            created.append(float(when))
        machine = info.get("instance_information")
        if machine is not None and not isinstance(machine, dict):
            raise ResultFileError(f"{label}: test_info/instance_information is {type(machine).__name__}, "
                                  "not an object of machine facts")
        instance = instance or dict(machine or {})
        gpu = {"index": 0, "name": info.get("gpu_name"), "bus_id": info.get("gpu_bus_id")}
        if (gpu["name"] or gpu["bus_id"]) and gpu not in gpus:
            gpus.append(gpu)
    if gpus:
        instance.setdefault("gpus", gpus)
    version_text = ", ".join(sorted(versions))
    ref = {
        "schema_version": 1,
        "kind": "cryobench-reference",
        "name": _safe_name(name),
        "description": description or f"imported from CryoSPARC {version_text} Benchmark results",
        "profile": "full",
        "backend": "cupy",
        "data": "cryosparc",
        "created_at": min(created) if created else time.time(),
        "command": command,
        "cryobench_version": __version__,
        "imported_from": {"cryosparc_version": version_text, "files": [Path(p).name for p in labels]},
        "instance_information": instance,
        "tests": tests,
    }
    ref = reference_to_2(ref, origin="cryosparc")
    validate(ref, f"reference-{REFERENCE_SCHEMA_VERSION}.schema.json", Path(f"<{ref['name']}>"), "imported reference")
    return ref
