"""A harness figure against a reference tool's, and one cold round over all the sides measured.

The helpers at the top (medians, ratios, verdict text) are the ones every compared figure of
the scripts uses, rates (higher is better) and times (lower is better) alike.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from benchlib.cache import Log, evict
from benchlib.tables import number_text, print_rows

# A harness rate must reach this share of the reference tool's.
TARGET_RATIO = 0.9


def median_or_none(samples: Sequence[float]) -> float | None:
    """The median of ``samples``, None when there are none."""
    return statistics.median(samples) if samples else None


def ratio_or_none(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when either is missing or zero."""
    return numerator / denominator if numerator and denominator else None


def paired_ratio(numerators: Iterable[float], denominators: Iterable[float]) -> float:
    """Median over repeats of the ratio within each repeat (robust to drift between repeats)."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def verdict_text(judged: bool, ratio: float | None, passed: bool | None) -> str:
    """``no reference`` (no ratio), ``info`` (not judged), else ``PASS`` or ``FAIL``."""
    if ratio is None:
        return "no reference"
    if not judged:
        return "info"
    return "PASS" if passed else "FAIL"


@dataclasses.dataclass
class Figure:
    """One compared figure: the harness's rate and a reference tool's, per repeat (MB/s).

    ``judged`` figures are the requirement's; the others are diagnostics shown beside them.
    Figures of the same measurement share the ``harness`` list.
    """

    name: str
    tool: str
    tool_detail: str
    judged: bool = True
    harness: list[float] = dataclasses.field(default_factory=list)
    reference: list[float] = dataclasses.field(default_factory=list)

    @property
    def harness_median(self) -> float:
        return statistics.median(self.harness)

    @property
    def reference_median(self) -> float | None:
        return median_or_none(self.reference)

    @property
    def ratio(self) -> float | None:
        return ratio_or_none(self.harness_median, self.reference_median)

    @property
    def paired_ratio(self) -> float | None:
        """Median over repeats of harness/reference within a repeat."""
        return paired_ratio(self.harness, self.reference) if self.reference else None

    @property
    def passed(self) -> bool | None:
        if not self.judged or self.ratio is None:
            return None
        return self.ratio >= TARGET_RATIO

    @property
    def verdict(self) -> str:
        return verdict_text(self.judged, self.ratio, self.passed)

    def as_dict(self) -> dict[str, object]:
        return {"figure": self.name, "tool": self.tool_detail, "judged": self.judged,
                "harness_mb_per_s": self.harness_median, "reference_mb_per_s": self.reference_median,
                "ratio": self.ratio, "paired_ratio": self.paired_ratio, "target": TARGET_RATIO,
                "passed": self.passed, "harness_samples_mb_per_s": self.harness,
                "reference_samples_mb_per_s": self.reference}


# One side of a measurement: its label, the timed run (returns MB/s) and where its samples go.
Side = tuple[str, Callable[[], float], list]


def measure_round(repeat: int, log: Log, cold_files: Sequence[Path], sides: Sequence[Side],
                  before: Callable[[], None] = lambda: None, prime: Callable[[], None] | None = None) -> None:
    """Run every side once, cold; who goes first rotates with the repeat.

    ``before`` runs (untimed) before each side; ``prime`` once before them all, untimed, so that
    the first side does not pay alone for a state the others inherit from it.
    """
    if prime is not None:
        prime()
    k = repeat % len(sides)
    for label, run, samples in [*sides[k:], *sides[:k]]:
        before()
        residency = evict(cold_files)
        rate = run()
        samples.append(rate)
        log.add(repeat, label, residency, rate)


def print_figures(figures: Sequence[Figure]) -> None:
    """The table of compared figures, a legend and each reference tool's command."""
    header = ("figure", "harness MB/s", "reference tool", "tool MB/s", "ratio", "paired ratio", "target",
              "result")
    rows = [header]
    for f in figures:
        target = f">= {TARGET_RATIO}" if f.judged else "-"
        rows.append((f.name, number_text(f.harness_median), f.tool, number_text(f.reference_median),
                     number_text(f.ratio, ".3f"), number_text(f.paired_ratio, ".3f"), target, f.verdict))
    print_rows(rows)
    print("  ratio = harness median / tool median (the judged figure); paired ratio = median of "
          "per-repeat ratios; 'info' rows are not judged")
    for f in figures:
        print(f"  {f.tool}: {f.tool_detail}")
