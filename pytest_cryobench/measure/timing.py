"""Named sub-timings with component tags, and statistics over rounds.

Every clock read is preceded by the backend's ``synchronize`` so that queued GPU work is counted
where it was issued, not where it happened to be waited for.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

# The guide's component tags: the hardware each sub-timing most depends on.
TAGS = {
    "CPU": "CPU performance (single core clock)",
    "GPU": "GPU performance (float32 throughput, memory bandwidth)",
    "PCIe": "PCIe latency/bandwidth (host<->device transfers)",
    "Alloc": "CPU/GPU memory allocation",
    "IO": "storage read speed",
}


class SubTimings:
    """Records named spans per round.

    Parameters
    ----------
    synchronize : callable
        Called before every clock read (a device sync for GPU work; a no-op on the CPU).
    clock : callable
        Seconds as a float; :func:`time.perf_counter` by default.

    Examples
    --------
    >>> st = SubTimings()
    >>> st.start_round()
    >>> with st.span("read_particles", "IO"):
    ...     pass
    >>> sorted(st.rounds[0])
    ['read_particles']
    """

    def __init__(self, synchronize: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._sync = synchronize
        self._clock = clock
        self.rounds: list[dict[str, float]] = []
        self.tags: dict[str, tuple[str, ...]] = {}

    def start_round(self) -> None:
        self.rounds.append({})

    def add(self, name: str, seconds: float, *tags: str) -> None:
        """Add ``seconds`` to span ``name`` of the current round (spans repeat per batch)."""
        unknown = [t for t in tags if t not in TAGS]
        if unknown:
            raise ValueError(f"unknown component tag(s) {unknown}; known: {sorted(TAGS)}")
        if not self.rounds:
            self.start_round()
        current = self.rounds[-1]
        current[name] = current.get(name, 0.0) + seconds
        if tags:
            self.tags[name] = tuple(tags)
        else:
            self.tags.setdefault(name, ())

    def now(self) -> float:
        """Synchronise the device, then read the clock."""
        self._sync()
        return self._clock()

    @contextlib.contextmanager
    def span(self, name: str, *tags: str) -> Iterator[None]:
        start = self.now()
        try:
            yield
        finally:
            self.add(name, self.now() - start, *tags)

    def medians(self) -> dict[str, float]:
        """Median over rounds of each span (a span missing in a round counts as 0 there)."""
        names = list(dict.fromkeys(name for rnd in self.rounds for name in rnd))
        return {name: statistics.median(rnd.get(name, 0.0) for rnd in self.rounds) for name in names}


def round_stats(times: Sequence[float]) -> dict[str, float | int]:
    """Summary of per-round times, seconds.

    Returns
    -------
    dict
        ``median``, ``min``, ``max``, ``mean``, ``iqr`` (upper minus lower quartile, the
        inclusive method; 0 with fewer than two rounds) and ``rounds``.
    """
    if not times:
        raise ValueError("no rounds were timed")
    values = sorted(float(t) for t in times)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        iqr = q3 - q1
    else:
        iqr = 0.0
    return {
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "mean": statistics.fmean(values),
        "iqr": iqr,
        "rounds": len(values),
    }
