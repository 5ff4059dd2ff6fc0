"""How busy the machine was with other work while a case ran: the share of CPU time that other
processes took (``docs/design.md``, verdicts: the machine's own noise).

The whole machine's busy CPU time (``psutil.cpu_times``: everything but idle and iowait) minus
this process's own (its threads and waited-for children, ``psutil.Process.cpu_times``), over the
wall time times the logical CPUs. A case that found most CPUs busy with other work is marked in
the summary, so a ``slower`` on a loaded machine reads as such.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import psutil

#: Share of the CPUs other processes took above which a case is marked as run on a loaded machine.
LOADED_SHARE = 0.10


def _busy_seconds(times: Any) -> float:
    """Busy CPU seconds of a ``psutil.cpu_times()`` reading (idle and iowait are not busy)."""
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _own_seconds(process: psutil.Process) -> float:
    own = process.cpu_times()
    return own.user + own.system + own.children_user + own.children_system


@dataclasses.dataclass
class LoadMeter:
    """Measures the other processes' share of the CPUs between :meth:`start` and :meth:`stop`."""

    _wall: float = 0.0
    _busy: float = 0.0
    _own: float = 0.0

    def start(self) -> LoadMeter:
        self._process = psutil.Process()
        self._wall = time.perf_counter()
        self._busy = _busy_seconds(psutil.cpu_times())
        self._own = _own_seconds(self._process)
        return self

    def stop(self) -> float:
        """The share (0 to 1) of all logical CPUs' time that other processes used since ``start``.

        Returns
        -------
        float
            ``(busy CPU s - this process's CPU s) / (wall s * logical CPUs)``, clipped to [0, 1].
        """
        wall = time.perf_counter() - self._wall
        busy = _busy_seconds(psutil.cpu_times()) - self._busy
        own = _own_seconds(self._process) - self._own
        cpus = psutil.cpu_count(logical=True) or 1
        if wall <= 0:
            return 0.0
        return min(1.0, max(0.0, (busy - own) / (wall * cpus)))
