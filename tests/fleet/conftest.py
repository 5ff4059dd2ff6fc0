"""A real SLURM on this machine for the fleet tests: ``.ci/slurm-up.sh`` (munge, slurmctld and
four ``slurmd -N nX`` on localhost). The cluster is started once per session and stopped at its
end when this session started it. Where it cannot start (not root, no packages) the tests that
need it skip with the script's reason; with ``CI=true`` they fail instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_UP = REPO / ".ci" / "slurm-up.sh"
NODES = ["n1", "n2", "n3", "n4"]


@pytest.fixture(scope="session")
def slurm_cluster():
    """``SLURM_CONF`` of a running local cluster (set in ``os.environ`` for the session)."""
    env = dict(os.environ)  # one cluster per machine: the script's own directory and ports
    up = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, env=env, timeout=120)
    if up.returncode != 0:
        why = (up.stderr.strip().splitlines() or [f"exit status {up.returncode}"])[-1]
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: the local SLURM must start: {why}")
        pytest.skip(f"no local SLURM: {why}")
    conf = up.stdout.strip().splitlines()[-1].split("=", 1)[1]
    started = "already up" not in up.stderr
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    yield conf
    if saved is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = saved
    if started:
        subprocess.run(["bash", str(SLURM_UP), "--down"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def fleet_data(slurm_cluster, tmp_path_factory) -> Path:
    """The smoke profile's movies, generated once before any node is timed (the first node of a
    fleet would otherwise generate them, and be timed with a busy page cache)."""
    data = tmp_path_factory.mktemp("fleet-data")
    subprocess.run([sys.executable, "-m", "pytest_cryobench.cli", "data", "generate", "--profile", "smoke",
                    "--data-dir", str(data)], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return data
