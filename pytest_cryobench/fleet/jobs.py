"""The job model of a fleet run, kept on shared storage beside the results (see ``docs/design.md``).

Layout of a fleet directory ``<out>``::

    <out>/fleet.json                  the fleet run: nodes, partition, options, pytest arguments
    <out>/<node>/job.json             the node's job record (written on the submit host)
    <out>/<node>/step.json            what the job itself saw: start, end, exit code (written on the node)
    <out>/<node>/job-<id>.out|.err    the job's stdout and stderr
    <out>/<node>/<run-id>_<group>_benchmark_data.json|.csv   its result files, as any run writes them

The submit host writes ``job.json`` (at submission, and again whenever ``status``, ``report`` or
``--wait`` look at the job); the node writes ``step.json``. Neither writes the other's file, so
the two never race. A job's state comes from both and from SLURM (:func:`resolve_state`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_cryobench.errors import CryobenchError
from pytest_cryobench.measure.fsutil import atomic_write

FLEET_KIND = "cryobench-fleet"
JOB_KIND = "cryobench-fleet-job"
FLEET_VERSION = 1
FLEET_FILE = "fleet.json"
JOB_FILE = "job.json"
STEP_FILE = "step.json"

NOT_SUBMITTED = "NOT_SUBMITTED"  # the node could not take a job when the fleet was submitted
UNKNOWN = "UNKNOWN"
LIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"})
#: States a job does not leave (SLURM's own names, plus ours).
TERMINAL = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                      "BOOT_FAIL", "DEADLINE", NOT_SUBMITTED})


class FleetError(CryobenchError):
    """A fleet directory is missing, damaged, or not a fleet run's."""


@dataclasses.dataclass
class JobRecord:
    """One node's job.

    Attributes
    ----------
    node : str
        The SLURM node name.
    job_id : str or None
        SLURM's job id; ``None`` when not submitted.
    state : str
        SLURM's state name (``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``, ``TIMEOUT``, ...),
        or ``NOT_SUBMITTED`` / ``UNKNOWN``.
    reason : str or None
        Why it waits, failed or was not submitted, in words.
    submitted_at, started_at, ended_at : float or None
        Unix times (s).
    exit_code : int or None
        The job's command's exit status (128 + signal when killed by one).
    stdout, stderr : str
        Paths of the job's output files.
    command : list of str
        What the job runs.
    """

    node: str
    job_id: str | None
    state: str
    reason: str | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    command: list[str] = dataclasses.field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        return {"kind": JOB_KIND, "version": FLEET_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> JobRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` atomically (readers on other nodes see the old file or the new, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        json.dump(doc, handle, indent=2)
        handle.write("\n")


def read_json_file(path: Path) -> dict[str, Any] | None:
    """A JSON object, or ``None`` when the file is absent or not (yet) a complete object."""
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def read_fleet(out: Path) -> dict[str, Any]:
    """The fleet record of ``out``.

    Raises
    ------
    FleetError
        ``out`` holds no fleet run.
    """
    doc = read_json_file(out / FLEET_FILE)
    if doc is None or doc.get("kind") != FLEET_KIND:
        raise FleetError(f"{out} is not a fleet run's directory (no {FLEET_FILE}; made by `cryobench fleet run`)")
    return doc


def read_job(out: Path, node: str) -> JobRecord:
    doc = read_json_file(out / node / JOB_FILE)
    if doc is None:
        return JobRecord(node, None, UNKNOWN, reason=f"no job record {out / node / JOB_FILE}")
    return JobRecord.from_json(doc)


def resolve_state(job: JobRecord, step: Mapping[str, Any] | None, slurm_state: tuple[str, str] | None,
                  node_down: str | None = None) -> JobRecord:
    """A job's record brought up to date from what its step wrote and what SLURM says.

    Parameters
    ----------
    job : JobRecord
        The record as last written.
    step : dict or None
        The node's ``step.json`` (``started_at``, ``ended_at``, ``exit_code``), if any.
    slurm_state : (state, reason) or None
        SLURM's view (``squeue``/``scontrol show job``); ``None`` when it no longer knows the job.
    node_down : str or None
        Why the job's node takes no jobs now (``down: test``), if it does not.

    Returns
    -------
    JobRecord
        A new record. The step's own end wins over SLURM's view of a live job (the record is on
        shared storage before SLURM has noticed); a SLURM end state without a step end (timeout,
        cancel, node failure, a job that died before its step ran) is taken as is.
    """
    new = dataclasses.replace(job)
    if job.state == NOT_SUBMITTED:
        return new
    step = step or {}
    new.started_at = step.get("started_at", job.started_at)
    if step.get("ended_at") is not None:
        new.ended_at, new.exit_code = step["ended_at"], step.get("exit_code")
        new.state = "COMPLETED" if new.exit_code == 0 else "FAILED"
        new.reason = None if new.exit_code == 0 else f"exit status {new.exit_code}; see {job.stderr}"
        if slurm_state is not None and slurm_state[0] in ("TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY"):
            new.state = slurm_state[0]  # the step ended because SLURM ended it
            new.reason = f"{slurm_state[0].lower().replace('_', ' ')}; see {job.stderr}"
        return new
    if slurm_state is not None:
        state, reason = slurm_state
        new.state = state
        new.reason = reason if reason and reason not in ("None", "(null)") else None
        if state in ("COMPLETED", "FAILED"):  # SLURM says it ended, the step never said so
            new.state = "FAILED"
            new.reason = f"the job ended before its command finished (SLURM: {state}); see {job.stderr}"
        elif state in TERMINAL:
            new.reason = f"{state.lower().replace('_', ' ')}; see {job.stderr}"
        elif state == "PENDING" and node_down:
            new.reason = f"node {job.node} is {node_down}"
        return new
    if not job.terminal:  # SLURM has forgotten it and it never said it ended
        new.state = UNKNOWN
        new.reason = ("the job started but left no end record (killed with its node?)" if new.started_at
                      else "SLURM no longer knows this job and it never started")
    return new


def settled(job: JobRecord) -> bool:
    """Nothing more will happen without someone acting: ended, unknown, or waiting on a node that
    takes no jobs."""
    if job.terminal or job.state == UNKNOWN:
        return True
    return job.state == "PENDING" and bool(job.reason) and job.reason.startswith(f"node {job.node} is ")
