"""Page-cache control around cold timings, and the log of what each timed run saw."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from pytest_cryobench.measure import pagecache


@dataclasses.dataclass
class Log:
    """Per-measurement lines: residency before each timed run and the rate it gave (MB/s)."""

    entries: list[dict[str, object]] = dataclasses.field(default_factory=list)

    def add(self, repeat: int, what: str, residency: pagecache.Residency, rate: float | None) -> None:
        """Record and print one timed run (``rate`` in MB/s, None when there is none)."""
        frac = residency.fraction if residency.measured else None
        self.entries.append({"repeat": repeat, "what": what, "residency": frac, "mb_per_s": rate})
        shown = f"{frac:6.2%}" if frac is not None else "unknown"
        warm = "  WARNING: not cold" if residency.warm else ""
        rate_text = f"{rate:9.1f} MB/s" if rate is not None else "      n/a"
        print(f"  [{repeat + 1}] {what:<28} residency before {shown}  {rate_text}{warm}", flush=True)


def settle(*directories: Path) -> None:
    """Remove earlier copies and write back dirty pages, so one run's writeback does not slow the next."""
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    os.sync()


def evict(files: Sequence[Path]) -> pagecache.Residency:
    """Evict ``files`` with fadvise and return their residency afterwards (should be ~0)."""
    return pagecache.drop_and_measure(list(files), "fadvise")
