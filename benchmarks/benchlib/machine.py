"""What machine a figure was measured on: CPU, memory, kernel, filesystem and tool versions."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil

from pytest_cryobench.measure.machine import cpu_model


def run_text(argv: Sequence[str]) -> str | None:
    """Stdout of a command, stripped, or None when it cannot run."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def filesystem_description(path: Path) -> str:
    """``findmnt -T`` of ``path``: source, type, mount point and options."""
    text = run_text(["findmnt", "-T", str(path), "-n", "-o", "SOURCE,FSTYPE,TARGET,OPTIONS"])
    return " ".join(text.split()) if text else "unknown (findmnt failed)"


def fio_version(fio: str | None) -> str | None:
    """``fio --version``, or None without fio."""
    return run_text([fio, "--version"]) if fio else None


def machine_info(directory: Path, fio: str | None) -> dict[str, object]:
    """CPU, core count, memory, kernel, filesystem of ``directory`` and the fio version."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / (1 << 30), 1),
        "kernel": platform.release(),
        "filesystem": filesystem_description(directory),
        "fio": fio_version(fio) or "not installed",
        "cp": (run_text(["cp", "--version"]) or "unknown").splitlines()[0],
        "python": platform.python_version(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def print_machine_info(info: dict[str, object], key_width: int) -> None:
    """``machine:`` and one indented ``key value`` line per entry, keys padded to ``key_width``."""
    print("machine:")
    for key, value in info.items():
        print(f"  {key:<{key_width}} {value}")
