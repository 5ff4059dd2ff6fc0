"""Real slowdowns made by the kernel: a CPU quota and a block-device read throttle for a child
process, through cgroup v1 (``cpu.cfs_quota_us``, ``blkio.throttle.read_bps_device``) or cgroup v2
(``cpu.max``, ``io.max``), whichever this machine mounts."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class ThrottleError(RuntimeError):
    """The limits cannot be set here (not root, no such controller)."""


def block_device_of(path: Path) -> str:
    """``major:minor`` of the whole disk holding ``path`` (a partition's parent disk: throttles apply
    to disks)."""
    dev = os.stat(path).st_dev
    number = f"{os.major(dev)}:{os.minor(dev)}"
    sys_dev = Path("/sys/dev/block") / number
    if (sys_dev / "partition").exists():
        number = (sys_dev.resolve().parent / "dev").read_text().strip()
    if not sys_dev.exists():
        raise ThrottleError(f"{path} is not on a block device ({number}): a read throttle cannot slow it")
    return number


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise ThrottleError(f"cannot write {text!r} to {path}: {exc.strerror}") from None


@contextlib.contextmanager
def throttled(cpu_cores: float, read_mb_per_s: float, path: Path, name: str = "cryobench-slow") -> Iterator[list[Path]]:
    """Cgroups limiting CPU to ``cpu_cores`` and reads from ``path``'s disk to ``read_mb_per_s``.

    Yields
    ------
    list of Path
        The ``cgroup.procs`` files a child process writes its pid into to come under the limits.
    """
    if os.geteuid() != 0:
        raise ThrottleError("cgroup limits need root")
    device = block_device_of(path)
    quota = max(1000, int(cpu_cores * PERIOD_US))
    bps = int(read_mb_per_s * 1e6)
    made: list[Path] = []
    try:
        if (ROOT / "cgroup.controllers").exists():  # cgroup v2: one hierarchy
            group = ROOT / name
            group.mkdir(exist_ok=True)
            made.append(group)
            _write(ROOT / "cgroup.subtree_control", "+cpu +io")
            _write(group / "cpu.max", f"{quota} {PERIOD_US}")
            _write(group / "io.max", f"{device} rbps={bps}")
            procs = [group / "cgroup.procs"]
        else:  # cgroup v1: one hierarchy per controller
            if not (ROOT / "cpu").is_dir() or not (ROOT / "blkio").is_dir():
                raise ThrottleError(f"no cgroup v1 cpu and blkio controllers under {ROOT}")
            cpu, blkio = ROOT / "cpu" / name, ROOT / "blkio" / name
            for group in (cpu, blkio):
                group.mkdir(exist_ok=True)
                made.append(group)
            _write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(quota))
            _write(blkio / "blkio.throttle.read_bps_device", f"{device} {bps}")
            procs = [cpu / "cgroup.procs", blkio / "cgroup.procs"]
        yield procs
    finally:
        for group in reversed(made):
            with contextlib.suppress(OSError):
                group.rmdir()  # empty once the throttled processes have ended
