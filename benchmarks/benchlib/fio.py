"""fio as the reference tool: job options, a checked run and the job's printable form.

fio is not a dependency of the project; the scripts report their figures without a reference
when it is missing (:func:`resolve_fio`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

MB = 1e6
# fio refuses option values longer than this; a stack's full paths easily exceed it.
FIO_MAX_OPTION_CHARS = 4096
# Every cold fio read of the scripts: synchronous reads one at a time through the page cache,
# the files' cached pages invalidated when the job starts.
COLD_READ_OPTIONS = ("--ioengine=psync", "--iodepth=1", "--numjobs=1", "--direct=0", "--invalidate=1")


def resolve_fio(fio: str | None) -> str | None:
    """``fio`` when it names an executable (a path, or a name on PATH), else None."""
    return fio if fio and shutil.which(fio) else None


def fio_file_options(files: Sequence[Path], link_dir: Path) -> list[str]:
    """``--directory`` and ``--filename`` options naming ``files`` in order, within fio's limits.

    fio splits ``filename`` on ':' and rejects a value over 4096 characters, so each file gets
    a hard link (a symlink where hard links fail) named by its index in ``link_dir``: the same
    inode, hence the same blocks and the same page cache, under a name of a few characters.
    """
    link_dir.mkdir(parents=True, exist_ok=True)
    for index, path in enumerate(files):
        link = link_dir / str(index)
        if link.exists() or link.is_symlink():
            continue
        try:
            os.link(path, link)
        except OSError:
            os.symlink(path.resolve(), link)
    names = ":".join(str(index) for index in range(len(files)))
    if len(names) >= FIO_MAX_OPTION_CHARS:
        raise RuntimeError(f"{len(files)} files: too many for one fio --filename list")
    return [f"--directory={link_dir}", f"--filename={names}"]


def existing_files_options(files: Sequence[Path], link_dir: Path) -> list[str]:
    """The end of a read job: only existing files (in order, see :func:`fio_file_options`), JSON out."""
    return ["--allow_file_create=0", *fio_file_options(files, link_dir), "--output-format=json"]


def describe_fio(options: Sequence[str], files_text: str) -> str:
    """``fio OPTIONS`` for printing: the link directory and output format left out, the file
    list replaced by ``<files_text>``."""
    shown = []
    for arg in options:
        if arg.startswith(("--directory=", "--output-format=")):
            continue
        if arg.startswith("--filename="):
            arg = f"--filename=<{files_text}>"
        shown.append(arg)
    return "fio " + " ".join(shown)


def parse_fio_json(text: str) -> dict:
    """fio's JSON document from its stdout (fio may print notices before it)."""
    start = text.find("{")
    if start < 0:
        raise RuntimeError(f"fio printed no JSON: {text[-500:]}")
    return json.loads(text[start:])


def fio_runner(argv: Sequence[str], expected: int, what: str) -> Callable[[], float]:
    """A timed fio command.

    Parameters
    ----------
    argv : sequence of str
        The whole command, fio's path first, with ``--output-format=json``.
    expected : int
        Bytes the job must read; any other count raises.
    what : str
        Names the job in error messages.

    Returns
    -------
    callable
        ``run() -> MB/s`` from fio's ``read.bw_bytes`` (of the first job).
    """

    def run() -> float:
        done = subprocess.run(list(argv), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"fio failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        read = parse_fio_json(done.stdout)["jobs"][0]["read"]
        if read["io_bytes"] != expected:
            raise RuntimeError(f"fio {what} read {read['io_bytes']} bytes, expected {expected}")
        return read["bw_bytes"] / MB

    return run
