"""``cryobench fleet run`` and ``status``: one SLURM job per node, and where each one stands.

Each job is submitted with ``sbatch --parsable`` to exactly one node (``--nodelist``, ``-N 1``,
``--exclusive``) and runs, through :mod:`pytest_cryobench.fleet.step`::

    [--wrap words] PYTHON -m pytest --cryobench PYTEST_ARGS... --cryobench-output=<out>/<node>

Nodes that take no jobs when the fleet is submitted (down, drained, not responding) get no job:
their record says so. See :mod:`pytest_cryobench.fleet.jobs` for the files.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_cryobench import __version__
from pytest_cryobench.fleet import slurm
from pytest_cryobench.fleet.jobs import (
    FLEET_FILE,
    FLEET_KIND,
    FLEET_VERSION,
    JOB_FILE,
    NOT_SUBMITTED,
    STEP_FILE,
    FleetError,
    JobRecord,
    read_fleet,
    read_job,
    read_json_file,
    resolve_state,
    settled,
    write_json,
)

OUTPUT_OPTION = "--cryobench-output"


@dataclasses.dataclass(frozen=True)
class FleetRequest:
    """What ``cryobench fleet run`` was asked for.

    Attributes
    ----------
    partition : str
    nodes : str or None
        A SLURM hostlist (``n[01-16]``); ``None``: every node of the partition.
    gres, time_limit : str or None
        Passed to ``sbatch --gres`` / ``--time``.
    wrap : str
        Words put before the job's Python (``apptainer exec cryobench.sif``), split like a shell does.
    python : str
        The interpreter the job runs (default: this one, which the nodes see on shared storage).
    serial : bool
        One node at a time (SLURM's ``--dependency=singleton`` on one job name): for cases on shared
        storage, which jobs running at once would measure against each other.
    pytest_args : list of str
    """

    partition: str
    out: Path
    pytest_args: list[str]
    nodes: str | None = None
    gres: str | None = None
    time_limit: str | None = None
    wrap: str = ""
    python: str = sys.executable
    serial: bool = False


def job_command(request: FleetRequest, node_dir: Path) -> list[str]:
    """The argv a node's job runs: the step runner around ``[wrap] python -m pytest --cryobench ...``."""
    bench = [*shlex.split(request.wrap), request.python, "-m", "pytest", "--cryobench", *request.pytest_args,
             f"{OUTPUT_OPTION}={node_dir}"]
    return [sys.executable, "-m", "pytest_cryobench.fleet.step", str(node_dir), "--", *bench]


def sbatch_options(request: FleetRequest, node: str, job_name: str, stdout: Path, stderr: Path) -> list[str]:
    options = ["--partition", request.partition, "--nodelist", node, "--nodes", "1", "--exclusive",
               "--job-name", job_name, "--output", str(stdout), "--error", str(stderr)]
    if request.gres:
        options += ["--gres", request.gres]
    if request.time_limit:
        options += ["--time", request.time_limit]
    if request.serial:
        options += ["--dependency", "singleton"]
    return options


def check_request(request: FleetRequest) -> None:
    """Refuse what would mix runs or lose results.

    Raises
    ------
    FleetError
        ``--cryobench-output`` among the pytest arguments (each node writes to ``<out>/<node>``),
        or ``out`` already holds a fleet run.
    """
    if any(arg == OUTPUT_OPTION or arg.startswith(OUTPUT_OPTION + "=") for arg in request.pytest_args):
        raise FleetError(f"{OUTPUT_OPTION} is set by the fleet (each node writes to <out>/<node>); leave it out")
    if (request.out / FLEET_FILE).exists():
        raise FleetError(f"{request.out} already holds a fleet run; choose a new --out "
                         "(earlier runs stay there for `fleet report --baseline`)")


def submit_fleet(request: FleetRequest, say: Callable[[str], None] = print) -> list[JobRecord]:
    """Submit one job per node; writes ``fleet.json`` and every node's ``job.json``.

    Raises
    ------
    FleetError, SlurmError
        A bad request, an unknown partition or hostlist, or no node took a job (each node's
        reason is in the message). A node that takes no job while others do is recorded as
        ``NOT_SUBMITTED`` with its reason.
    """
    check_request(request)
    out = request.out.resolve()
    nodes = slurm.hostnames(request.nodes) if request.nodes else slurm.partition_nodes(request.partition)
    if not nodes:
        raise FleetError(f"--nodes {request.nodes}: no nodes")
    fleet = {"kind": FLEET_KIND, "version": FLEET_VERSION, "created_at": time.time(),
             "cryobench_version": __version__, "scheduler": "slurm", "partition": request.partition,
             "nodes": nodes, "node_list": request.nodes, "gres": request.gres, "time_limit": request.time_limit,
             "wrap": request.wrap, "python": request.python, "serial": request.serial,
             "pytest_args": list(request.pytest_args), "command": shlex.join(sys.argv)}
    write_json(out / FLEET_FILE, fleet)
    job_name = f"cryobench-fleet-{int(fleet['created_at'])}"
    jobs = []
    for node in nodes:
        node_dir = out / node
        node_dir.mkdir(parents=True, exist_ok=True)
        command = job_command(request, node_dir)
        job = _submit_one(request, node, node_dir, job_name, command)
        say(f"{node}: job {job.job_id}" if job.job_id else f"{node}: not submitted: {job.reason}")
        write_json(node_dir / JOB_FILE, job.to_json())
        jobs.append(job)
    if not any(job.job_id for job in jobs):
        (out / FLEET_FILE).unlink()  # nothing runs: the same --out can be used again
        raise FleetError("no job was submitted: " + "; ".join(f"{job.node}: {job.reason}" for job in jobs))
    return jobs


def _submit_one(request: FleetRequest, node: str, node_dir: Path, job_name: str, command: list[str]) -> JobRecord:
    """One node's job, or a record of why it has none (the node takes no jobs; sbatch refused it)."""
    try:
        down = slurm.unavailable_reason(slurm.node_info(node))
    except slurm.SlurmError as exc:
        return JobRecord(node, None, NOT_SUBMITTED, reason=f"unknown to SLURM: {exc}", command=command)
    if down:
        return JobRecord(node, None, NOT_SUBMITTED, reason=f"node {node} is {down}", command=command)
    stdout, stderr = node_dir / "job-%j.out", node_dir / "job-%j.err"
    script = "#!/bin/bash\nexec " + shlex.join(command) + "\n"
    try:
        job_id = slurm.submit(script, sbatch_options(request, node, job_name, stdout, stderr))
    except slurm.SlurmError as exc:
        return JobRecord(node, None, NOT_SUBMITTED, reason=f"sbatch refused it: {exc}", command=command)
    return JobRecord(node, job_id, "PENDING", submitted_at=time.time(), command=command,
                     stdout=str(stdout).replace("%j", job_id), stderr=str(stderr).replace("%j", job_id))


def refresh(out: Path, *, ask_slurm: bool = True) -> list[JobRecord]:
    """Every node's job record brought up to date (and written back), in the fleet's node order.

    ``ask_slurm=False`` (or SLURM not answering, e.g. on a machine that reads the results of
    another cluster) uses what is on shared storage only.
    """
    fleet = read_fleet(out)
    jobs = [read_job(out, node) for node in fleet["nodes"]]
    live = [job for job in jobs if job.job_id and not job.terminal]
    states: dict[str, tuple[str, str]] = {}
    down: dict[str, str | None] = {}
    if ask_slurm and live:
        try:
            states = slurm.queue_states([job.job_id for job in live])
            accounting = None
            for job in live:
                if job.job_id not in states:
                    info = slurm.job_info(job.job_id)
                    if info is not None:
                        states[job.job_id] = (info.get("JobState", "UNKNOWN"), info.get("Reason", ""))
                        continue
                    accounting = slurm.accounting_on() if accounting is None else accounting
                    ended = slurm.accounting_state(job.job_id) if accounting else None
                    if ended is not None:  # forgotten by the controller, kept by accounting
                        states[job.job_id] = (ended[0], f"exit code {ended[1]}")
                if states.get(job.job_id, ("",))[0] == "PENDING":
                    down[job.node] = slurm.unavailable_reason(slurm.node_info(job.node))
        except slurm.SlurmError as exc:
            print(f"cryobench fleet: SLURM not asked ({exc}); states from the job records only", file=sys.stderr)
            ask_slurm = False
    updated = []
    for job in jobs:
        if job.job_id is None:
            updated.append(job)
            continue
        step = read_json_file(out / job.node / STEP_FILE)
        known = states.get(job.job_id) if ask_slurm else (job.state, job.reason or "")
        new = resolve_state(job, step, known, down.get(job.node))
        if new != job:
            write_json(out / job.node / JOB_FILE, new.to_json())
        updated.append(new)
    return updated


def progress_class(job: JobRecord) -> str:
    """``done`` (including pytest's exit status 1: cases failed, results written), ``running``,
    ``pending`` or ``could not run``."""
    if job.state == "COMPLETED" or (job.state == "FAILED" and job.exit_code == 1):
        return "done"
    if job.state in ("RUNNING", "COMPLETING", "CONFIGURING"):
        return "running"
    if job.state == "PENDING" and not settled(job):
        return "pending"
    return "could not run"


def progress_line(jobs: Sequence[JobRecord]) -> str:
    tally = Counter(progress_class(job) for job in jobs)
    return ", ".join(f"{tally[key]} {key}" for key in ("done", "running", "pending", "could not run"))


def wait(out: Path, poll_s: float = 2.0, say: Callable[[str], None] = print) -> list[JobRecord]:
    """Poll until every job has settled (see :func:`pytest_cryobench.fleet.jobs.settled`), saying
    each change of the done/running/pending counts."""
    last = None
    while True:
        jobs = refresh(out)
        line = progress_line(jobs)
        if line != last:
            say(f"fleet: {line}")
            last = line
        if all(settled(job) for job in jobs):
            return jobs
        time.sleep(poll_s)


def describe_job(job: JobRecord) -> dict[str, Any]:
    """One row of ``fleet status``: node, job, state, times, exit status and why."""
    def clock(t: float | None) -> str:
        return time.strftime("%H:%M:%S", time.localtime(t)) if t else "-"

    took = f"{job.ended_at - job.started_at:.0f} s" if job.started_at and job.ended_at else "-"
    return {"node": job.node, "job": job.job_id or "-", "state": job.state.lower().replace("_", " "),
            "start": clock(job.started_at), "took": took,
            "exit": "-" if job.exit_code is None else str(job.exit_code), "why": job.reason or ""}
