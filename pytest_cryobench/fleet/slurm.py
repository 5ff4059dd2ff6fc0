"""SLURM, through its own commands only: ``sbatch --parsable``, ``squeue``, ``scontrol`` and, where
accounting is on, ``sacct``. No daemon, agent or transport of our own (see ``docs/design.md``).

Every command runs with a timeout; a missing command, a controller that does not answer or an
error SLURM prints becomes a :class:`SlurmError` that names the command and SLURM's own words.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from pytest_cryobench.errors import CryobenchError

TIMEOUT_S = 30.0
#: Node states (``scontrol show node``'s ``State``, its ``+``-joined flags) in which no job starts.
UNAVAILABLE = ("DOWN", "DRAIN", "FAIL", "NOT_RESPONDING", "FUTURE", "POWERED_DOWN", "MAINT", "REBOOT")


class SlurmError(CryobenchError):
    """A SLURM command is missing, timed out or failed."""


def command(argv: Sequence[str], *, timeout: float = TIMEOUT_S) -> str:
    """Run one SLURM command; its standard output.

    Raises
    ------
    SlurmError
        The command is not installed, did not finish within ``timeout`` seconds, or exited non-zero
        (the message carries its stderr).
    """
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]} not found: this machine is not a SLURM submit host "
                         "(or SLURM's commands are not on PATH)")
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{' '.join(argv)}: no answer within {timeout:.0f} s (is slurmctld up?)") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise SlurmError(f"{' '.join(argv)}: {said}")
    return done.stdout


def parse_fields(line: str) -> dict[str, str]:
    """``Key=Value`` pairs of one ``scontrol show ... -o`` line.

    A value may contain spaces (``Reason=test run [root@host]``): a word without ``=`` belongs to
    the value before it.

    >>> parse_fields("NodeName=n1 State=DOWN Reason=not now [root@x] Port=17001")["Reason"]
    'not now [root@x]'
    """
    fields: dict[str, str] = {}
    key = None
    for word in line.split(" "):
        if not word:
            continue
        name, eq, value = word.partition("=")
        if eq and name and " " not in name and (name[0].isalpha()):
            key = name
            fields[key] = value
        elif key is not None:
            fields[key] += " " + word
    return fields


def hostnames(expression: str) -> list[str]:
    """Expand a SLURM hostlist (``n[01-16],gpu7``) with the cluster's own ``scontrol show hostnames``."""
    return command(["scontrol", "show", "hostnames", expression]).split()


def partition_nodes(partition: str) -> list[str]:
    """The nodes of a partition, expanded.

    Raises
    ------
    SlurmError
        No such partition.
    """
    out = command(["scontrol", "show", "partition", partition, "-o"])
    nodes = parse_fields(out.strip().splitlines()[0]).get("Nodes", "") if out.strip() else ""
    if not nodes or nodes == "(null)":
        raise SlurmError(f"partition {partition} has no nodes")
    return hostnames(nodes)


def node_info(node: str) -> dict[str, str]:
    """``scontrol show node NODE -o`` as fields (``State``, ``Reason``, ``Gres``, ...)."""
    out = command(["scontrol", "show", "node", node, "-o"]).strip()
    return parse_fields(out.splitlines()[0]) if out else {}


def unavailable_reason(info: dict[str, str]) -> str | None:
    """Why no job would start on a node (``down: test``), or ``None`` when it can take jobs."""
    flags = info.get("State", "").upper().replace("*", "").split("+")
    bad = [flag for flag in flags if flag in UNAVAILABLE]
    if not bad:
        return None
    reason = info.get("Reason", "")
    state = "+".join(bad).lower()
    return f"{state}: {reason}" if reason and reason != "(null)" else state


def submit(script: str, options: Sequence[str]) -> str:
    """``sbatch --parsable OPTIONS`` with the batch script on stdin; the job id."""
    if shutil.which("sbatch") is None:
        raise SlurmError("sbatch not found: this machine is not a SLURM submit host")
    try:
        done = subprocess.run(["sbatch", "--parsable", *options], input=script, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"sbatch: no answer within {TIMEOUT_S:.0f} s (is slurmctld up?)") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise SlurmError(said if said.startswith("sbatch") else f"sbatch: {said}")
    # --parsable prints "jobid" or "jobid;cluster"
    return done.stdout.strip().split(";")[0]


def queue_states(job_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{job id: (state, reason)}`` of the given jobs that ``squeue`` still lists."""
    if not job_ids:
        return {}
    out = command(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%T|%R"])
    states = {}
    for line in out.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) == 3:
            states[parts[0]] = (parts[1], parts[2])
    return states


def job_info(job_id: str) -> dict[str, str] | None:
    """``scontrol show job ID -o`` as fields, or ``None`` once the controller has forgotten the job
    (it keeps ended jobs for ``MinJobAge`` seconds)."""
    try:
        out = command(["scontrol", "show", "job", job_id, "-o"]).strip()
    except SlurmError as exc:
        if "Invalid job id" in str(exc):
            return None
        raise
    return parse_fields(out.splitlines()[0]) if out else None


def accounting_on() -> bool:
    """Whether ``sacct`` has anything to say: ``AccountingStorageType`` is not ``none``."""
    out = command(["scontrol", "show", "config"])
    for line in out.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "AccountingStorageType":
            return "none" not in value.strip().lower()
    return False


def accounting_state(job_id: str) -> tuple[str, str] | None:
    """``(state, exit code)`` from ``sacct`` (only call where :func:`accounting_on`)."""
    out = command(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode"]).strip()
    if not out:
        return None
    state, _, code = out.splitlines()[0].partition("|")
    return state.split()[0], code
