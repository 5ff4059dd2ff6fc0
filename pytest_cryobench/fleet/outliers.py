"""The outlier rule of a fleet: which node is slow at a case, by how much, and at what component.

Per case, across the nodes that measured it (see ``docs/design.md``):

- ``m`` is the median over nodes of each node's time (its median over rounds), and the fleet's
  scatter is ``s = 1.4826 * MAD`` (the median absolute deviation from ``m``, scaled so that it
  estimates a normal spread);
- each node's time is taken at its *low* end, the lower bound of the confidence interval of its
  median over rounds (with 3 rounds, its fastest round), so that one slow round cannot make a
  node look slow; the scale is ``sigma = max(s, r)``, ``r`` being the median over nodes of
  ``time - low`` (the rounds' own noise), so that nodes agreeing more closely than their rounds
  repeat are not told apart by noise;
- a node is an outlier when ``(low - m) / sigma > 3.5`` *and* ``low / m > tolerance``: slower by a
  robust margin and by more than the case's tolerance, both at its low end;
- its *component* is the sub-timing whose seconds grew most over that sub-timing's fleet median,
  with that sub-timing's tags (``IO``, ``PCIe``, ``GPU``, ``CPU``, ``Alloc``).

With fewer than :data:`MIN_NODES` nodes a median says nothing about which node is odd: no node
is named. Pure functions: no I/O.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence

MAD_SCALE = 1.4826
THRESHOLD = 3.5
MIN_NODES = 3


@dataclasses.dataclass(frozen=True)
class NodeTime:
    """One node's time at one case.

    Attributes
    ----------
    node : str
    seconds : float
        The median over rounds (s).
    low : float
        The lower end of its median's confidence interval over rounds (s); ``low <= seconds``.
        Equal to ``seconds`` when the rounds are not known.
    timings : dict of str to float
        Median seconds of each sub-timing (``total`` is ignored).
    tags : dict of str to list of str
        Component tags of each sub-timing.
    """

    node: str
    seconds: float
    low: float
    timings: Mapping[str, float] = dataclasses.field(default_factory=dict)
    tags: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outlier:
    """A node named slow at one case.

    Attributes
    ----------
    node : str
    factor : float
        Its time / the fleet median.
    score : float
        ``(low - median) / sigma`` (see the module docstring).
    median : float
        The fleet median (s).
    seconds : float
        Its time (s).
    timing : str or None
        The sub-timing that grew most (``None`` when the case has none).
    tags : tuple of str
        That sub-timing's tags.
    grew_s : float
        By how many seconds it grew over its fleet median.
    """

    node: str
    factor: float
    score: float
    median: float
    seconds: float
    timing: str | None
    tags: tuple[str, ...]
    grew_s: float

    @property
    def component(self) -> str:
        return ", ".join(self.tags) if self.tags else (self.timing or "no sub-timings")


def robust_scale(values: Sequence[float]) -> tuple[float, float]:
    """``(median, 1.4826 * MAD)`` of ``values``.

    >>> robust_scale([1.0, 2.0, 3.0, 4.0, 100.0])
    (3.0, 1.4826)
    """
    center = statistics.median(values)
    return center, MAD_SCALE * statistics.median(abs(v - center) for v in values)


def grown_component(node: NodeTime, fleet: Sequence[NodeTime]) -> tuple[str | None, tuple[str, ...], float]:
    """The sub-timing of ``node`` that grew most over its median across ``fleet``:
    ``(name, tags, seconds grown)``; ``(None, (), 0.0)`` when there are no sub-timings."""
    best: tuple[str | None, tuple[str, ...], float] = (None, (), 0.0)
    for name, seconds in node.timings.items():
        if name == "total":
            continue
        others = [n.timings[name] for n in fleet if name in n.timings]
        grew = seconds - statistics.median(others)
        if best[0] is None or grew > best[2]:
            best = (name, tuple(node.tags.get(name, ())), grew)
    return best


def case_outliers(times: Sequence[NodeTime], tolerance: float, threshold: float = THRESHOLD) -> list[Outlier]:
    """The nodes slow at one case, slowest first (see the module docstring).

    Parameters
    ----------
    times : sequence of NodeTime
        One per node that measured the case; nodes without a positive finite time are left out.
    tolerance : float
        The case's allowed slowdown ratio (> 1).
    threshold : float
        The robust score a node must exceed.
    """
    fleet = [t for t in times if math.isfinite(t.seconds) and t.seconds > 0]
    if len(fleet) < MIN_NODES:
        return []
    median, scatter = robust_scale([t.seconds for t in fleet])
    noise = statistics.median(max(t.seconds - t.low, 0.0) for t in fleet)
    sigma = max(scatter, noise)
    found = []
    for t in fleet:
        low = min(t.low, t.seconds)
        excess = low - median
        score = excess / sigma if sigma > 0 else (math.inf if excess > 0 else 0.0)
        if score > threshold and low / median > tolerance:
            timing, tags, grew = grown_component(t, fleet)
            found.append(Outlier(t.node, t.seconds / median, score, median, t.seconds, timing, tags, grew))
    return sorted(found, key=lambda o: -o.factor)


def find_outliers(cases: Mapping[tuple[str, str], Sequence[NodeTime]], tolerances: Mapping[tuple[str, str], float],
                  threshold: float = THRESHOLD) -> dict[tuple[str, str], list[Outlier]]:
    """:func:`case_outliers` of every ``(group, test)``; only cases with an outlier are kept."""
    found = {}
    for key, times in cases.items():
        outliers = case_outliers(times, tolerances[key], threshold)
        if outliers:
            found[key] = outliers
    return found


def sentence(test: str, outlier: Outlier) -> str:
    """``n07: particle_random_read 2.4x the fleet median; IO``."""
    return f"{outlier.node}: {test} {outlier.factor:.1f}x the fleet median; {outlier.component}"
