"""Command-line options that ``fs_speed.py`` and ``movie_speed.py`` share, and their JSON output."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def add_repeats_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--repeats N`` (default 3); :func:`check_repeats` refuses less than 1."""
    parser.add_argument("--repeats", type=int, default=3, help=help)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json OUT``: where the figures are written (:func:`write_json`)."""
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the figures here")


def add_fio_option(parser: argparse.ArgumentParser) -> None:
    """``--fio PATH``, by default fio from PATH (None when there is none)."""
    parser.add_argument("--fio", default=shutil.which("fio"), help="fio executable (default: from PATH)")


def check_repeats(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error when ``--repeats`` is below 1."""
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")


def write_json(path: Path | None, result: dict[str, object]) -> None:
    """Write ``result`` to ``path`` (indented, numpy scalars as floats) and say so; nothing without a path."""
    if path:
        path.write_text(json.dumps(result, indent=2, default=float) + "\n")
        print(f"figures written to {path}")
