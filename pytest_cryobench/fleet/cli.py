"""``cryobench fleet run|status|report``: the fleet's subcommands, registered by
:func:`add_fleet_parser` into the ``cryobench`` parser."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _fail(command: str, exc: Exception) -> int:
    print(f"cryobench fleet {command}: {exc}", file=sys.stderr)
    return 2


def _status_table(jobs) -> list[str]:
    from pytest_cryobench.fleet.submit import describe_job
    from pytest_cryobench.record.text import align_rows

    rows = [("node", "job", "state", "start", "took", "exit", "why")]
    rows += [tuple(describe_job(job).values()) for job in jobs]
    return align_rows(rows)


def _fleet_run(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.fleet.submit import FleetRequest, progress_line, submit_fleet, wait

    pytest_args = list(args.pytest_args)
    if pytest_args and pytest_args[0] == "--":
        pytest_args = pytest_args[1:]
    request = FleetRequest(partition=args.partition, out=Path(args.out), pytest_args=pytest_args,
                           nodes=args.nodes, gres=args.gres, time_limit=args.time, wrap=args.wrap or "",
                           python=args.python or sys.executable, serial=args.serial)
    try:
        jobs = submit_fleet(request)
        out = request.out.resolve()
        if not args.wait:
            print(f"submitted; follow with `cryobench fleet status {out}`")
            return 0
        jobs = wait(out, poll_s=args.poll)
    except CryobenchError as exc:
        return _fail("run", exc)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; the jobs go on (see `cryobench fleet status {args.out}`)", file=sys.stderr)
        return 130
    print("\n".join(_status_table(jobs)))
    print(f"fleet: {progress_line(jobs)}; compare with `cryobench fleet report {out}`")
    return 0


def _fleet_status(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.fleet.submit import progress_line, refresh

    try:
        jobs = refresh(Path(args.dir))
    except CryobenchError as exc:
        return _fail("status", exc)
    print("\n".join(_status_table(jobs)))
    print(f"fleet: {progress_line(jobs)}")
    return 0


def _fleet_report(args: argparse.Namespace) -> int:
    from pytest_cryobench.errors import CryobenchError
    from pytest_cryobench.fleet.report import build_fleet_report, render_fleet_text, write_fleet_html

    try:
        report = build_fleet_report(Path(args.dir), tolerance=args.tolerance, detail=args.detail,
                                    baseline=Path(args.baseline) if args.baseline else None)
        print("\n".join(render_fleet_text(report)))
        if args.html:
            out = write_fleet_html(report, Path(args.html), args.title or f"Fleet {Path(args.dir).name}")
            print(f"\nwrote {out}")
    except CryobenchError as exc:
        return _fail("report", exc)
    except OSError as exc:
        return _fail("report", f"cannot write {args.html}: {exc.strerror}")
    return 1 if report.outliers or report.baseline_regressions else 0


def add_fleet_parser(sub, tolerance_arg) -> None:
    """Register ``fleet run|status|report`` under the ``cryobench`` subparsers ``sub``.

    ``tolerance_arg`` parses ``--tolerance`` as ``cryobench compare`` does.
    """
    fleet = sub.add_parser("fleet", help="benchmark every node of a SLURM cluster and name the slow one",
                           description="One job per node through SLURM's own commands (sbatch, squeue, "
                                       "scontrol), results on shared storage under <out>/<node>/, compared "
                                       "node with node.")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)

    run = fleet_sub.add_parser("run", help="submit one benchmark job per node (sbatch --nodelist NODE --exclusive)")
    run.add_argument("--partition", "-p", required=True, help="the SLURM partition")
    run.add_argument("--nodes", "-w", metavar="HOSTLIST",
                     help="nodes to benchmark, a SLURM hostlist such as n[01-16] (default: the whole partition)")
    run.add_argument("--gres", help="generic resources per job, e.g. gpu:4 (SLURM sets CUDA_VISIBLE_DEVICES)")
    run.add_argument("--time", metavar="HH:MM:SS", help="time limit per job")
    run.add_argument("--wrap", metavar="'CMD ARGS'",
                     help="words put before the job's python, e.g. 'apptainer exec cryobench.sif' or "
                          "'numactl --cpunodebind=0' (split like a shell does)")
    run.add_argument("--python", help="the interpreter the jobs run (default: this one, seen on shared storage)")
    run.add_argument("--serial", action="store_true",
                     help="one node at a time (SLURM singleton dependency): for cases on shared storage, "
                          "which jobs at once would measure against each other")
    run.add_argument("--out", required=True, metavar="DIR", help="a new directory on storage every node sees")
    run.add_argument("--wait", action="store_true", help="wait for every job, showing done/running/pending")
    run.add_argument("--poll", type=float, default=5.0, metavar="S", help="seconds between looks with --wait")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER,
                     help="pytest arguments for every node after '--', e.g. -- --cryobench-profile=standard -m fs")
    run.set_defaults(func=_fleet_run)

    status = fleet_sub.add_parser("status", help="which node is pending, running, done or failed")
    status.add_argument("dir", metavar="DIR", help="the --out of `fleet run`")
    status.set_defaults(func=_fleet_status)

    report = fleet_sub.add_parser("report", help="one column per node, outliers named (exit 1 when one is)")
    report.add_argument("dir", metavar="DIR", help="the --out of `fleet run`")
    report.add_argument("--html", metavar="OUT.html", help="also write the self-contained HTML report")
    report.add_argument("--title", help="the HTML page's title (default: Fleet DIR)")
    report.add_argument("--baseline", metavar="DIR",
                        help="an earlier fleet run: each node is also compared with its own column there")
    report.add_argument("--tolerance", type=tolerance_arg, metavar="RATIO",
                        help="allowed slowdown ratio (default: each test's own, else 1.25)")
    report.add_argument("--detail", action="store_true", help="expand each test's sub-timings with their tags")
    report.set_defaults(func=_fleet_report)
