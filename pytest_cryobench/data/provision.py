"""Provisioning of the synthetic benchmark data set, shared by every data kind.

Generated data lives under ``<data-dir>/synthetic-<profile>/`` in CryoSPARC's benchmark layout
(``movies/tiff/...``, ``gpu_fsc_test/...``). A manifest (``cryobench-manifest.json``) records,
per *component* (a group of files made by one generator, e.g. ``movies/tiff``): the generator
version, seed and parameters, every file's size, modification time and SHA-256, and the ground
truth the generator planted. A run reuses a component whose manifest entry matches and whose
files still have the recorded sizes and times; otherwise it regenerates it (saying why), never
using changed files silently. ``cryobench data verify`` re-checks every checksum.

Generation takes an exclusive lock (two runs never write the same files), checks free space
first, writes each file under a temporary name and renames it, and reports progress. Complete
data is used without the lock, so a read-only copy runs; a disk that fills while writing is one
:class:`~pytest_cryobench.errors.NotEnoughSpace` naming the directory (nothing half-written kept).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pytest_cryobench.errors import CryobenchError, DirectoryError
from pytest_cryobench.measure.fsutil import atomic_write, human_bytes, reporting_full_disk, require_free_space

MANIFEST_NAME = "cryobench-manifest.json"
MANIFEST_KIND = "cryobench-data"
MANIFEST_SCHEMA_VERSION = 1
LOCK_NAME = ".cryobench.lock"

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class Component:
    """One generator and the files it makes.

    Attributes
    ----------
    name : str
        Its folder in the layout, e.g. ``"movies/tiff"``.
    version : int
        Generator version; bump it when the output changes, so old data is regenerated.
    params : dict
        Everything that decides the output besides the seed (shapes, counts, rates).
    files : tuple of str
        Paths relative to the data root, in generation order.
    estimated_bytes : int
        Upper estimate of the bytes written, for the free-space check.
    generate : callable
        ``generate(root, file_name, tmp_path, progress) -> truth`` writes ``file_name`` (relative)
        to ``tmp_path`` and returns its ground truth (JSON-able).
    """

    name: str
    version: int
    params: Mapping[str, Any]
    files: tuple[str, ...]
    estimated_bytes: int
    generate: Callable[[str, Path, Progress], Any]

    def signature(self, seed: int) -> dict[str, Any]:
        return {"version": self.version, "seed": seed, "params": json.loads(json.dumps(self.params))}


def sha256_of(path: Path, chunk: int = 16 << 20) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_root(data_dir: Path, profile: str) -> Path:
    """Where the generated data of ``profile`` lives."""
    return data_dir / f"synthetic-{profile}"


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of a data root (an empty one if there is none)."""
    path = root / MANIFEST_NAME
    empty = {"kind": MANIFEST_KIND, "schema_version": MANIFEST_SCHEMA_VERSION, "components": {}}
    if not path.exists():
        return empty
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON or not UTF-8
        raise CryobenchError(f"{path}: the data manifest cannot be read ({exc}); delete it to regenerate "
                             "the data") from None
    if not isinstance(doc, dict):
        raise CryobenchError(f"{path}: the data manifest is not a JSON object; delete it to regenerate the data")
    if doc.get("kind") != MANIFEST_KIND or doc.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        return empty  # an older layout: everything is regenerated
    if not isinstance(doc.get("components"), dict):
        raise CryobenchError(f"{path}: the data manifest has no 'components' object; delete it to regenerate "
                             "the data")
    return doc


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    with atomic_write(root / MANIFEST_NAME) as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")


@contextlib.contextmanager
def locked(root: Path, say: Callable[[str], None] = lambda text: None, why: str = "generating data") -> Iterator[None]:
    """Hold the data root's exclusive lock (waiting, and saying so, if another run has it).

    Raises
    ------
    DirectoryError
        The root cannot be created or written (read-only storage, no permission): taken only
        when something must be written there, so the message says what.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / LOCK_NAME, "a")
    except OSError as exc:
        raise DirectoryError(f"data dir {root} is not writable ({exc.strerror}) and data must be written "
                             f"there: {why}. Generate the data on writable storage, or choose another "
                             "--cryobench-data-dir") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another run that is generating data in {root}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stale_reason(root: Path, entry: Mapping[str, Any] | None, component: Component, seed: int) -> str | None:
    """Why a component's files cannot be reused (``None``: they can)."""
    if entry is None:
        return "not generated yet"
    if entry.get("signature") != component.signature(seed):
        return "generated with other parameters or generator version"
    for name in component.files:
        record = entry.get("files", {}).get(name)
        path = root / name
        if record is None:
            return f"{name} is not in the manifest"
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"{path} is missing"
        if st.st_size != record["size"] or st.st_mtime_ns != record["mtime_ns"]:
            return f"{path} changed since it was generated (size or modification time differs)"
    return None


def ensure(root: Path, component: Component, seed: int, *,
           progress_for: Callable[[str], contextlib.AbstractContextManager] | None = None,
           say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Make sure ``component``'s files exist and match; generate them if not.

    Parameters
    ----------
    root : Path
        The data root (see :func:`data_root`).
    component : Component
        What to provision.
    seed : int
        Seed of the data set.
    progress_for : callable, optional
        ``progress_for(label)`` returns a context manager yielding ``update(done, total)``.
    say : callable
        Receives one-line messages (regeneration reasons, waiting for the lock).

    Returns
    -------
    dict
        The component's manifest entry: ``files`` (size, mtime, sha256) and ``truth`` per file.

    Raises
    ------
    NotEnoughSpace
        Before anything is written.
    """
    entry = read_manifest(root)["components"].get(component.name)
    reason = stale_reason(root, entry, component, seed)
    if reason is None:  # complete: nothing to write, no lock (the data dir may be read-only)
        return entry
    with locked(root, say, why=f"{component.name} {reason}"), reporting_full_disk(root, component.estimated_bytes):
        manifest = read_manifest(root)
        entry = manifest["components"].get(component.name)
        reason = stale_reason(root, entry, component, seed)
        if reason is None:  # another run generated it while this one waited for the lock
            return entry
        if entry is not None:
            say(f"regenerating {component.name} in {root}: {reason}")
        require_free_space(root, component.estimated_bytes, f"data dir (for {component.name})")
        new_entry = {"signature": component.signature(seed), "files": {}, "truth": {},
                     "generated_at": time.time()}
        started = time.monotonic()
        written = 0
        for name in component.files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            label = f"generating {name}"
            ctx = progress_for(label) if progress_for else contextlib.nullcontext(lambda done, total: None)
            try:
                with ctx as update:
                    truth = component.generate(name, tmp, update)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                raise
            st = path.stat()
            written += st.st_size
            new_entry["files"][name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                        "sha256": sha256_of(path)}
            new_entry["truth"][name] = truth
        elapsed = time.monotonic() - started
        new_entry["generation_seconds"] = elapsed
        new_entry["generation_rate_MBps"] = written / elapsed / 1e6 if elapsed > 0 else None
        manifest["components"][component.name] = new_entry
        manifest["profile"] = root.name.removeprefix("synthetic-")
        _write_manifest(root, manifest)
        say(f"generated {component.name}: {human_bytes(written)} in {elapsed:.1f} s "
            f"({written / max(elapsed, 1e-9) / 1e6:.0f} MB/s)")
        return new_entry


@dataclasses.dataclass
class VerifyReport:
    """Outcome of :func:`verify`: one line per problem, and how many files were checked."""

    checked: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(root: Path, readers: Mapping[str, Callable[[Path], None]] | Callable[[str], Any] | None = None
           ) -> VerifyReport:
    """Check every file of a data root against its manifest (size, SHA-256) and readability.

    Parameters
    ----------
    root : Path
        A data root.
    readers : mapping or callable, optional
        ``{component name: check(path)}``, or ``reader(relative path) -> check or None``; a check
        raises :class:`CryobenchError` when a file cannot be read.

    Raises
    ------
    CryobenchError
        The manifest cannot be read (see :func:`read_manifest`).
    """
    report = VerifyReport()
    manifest = read_manifest(root)
    if not manifest["components"]:
        report.problems.append(f"{root}: no generated data (no {MANIFEST_NAME}); run 'cryobench data generate'")
        return report
    for name, entry in manifest["components"].items():
        files = entry.get("files") if isinstance(entry, dict) else None
        if not isinstance(files, dict):
            report.problems.append(f"{root / MANIFEST_NAME}: the entry of {name} is damaged (no file list); "
                                   "delete the manifest to regenerate the data")
            continue
        for rel, record in files.items():
            path = root / rel
            report.checked += 1
            if not isinstance(record, dict) or not {"size", "sha256"} <= set(record):
                report.problems.append(f"{root / MANIFEST_NAME}: the record of {rel} is damaged; delete the "
                                       "manifest to regenerate the data")
                continue
            if not path.exists():
                report.problems.append(f"{path}: missing")
                continue
            if path.stat().st_size != record["size"]:
                report.problems.append(f"{path}: size {path.stat().st_size}, manifest says {record['size']}")
                continue
            if sha256_of(path) != record["sha256"]:
                report.problems.append(f"{path}: checksum differs from the manifest")
                continue
            check = readers(rel) if callable(readers) else (readers or {}).get(name)
            if check is not None:
                try:
                    check(path)
                except CryobenchError as exc:
                    report.problems.append(str(exc))
    return report


def stderr_say(text: str) -> None:
    print(f"[cryobench] {text}", file=sys.stderr, flush=True)
