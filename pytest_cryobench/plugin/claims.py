"""Which run owns a run id and a work dir, told by a held lock rather than by names alone.

A run holds an exclusive ``flock`` on a small owner file for as long as it runs: on
``<output>/.<run-id>.cryobench-run`` for its run id, and on ``<work-dir>/.cryobench-owner`` for
each directory it creates for generated files. The kernel drops the lock when the process ends,
however it ends (``kill -9`` included), so a lock that can be taken means a dead owner: its run
id is free again, and its work dir (particles left by a killed run) is removed, saying so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import socket
from pathlib import Path

from pytest_cryobench.errors import DirectoryError

OWNER_NAME = ".cryobench-owner"
WORK_DIR_PREFIX = "cryobench-"


@dataclasses.dataclass
class Claim:
    """A held lock on an owner file; :meth:`release` drops it (and removes the file if asked)."""

    path: Path
    fd: int
    remove_on_release: bool = False

    def release(self) -> None:
        if self.fd < 0:
            return
        if self.remove_on_release:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def _owner_text() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def try_claim(path: Path, *, remove_on_release: bool = False) -> Claim | str:
    """Take the lock on ``path`` (created if missing), or return who holds it (``"pid N on host"``)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            return holder
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed (as a dead run's) between our open and our lock: take the new file
    os.ftruncate(fd, 0)
    os.pwrite(fd, _owner_text().encode(), 0)
    return Claim(path, fd, remove_on_release)


def previous_owner(owner: Path) -> str | None:
    """Who owned a work dir, if that run has ended (its lock is free); ``None`` while it runs."""
    try:
        fd = os.open(owner, os.O_RDONLY)
    except OSError:
        return "an unknown run"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "an unknown run"
    finally:
        os.close(fd)


def remove_dead_work_dirs(base: Path) -> list[str]:
    """Remove the work dirs in ``base`` whose owning run has ended; one line per removal.

    Only directories named ``cryobench-*`` that hold an owner file are considered: anything else
    (the user's files, dirs of an older version without an owner file) is left alone.
    """
    import shutil

    removed = []
    try:
        candidates = sorted(base.glob(f"{WORK_DIR_PREFIX}*"))
    except OSError:
        return removed
    for path in candidates:
        owner = path / OWNER_NAME
        if not path.is_dir() or path.is_symlink() or not owner.is_file():
            continue
        who = previous_owner(owner)
        if who is None:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(f"removed {path}, left by a run that ended without cleaning up ({who})")
    return removed


def claim_work_dir(base: Path, run_id: str) -> tuple[Path, Claim, list[str]]:
    """Create ``<base>/cryobench-<run-id>`` and hold its owner lock, after removing dead runs' dirs.

    Returns
    -------
    path, claim, removed
        The directory, its held :class:`Claim`, and one line per stale directory removed.

    Raises
    ------
    DirectoryError
        The directory exists and is another live run's, or is not one of ours (no owner file).
    """
    removed = remove_dead_work_dirs(base)
    path = base / f"{WORK_DIR_PREFIX}{run_id}"
    try:
        path.mkdir(parents=False, exist_ok=False)
    except FileExistsError:
        owner = path / OWNER_NAME
        who = "an earlier run (no owner record)" if not owner.is_file() else "a run that is still going"
        raise DirectoryError(f"{path} already exists, made by {who}: choose another --cryobench-run-id, "
                             "or remove it if no run is using it") from None
    except OSError as exc:
        raise DirectoryError(f"cannot create {path}: {exc.strerror}") from None
    claim = try_claim(path / OWNER_NAME, remove_on_release=True)  # a kept dir (--cryobench-keep-data) stays
    if isinstance(claim, str):  # another process got in between our mkdir and the lock
        raise DirectoryError(f"{path} is in use by another run ({claim}); choose another --cryobench-run-id")
    return path, claim, removed


RUN_ID_SUFFIX = ".cryobench-run"


def claim_run_id(output: Path, run_id: str) -> Claim | str:
    """Hold ``run_id`` in ``output`` for this run, or return who holds it (a run still going).

    Lock files that runs which ended without releasing them (``kill -9``) left are removed first.
    """
    for stale in output.glob(f".*{RUN_ID_SUFFIX}"):
        claim = try_claim(stale)
        if isinstance(claim, Claim):  # its run has ended: remove the file while holding its lock
            claim.remove_on_release = True
            claim.release()
    return try_claim(output / f".{run_id}{RUN_ID_SUFFIX}", remove_on_release=True)
