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
    meter = LoadMeter().start()
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:  # this process busy on one CPU for 0.5 s
        pass
    share = meter.stop()
    cpus = psutil.cpu_count(logical=True) or 1
    # whatever other processes do, our own CPU second is not in it: at most (cpus - 1) / cpus
    assert 0.0 <= share <= (cpus - 1) / cpus + 0.1  # CPU times tick in 10 ms steps
