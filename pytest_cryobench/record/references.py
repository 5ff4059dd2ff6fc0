"""Reference and baseline files: loading, schema validation, lookup by name, and saving a run.

A *reference* is a versioned JSON document (``schemas/reference-2.schema.json``: one object per
case, as in result files; schema-1 files are read through :mod:`pytest_cryobench.record.migrate`)
measured by running this suite on a named machine. A *baseline* is a previous run's own result file; its
sibling group files of the same run (``<run-id>_<group>_benchmark_data.json``) are loaded with it.
Both become a :class:`Comparison` that verdicts are computed against.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pytest_cryobench import __version__
from pytest_cryobench.errors import ResultFileError
from pytest_cryobench.record.migrate import reference_to_2, result_to_2
from pytest_cryobench.record.model import GROUPS, RESULT_KIND, CaseRecord, records_of

REFERENCE_SCHEMA_VERSION = 2
#: Schema versions read, each with its schema file and its migration to the current one.
READABLE_VERSIONS = (1, 2)
REFERENCE_KIND = "cryobench-reference"
_SCHEMAS = Path(__file__).with_name("schemas")
_RESULT_NAME = re.compile(r"^(?P<run>.+)_(?P<group>[a-z]+)_benchmark_data\.json$")


@cache
def _validator(name: str):
    """A validator of one schema file; ``$ref`` between the files resolve, and the ``finite``
    format rejects NaN and infinities (which JSON-schema's number type lets through)."""
    import jsonschema
    from referencing import Registry, Resource

    schemas = {path.name: json.loads(path.read_text()) for path in _SCHEMAS.glob("*.schema.json")}
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    checker = jsonschema.FormatChecker()
    checker.checks("finite")(lambda value: not isinstance(value, float) or math.isfinite(value))
    return jsonschema.Draft202012Validator(schemas[name], registry=registry, format_checker=checker)


def validate(doc: Any, schema_file: str, path: Path, what: str) -> None:
    """Raise :class:`ResultFileError` naming the file and the first schema violation."""
    errors = sorted(_validator(schema_file).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ResultFileError(f"{what} {path} does not match its schema at {where}: {err.message}{more}")
    problem = impossible_number(doc)
    if problem:
        raise ResultFileError(f"{what} {path} holds an impossible number at {problem}: a time or rate must be a "
                              "finite number above zero; re-measure it (the file was hand-edited or written by a "
                              "faulty tool)")


def impossible_number(doc: Any) -> str | None:
    """Where a result or reference document holds a time or rate that cannot be (NaN, infinite,
    zero or negative), as ``path: value``; ``None`` when it holds none.

    Checked: every round's ``total`` (schema 2), every metric's value and the round statistics'
    median (schema 1); sub-timings may be zero (a span with nothing to do) but not negative or
    non-finite.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tests"), Mapping):
        return None
    cases: list[tuple[str, Any]] = []
    for key, value in doc["tests"].items():
        if isinstance(value, Mapping) and ("outcome" in value or "samples" in value or "metrics" in value):
            cases.append((f"tests/{key}", value))  # a result file: tests/<case>
        elif isinstance(value, Mapping):
            cases += [(f"tests/{key}/{test}", case) for test, case in value.items()]  # tests/<group>/<case>
    for where, case in cases:
        if not isinstance(case, Mapping):
            continue
        for name, values in (case.get("samples") or {}).items():
            for i, value in enumerate(values if isinstance(values, list) else []):
                if not _possible(value, zero_ok=name != "total"):
                    return f"{where}/samples/{name}/{i}: {value!r}"
        for name, metric in (case.get("metrics") or {}).items():
            if isinstance(metric, Mapping) and not _possible(metric.get("value")):
                return f"{where}/metrics/{name}/value: {metric.get('value')!r}"
        for name, value in (case.get("timings") or {}).items():
            if not _possible(value, zero_ok=name != "total"):
                return f"{where}/timings/{name}: {value!r}"
        median = (case.get("stats") or {}).get("median")
        if median is not None and not _possible(median):
            return f"{where}/stats/median: {median!r}"
    return None


def _possible(value: Any, zero_ok: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True  # not a number: the schema speaks for its type
    return math.isfinite(value) and (value >= 0 if zero_ok else value > 0)


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file, with one clear error for a missing, unreadable or invalid file.

    The error names the file and, where it is not JSON at all (binary, not UTF-8, compressed,
    CSV), says what it is instead.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ResultFileError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ResultFileError(f"{what} {path} is a directory; give a .json file") from None
    except OSError as exc:
        raise ResultFileError(f"{what} {path} cannot be read: {exc.strerror}") from None
    kind = not_json_kind(raw)
    if kind is not None:
        raise ResultFileError(f"{what} {path} is not valid JSON: {kind}")
    text = raw.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        ending = "; the file ends early: was it truncated?" if (
            exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")) else ""
        raise ResultFileError(
            f"{what} {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}){ending}") from None


def not_json_kind(raw: bytes) -> str | None:
    """What ``raw`` is when it cannot be JSON text (``None`` when it may be).

    Returns
    -------
    str or None
        e.g. ``"it is empty"``, ``"it is gzip-compressed"``, ``"it is binary"``,
        ``"it is not UTF-8 text (byte 0xff at offset 3)"``, ``"it is CSV (first line: ...)"``.
    """
    if not raw.strip():
        return "it is empty"
    if raw[:2] == b"\x1f\x8b":
        return "it is gzip-compressed; decompress it first"
    if b"\0" in raw[:65536]:
        return "it is a binary file (it holds NUL bytes)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"it is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
    first = text.lstrip("\ufeff").lstrip().split("\n", 1)[0].strip()
    if first and first[0] not in "{[" and first.count(",") >= 1:
        shown = first if len(first) <= 60 else first[:57] + "..."
        return (f"it is CSV (first line: {shown}); a CSV result holds only names and figures: give the "
                "run's .json file of the same name instead")
    return None


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What verdicts are computed against: a reference or a baseline run.

    Attributes
    ----------
    name : str
        Shown as the verdict column's title.
    path : Path
        The file it came from.
    context : dict
        ``profile``, ``backend`` and ``data`` it was measured with.
    tests : dict
        ``{(group, test): CaseRecord}``; figures come from
        :mod:`pytest_cryobench.record.derive`.
    kind : {"reference", "baseline", "run"}
        ``run``: a result file read by ``cryobench compare``/``report``.
    meta : dict
        ``instance_information``, ``created_at``, ``description``, ``command`` and, for GPU runs,
        ``gpus``: what the compare and report tools show about where the figures came from.
    """

    name: str
    path: Path
    context: Mapping[str, Any]
    tests: Mapping[tuple[str, str], CaseRecord]
    kind: str = "reference"
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def entry(self, group: str, test: str) -> CaseRecord | None:
        return self.tests.get((group, test))


def _check_version(doc: Any, path: Path, what: str, kind: str, version: int = REFERENCE_SCHEMA_VERSION) -> None:
    if not isinstance(doc, dict):
        raise ResultFileError(f"{what} {path} is not a JSON object")
    if doc.get("kind") != kind:
        raise ResultFileError(f"{what} {path} is not a pytest-cryobench {kind.split('-')[1]} file "
                              f"(its 'kind' is {doc.get('kind')!r})")
    found = doc.get("schema_version")
    if found not in READABLE_VERSIONS:
        if isinstance(found, int) and found > version:
            advice = ": it was written by a newer pytest-cryobench; upgrade this one to read it"
        elif isinstance(found, int):
            advice = (": it was written by an older pytest-cryobench, and no upgrade from that version "
                      "exists; re-run the benchmark to get a file this version reads")
        else:
            advice = ": the file is damaged or was not written by pytest-cryobench"
        raise ResultFileError(
            f"{what} {path} has schema version {found!r}; this pytest-cryobench ({__version__}) reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}{advice}")


def comparison_from_reference(doc: Mapping[str, Any], path: Path) -> Comparison:
    """A reference document of schema 1 or 2, checked against its schema (schema 1 migrated)."""
    _check_version(doc, path, "reference", REFERENCE_KIND)
    validate(doc, f"reference-{doc['schema_version']}.schema.json", path, "reference")
    if doc["schema_version"] == 1:
        doc = reference_to_2(doc)
    tests = {(group, test): CaseRecord.from_json(group, test, obj)
             for group, entries in doc["tests"].items() for test, obj in entries.items()}
    context = {"profile": doc["profile"], "backend": doc["backend"], "data": doc["data"],
               "eer": doc.get("eer")}  # None: not recorded (an imported CryoSPARC result, an older reference)
    meta = {key: doc.get(key) for key in ("instance_information", "created_at", "description", "command",
                                          "cryobench_version", "source_run", "imported_from")}
    return Comparison(doc["name"], Path(path), context, tests, "reference", meta)


def load_result(path: Path, what: str = "result file") -> dict[str, Any]:
    """One group file of a run as a schema-2 document (a schema-1 file is checked, then migrated)."""
    doc = read_json(path, what)
    _check_version(doc, path, what, RESULT_KIND)
    validate(doc, f"result-{doc['schema_version']}.schema.json", path, what)
    return result_to_2(doc) if doc["schema_version"] == 1 else doc


def result_tests(doc: Mapping[str, Any]) -> dict[tuple[str, str], CaseRecord]:
    """The records of one (schema-2) result document by ``(group, test)``."""
    return {(rec.group, rec.test): rec for rec in records_of(doc)}


def run_context(doc: Mapping[str, Any]) -> dict[str, Any]:
    info = doc["test_info"]
    return {"profile": info["profile"], "backend": info["backend"], "data": info["data"],
            "eer": info.get("eer", {})}  # {}: a run from before the EER settings were recorded


def sibling_result_files(path: Path) -> list[Path]:
    """The group files of the same run as ``path`` (``path`` first)."""
    match = _RESULT_NAME.match(path.name)
    if not match:
        return [path]
    others = [path.with_name(f"{match['run']}_{g}_benchmark_data.json") for g in GROUPS]
    return [path] + [p for p in others if p != path and p.exists()]


def load_baseline(path: Path, kind: str = "baseline") -> Comparison:
    """A previous run (one of its group files; the others of the same run come along).

    ``kind`` is ``"baseline"`` (named ``baseline <run-id>``), ``"reference"`` for a result file
    given as ``--cryobench-reference`` (named ``run <run-id>``) or ``"run"`` for a column of
    ``cryobench compare`` (named by its run id alone).
    """
    docs = [load_result(p, "result file" if kind == "run" else kind) for p in sibling_result_files(Path(path))]
    tests: dict[tuple[str, str], CaseRecord] = {}
    for doc in docs:
        tests.update(result_tests(doc))
    run_id = docs[0]["run_id"]
    name = {"baseline": f"baseline {run_id}", "reference": f"run {run_id}"}.get(kind, run_id)
    info = docs[0]["test_info"]
    meta = {"instance_information": info.get("instance_information", {}), "created_at": info.get("created_at"),
            "description": "", "command": info.get("command"), "cryobench_version": info.get("cryobench_version"),
            "source_run": run_id, "anonymized": bool(info.get("anonymized"))}
    return Comparison(name, Path(path), run_context(docs[0]), tests, kind, meta)


def known_references(search_dirs: Iterable[Path]) -> dict[str, Path]:
    """Reference files by name (file stem) in the given directories; earlier dirs win."""
    found: dict[str, Path] = {}
    for directory in search_dirs:
        if directory is None or not Path(directory).is_dir():
            continue
        for path in sorted(Path(directory).glob("*.json")):
            found.setdefault(path.stem, path)
    return found


def find_reference(spec: str, search_dirs: Iterable[Path | None], given_as: str, what: str) -> Path:
    """``spec`` as a path if it exists, else the reference of that name in ``search_dirs``.

    Raises
    ------
    ResultFileError
        Neither: the message starts with ``given_as`` and lists the known names.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path
    known = known_references([d for d in search_dirs if d is not None])
    if spec not in known:
        listing = ", ".join(sorted(known)) or "none are installed"
        raise ResultFileError(f"{given_as}: no such file, and no {what} of that name (known: {listing})")
    return known[spec]


def load_reference(spec: str, search_dirs: Iterable[Path | None] = ()) -> Comparison:
    """Load ``--cryobench-reference`` by path, or by name among the shipped references.

    A result file given by path is also accepted (it is compared like a baseline).

    Raises
    ------
    ResultFileError
        Unknown name (listing the known ones), unreadable file, invalid JSON or schema.
    """
    path = find_reference(spec, search_dirs, f"--cryobench-reference {spec}", "shipped reference")
    doc = read_json(path, "reference")
    if isinstance(doc, dict) and doc.get("kind") == RESULT_KIND:
        return load_baseline(path, kind="reference")
    return comparison_from_reference(doc, path)


def make_reference(docs: list[Mapping[str, Any]], name: str, description: str = "") -> dict[str, Any]:
    """Turn a run's result documents (one per group) into a reference document.

    Raises
    ------
    ResultFileError
        The documents come from different runs, or none was given.
    """
    if not docs:
        raise ResultFileError("no result file given")
    runs = {doc["run_id"] for doc in docs}
    if len(runs) > 1:
        raise ResultFileError(f"result files come from different runs: {sorted(runs)}")
    info = docs[0]["test_info"]
    tests: dict[str, dict[str, Any]] = {}
    for doc in docs:
        for rec in records_of(doc):
            case = rec.to_json()
            case["verdicts"] = {}  # against the run's own references: not part of a reference
            tests.setdefault(rec.group, {})[rec.test] = case
    ref = {
        "schema_version": REFERENCE_SCHEMA_VERSION,
        "kind": REFERENCE_KIND,
        "name": name,
        "description": description,
        "profile": info["profile"],
        "backend": info["backend"],
        "data": info["data"],
        "eer": info.get("eer"),
        "created_at": time.time(),
        "command": info.get("command", ""),
        "cryobench_version": info["cryobench_version"],
        "source_run": docs[0]["run_id"],
        "instance_information": info["instance_information"],
        "tests": tests,
    }
    validate(ref, f"reference-{REFERENCE_SCHEMA_VERSION}.schema.json", Path(f"<{name}>"), "reference")
    return ref


def load_column(spec: str, search_dirs: Iterable[Path | None] = ()) -> Comparison:
    """One column of ``cryobench compare``/``report``: a result file (its run's other group files
    come along), a reference file, a shipped reference by name, or the JSON of CryoSPARC's
    Benchmark job (converted on the fly, see :mod:`pytest_cryobench.record.cryosparc_import`).

    Raises
    ------
    ResultFileError
        Unknown name (listing the known ones), unreadable file, invalid JSON, wrong schema version,
        or a JSON file of none of these kinds.
    """
    path = find_reference(spec, search_dirs, spec, "reference")
    doc = read_json(path, "file")
    if isinstance(doc, dict) and doc.get("kind") == RESULT_KIND:
        return load_baseline(path, kind="run")
    if isinstance(doc, dict) and doc.get("kind") == REFERENCE_KIND:
        return comparison_from_reference(doc, path)
    from pytest_cryobench.record.cryosparc_import import convert, is_cryosparc_document

    if is_cryosparc_document(doc):
        return comparison_from_reference(convert([doc], name=path.stem, sources=[path]), path)
    raise ResultFileError(
        f"{path} is neither a pytest-cryobench result or reference file nor a CryoSPARC Benchmark result "
        "(a JSON object with 'type', 'timings' and 'test_info')")
