"""The other processes' share of the CPUs while a case runs (``measure.load``)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from pytest_cryobench.measure.load import LOADED_SHARE, LoadMeter


def test_a_busy_other_process_is_seen():
    """One other process spinning on one CPU takes about 1/ncpu of the machine."""
    cpus = psutil.cpu_count(logical=True) or 1
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        meter = LoadMeter().start()
        time.sleep(1.0)  # this process idles: what is busy is the others
        share = meter.stop()
    finally:
        spinner.kill()
        spinner.wait()
    assert share >= 0.6 / cpus and share > LOADED_SHARE / 2


def test_own_work_is_not_counted_as_load():
    """Whatever other processes do, the CPU time this process spends is not in the share: it is at
    most what the machine had left after ours (on a loaded machine our loop may not get a whole CPU,
    so the bound uses the CPU time it really got)."""
    process = psutil.Process()
    own_before = sum(process.cpu_times()[:2])
    wall = time.perf_counter()
    meter = LoadMeter().start()
    end = time.perf_counter() + 1.0
    while time.perf_counter() < end:  # this process busy on one CPU for 1 s (long beside the 10 ms ticks)
        pass
    share = meter.stop()
    wall = time.perf_counter() - wall
    own = sum(process.cpu_times()[:2]) - own_before
    cpus = psutil.cpu_count(logical=True) or 1
    assert own > 0.1  # the loop did run
    assert 0.0 <= share <= 1.0 - own / (wall * cpus) + 0.05  # CPU times tick in 10 ms steps
