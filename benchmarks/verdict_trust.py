"""Do the verdicts deserve trust on this machine? False alarms when nothing changed, and real
slowdowns caught when the kernel makes the machine slower.

1. ``--unchanged N`` runs of ``pytest --cryobench -m "fs or cpu"`` (standard profile by default)
   on the machine as it is, each judged against the previous run as ``--cryobench-baseline``:
   every ``slower`` among them is a false alarm, every ``inconclusive`` an undecided verdict.
2. One more run with the machine made slower by the kernel, not by editing any file: the pytest
   process is put into a cgroup-v1 CPU quota (``cpu.cfs_quota_us``; ``cpu.max`` on cgroup v2) and a
   block-device read throttle (``blkio.throttle.read_bps_device``; ``io.max`` on v2), judged
   against the last unchanged run. Each case's real slowdown is the ratio of its medians; every
   case the throttle slowed by ``--slowed`` (2x) or more must come out ``slower``.

Targets (the 2-core CI VM, standard profile): no false ``slower`` in at least 4 unchanged
comparisons, at most a quarter of their verdicts undecided, every really slowed case found.
Exit status 0 when all targets are met, 1 otherwise, 2 when the throttle cannot be set up (not
root, no cgroup controllers).

Usage::

    python3 benchmarks/verdict_trust.py [--profile standard] [--unchanged 5] [--cpu-quota 0.5]
        [--read-mbps 0] [--dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib.cgroups import ThrottleError, throttled
from benchlib.machine import load_average, machine_info, print_machine_info

MARKER = "fs or cpu"


def run_pytest(args: argparse.Namespace, out: Path, run_id: str, baseline: Path | None,
               cgroup_procs: list[Path] = ()) -> tuple[dict, float]:
    """One ``pytest --cryobench`` run; returns ``{(group, test): case object}`` and its wall seconds."""
    cmd = [sys.executable, "-m", "pytest", "--cryobench", f"--cryobench-profile={args.profile}", "-m", MARKER,
           f"--cryobench-output={out}", f"--cryobench-run-id={run_id}", "--cryobench-no-fail",
           "-p", "no:cacheprovider", "-q", "-p", "no:randomly"]
    if args.data_dir:
        cmd.append(f"--cryobench-data-dir={args.data_dir}")
    if baseline is not None:
        cmd.append(f"--cryobench-baseline={baseline}")

    def join_cgroups() -> None:  # in the child, before exec: the limits apply to pytest and its threads
        for procs in cgroup_procs:
            procs.write_text(str(os.getpid()))

    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=out.parent, capture_output=True, text=True,
                          preexec_fn=join_cgroups if cgroup_procs else None)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"pytest exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return written_cases(out, run_id), seconds


def verdicts(cases: dict) -> dict[tuple[str, str], dict]:
    """The one verdict of each case (against the baseline of its run)."""
    return {key: next(iter(case["verdicts"].values())) for key, case in cases.items() if case.get("verdicts")}


def median_total(case: dict) -> float | None:
    total = case.get("samples", {}).get("total")
    return statistics.median(total) if total else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="standard", choices=["smoke", "standard", "full"])
    parser.add_argument("--unchanged", type=int, default=5, help="unchanged runs (comparisons: one fewer)")
    parser.add_argument("--cpu-quota", type=float, default=0.5,
                        help="CPU quota of the slowed run, in cores (0.5: half a core)")
    parser.add_argument("--read-mbps", type=float, default=0.0,
                        help="read throttle of the slowed run, MB/s (0: half the slowest cold read rate measured)")
    parser.add_argument("--slowed", type=float, default=2.0, help="a real slowdown this large must be caught")
    parser.add_argument("--dir", type=Path, default=None, help="where to work (default: a temp dir)")
    parser.add_argument("--data-dir", type=Path, default=None, help="--cryobench-data-dir (default: pytest's)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.unchanged < 2:
        parser.error("--unchanged needs at least 2 runs (one comparison)")
    work = Path(tempfile.mkdtemp(prefix="cryobench-trust-", dir=args.dir))
    out = work / "results"
    out.mkdir()
    info = machine_info(args.data_dir or out, None)
    info.pop("fio"), info.pop("cp")
    print_machine_info({**info, "load average": load_average()}, 14)
    print(f"profile {args.profile}, -m \"{MARKER}\", {args.unchanged} unchanged runs, then one slowed run; "
          f"work dir {work}\n")

    runs, previous = [], None
    false_slower = undecided = judged = 0
    for i in range(args.unchanged):
        run_id = f"unchanged{i}"
        cases, seconds = run_pytest(args, out, run_id, previous)
        found = verdicts(cases)
        slower = sorted(f"{g}/{t}" for (g, t), v in found.items() if v["verdict"] == "slower")
        unsure = sorted(f"{g}/{t}" for (g, t), v in found.items() if v["verdict"] == "inconclusive")
        if previous is not None:
            false_slower += len(slower)
            undecided += len(unsure)
            judged += len(found)
        print(f"{run_id}: {seconds:6.1f} s, {len(cases)} cases"
              + ("" if previous is None else f"; vs previous: {len(slower)} slower {slower or ''}, "
                 f"{len(unsure)} inconclusive {unsure or ''}"))
        runs.append({"run_id": run_id, "seconds": seconds, "slower": slower, "inconclusive": unsure})
        previous = next(out.glob(f"{run_id}_*_benchmark_data.json"))
    comparisons = args.unchanged - 1
    print(f"\nunchanged: {false_slower} false slower and {undecided} inconclusive in {judged} verdicts "
          f"({comparisons} comparisons)")

    last = written_cases(out, f"unchanged{args.unchanged - 1}")
    rates = [f["value"] for f in _cold_read_rates(last)]
    read_mbps = args.read_mbps or (min(rates) / 2 if rates else 100.0)
    try:
        with throttled(cpu_cores=args.cpu_quota, read_mb_per_s=read_mbps, path=args.data_dir or out) as procs:
            print(f"\nslowed run: CPU quota {args.cpu_quota:g} core(s), reads throttled to {read_mbps:.0f} MB/s "
                  f"({', '.join(str(p.parent) for p in procs)})")
            cases, seconds = run_pytest(args, out, "slowed", previous, procs)
    except ThrottleError as exc:
        print(f"cannot slow the machine down: {exc}")
        return 2
    found = verdicts(cases)
    missed, caught = [], []
    print(f"slowed: {seconds:.1f} s")
    print(f"  {'case':32s} {'real slowdown':>13s}  verdict")
    for key, case in sorted(cases.items()):
        before, after = median_total(last.get(key, {})), median_total(case)
        real = after / before if before and after else None
        verdict = found.get(key, {})
        shown = verdict.get("detail", verdict.get("verdict", "-"))
        print(f"  {key[0] + '/' + key[1]:32s} {real and f'{real:12.2f}x' or '-':>13s}  {verdict.get('verdict', '-')}: "
              f"{shown[:110]}")
        if real is not None and real >= args.slowed:
            (caught if verdict.get("verdict") == "slower" else missed).append(f"{key[0]}/{key[1]}")
    print(f"\nreally slowed by {args.slowed:g}x or more: {len(caught) + len(missed)}; found slower: {len(caught)}; "
          f"missed: {missed or 'none'}")
    ok = comparisons >= 4 and false_slower == 0 and undecided <= judged / 4 and not missed
    print("targets (>= 4 unchanged comparisons, 0 false slower, <= 1/4 undecided, every 2x slowdown caught): "
          + ("MET" if ok else "NOT MET"))
    if args.json:
        args.json.write_text(json.dumps({"profile": args.profile, "unchanged": runs, "false_slower": false_slower,
                                         "undecided": undecided, "judged": judged, "read_mbps": read_mbps,
                                         "cpu_quota": args.cpu_quota, "caught": caught, "missed": missed,
                                         "targets_met": ok}, indent=2))
    return 0 if ok else 1


def written_cases(out: Path, run_id: str) -> dict:
    """The cases of a run already written (``{(group, test): case}``)."""
    cases = {}
    for path in sorted(out.glob(f"{run_id}_*_benchmark_data.json")):
        doc = json.loads(path.read_text())
        cases.update({(doc["type"], test): case for test, case in doc["tests"].items()})
    return cases


def _cold_read_rates(cases: dict) -> list[dict]:
    """MB/s of the cold-read cases of a run, derived by the package from their samples."""
    from pytest_cryobench.record.derive import figures
    from pytest_cryobench.record.model import CaseRecord

    out = []
    for (group, test), case in cases.items():
        if group != "fs" or case.get("outcome") != "passed":
            continue
        figure = figures(CaseRecord.from_json(group, test, case)).get("mb_per_s")
        if figure is not None:
            out.append({"case": test, "value": figure.value})
    return out


if __name__ == "__main__":
    sys.exit(main())
