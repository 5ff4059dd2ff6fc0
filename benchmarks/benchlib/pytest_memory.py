"""Peak memory of a ``pytest --cryobench -m fs`` run (``fs_speed.py --memory``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

MIB = 1 << 20
MEMORY_LIMIT_BYTES = 2 << 30
MEMORY_POLL_S = 0.1


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and all its descendants, bytes (processes gone meanwhile count 0)."""
    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def read_pytest_rates(output_dir: Path) -> dict[str, float]:
    """The MB/s figures that the pytest run itself reported (its schema-2 result JSON), derived from
    each case's samples by the package's own derivation (``record.derive.figures``)."""
    from pytest_cryobench.record.derive import figures
    from pytest_cryobench.record.migrate import update_to_2
    from pytest_cryobench.record.model import records_of

    rates: dict[str, float] = {}
    for path in output_dir.glob("*_fs_*.json"):
        for record in records_of(update_to_2(json.loads(path.read_text()))):
            if record.outcome != "passed":
                continue
            for name, figure in figures(record).items():
                if figure.unit == "MB/s":
                    rates[f"{record.test}.{name}"] = figure.value
    return rates


def peak_memory(profile: str, workdir: Path) -> dict[str, object]:
    """Peak memory of ``pytest --cryobench -m fs`` for ``profile``, run from an empty directory.

    The process tree's summed RSS is sampled every 0.1 s with psutil (children included);
    ``ru_maxrss`` from ``wait4`` (the largest single process) is reported alongside.
    """
    cwd = workdir / "pytest-cwd"
    cwd.mkdir()
    output, data = workdir / "pytest-out", workdir / "pytest-data"
    argv = [sys.executable, "-m", "pytest", "--cryobench", "--cryobench-profile", profile, "-m", "fs",
            "-p", "no:cacheprovider", "--cryobench-output", str(output),
            "--cryobench-data-dir", str(data), "-q"]
    log_path = workdir / "pytest.log"
    print(f"\nmemory run: {' '.join(argv)}", flush=True)
    peak = 0
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        while True:
            pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(proc))
            time.sleep(MEMORY_POLL_S)
    child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    tail = log_path.read_text(errors="replace").splitlines()[-25:]
    largest = rusage.ru_maxrss * 1024  # Linux reports KiB
    # Sampling can miss a short spike that ru_maxrss (exact, one process) catches: judge the larger.
    judged = max(peak, largest)
    result = {"command": argv, "exit_code": child.returncode, "wall_s": elapsed,
              "peak_tree_rss_mib": peak / MIB, "ru_maxrss_mib": largest / MIB, "peak_mib": judged / MIB,
              "limit_mib": MEMORY_LIMIT_BYTES / MIB, "passed": judged < MEMORY_LIMIT_BYTES,
              "pytest_rates_mb_per_s": read_pytest_rates(output), "log_tail": tail}
    shutil.rmtree(data, ignore_errors=True)
    return result


def print_memory(mem: dict[str, object]) -> None:
    """The peak, how it was found, the verdict, the run's own rates (and its output when it failed)."""
    verdict = "PASS" if mem["passed"] else "FAIL"
    print(f"\npeak memory of the pytest fs run: {mem['peak_mib']:.0f} MiB (process tree RSS summed, sampled "
          f"every {MEMORY_POLL_S} s: {mem['peak_tree_rss_mib']:.0f} MiB; largest single process ru_maxrss: "
          f"{mem['ru_maxrss_mib']:.0f} MiB), limit {mem['limit_mib']:.0f} MiB: {verdict}; "
          f"exit code {mem['exit_code']}, {mem['wall_s']:.0f} s")
    for name, value in mem["pytest_rates_mb_per_s"].items():
        print(f"  reported by the run: {name} = {value:.1f} MB/s")
    if mem["exit_code"] != 0:
        print("  pytest output (tail):\n    " + "\n    ".join(mem["log_tail"]))
