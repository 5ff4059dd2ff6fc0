"""Plain-text tables and the number formats of the scripts' result tables."""

from __future__ import annotations

from collections.abc import Sequence

MB = 1e6


def number_text(value: float | None, spec: str = ".1f") -> str:
    """``value`` formatted with ``spec``, or ``"n/a"`` when it is None."""
    return "n/a" if value is None else format(value, spec)


def rate_text(nbytes: int, seconds: float | None) -> str:
    """``nbytes / seconds`` in MB/s with one decimal, ``"n/a"`` without a (non-zero) time."""
    return "n/a" if not seconds else f"{nbytes / seconds / MB:.1f}"


def print_rows(rows: Sequence[Sequence[str]], indent: str = "") -> None:
    """Print ``rows`` as left-aligned columns, the first row a header underlined with dashes."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print(indent + "  ".join("-" * w for w in widths))
