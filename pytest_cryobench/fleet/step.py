"""What a fleet job runs on its node: ``python -m pytest_cryobench.fleet.step NODE_DIR -- COMMAND...``.

It writes ``NODE_DIR/step.json`` when the command starts (time, host, SLURM's node name and job
id, the GPUs SLURM gave) and again when it ends (time, exit status), runs the command with the
job's stdout and stderr, passes SIGTERM/SIGINT on to it (SLURM's time limit and ``scancel``), and
exits with its status. It imports nothing heavy: it starts before the benchmark does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pytest_cryobench.fleet.jobs import STEP_FILE, write_json


def run_step(node_dir: Path, argv: list[str]) -> int:
    """Run ``argv`` with start and end recorded in ``node_dir/step.json``; its exit status."""
    env = os.environ
    record = {"started_at": time.time(), "host": socket.gethostname(), "slurm_node": env.get("SLURMD_NODENAME"),
              "job_id": env.get("SLURM_JOB_ID"), "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
              "command": argv, "ended_at": None, "exit_code": None}
    write_json(node_dir / STEP_FILE, record)
    try:
        child = subprocess.Popen(argv)
    except OSError as exc:
        print(f"cryobench fleet: cannot start {argv[0]}: {exc.strerror}", file=sys.stderr)
        code = 127
    else:
        def forward(signum, _frame):
            child.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, forward)
        code = child.wait()
        if code < 0:  # killed by a signal: the shell's convention
            code = 128 - code
    record.update(ended_at=time.time(), exit_code=code)
    write_json(node_dir / STEP_FILE, record)
    return code


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m pytest_cryobench.fleet.step NODE_DIR -- COMMAND...", file=sys.stderr)
        return 2
    return run_step(Path(args[0]), args[2:])


if __name__ == "__main__":
    sys.exit(main())
