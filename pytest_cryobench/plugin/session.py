"""State of one benchmark run: settings, comparisons, records, work dirs, files written."""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_cryobench import __version__
from pytest_cryobench.measure.backend import BackendPlan, GpuInventory, plan_backend, query_gpus
from pytest_cryobench.plugin.claims import Claim, claim_run_id, claim_work_dir
from pytest_cryobench.plugin.settings import Settings
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.references import Comparison

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DATA_SEED = 20231

@dataclasses.dataclass
class RunState:
    """Everything one ``pytest --cryobench`` session accumulates.

    Attributes
    ----------
    settings : Settings
    run_id : str
        Prefix of the result files.
    comparisons : list of Comparison
        References (in the order given), then the baseline.
    records : list of CaseRecord
        One per case that ran or could not run, in run order.
    work_dirs : list of Path
        Directories this run created for generated files; removed at the end unless
        ``--cryobench-keep-data``.
    written : list of Path
        Result files written.
    requirements_not_asked : int
        Requirement cases left out because ``-m requirements`` was not given.
    """

    settings: Settings
    run_id: str
    command: str
    started_at: float = dataclasses.field(default_factory=time.time)
    comparisons: list[Comparison] = dataclasses.field(default_factory=list)
    records: list[CaseRecord] = dataclasses.field(default_factory=list)
    work_dirs: list[Path] = dataclasses.field(default_factory=list)
    written: list[Path] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    requirements_not_asked: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    claims: list[Claim] = dataclasses.field(default_factory=list)
    _inventory: GpuInventory | None = None
    _plan: BackendPlan | None = None

    @property
    def inventory(self) -> GpuInventory:
        if self._inventory is None:
            self._inventory = query_gpus()
        return self._inventory

    @property
    def backend_plan(self) -> BackendPlan:
        """Where GPU cases run; decided on first use (CuPy is imported only then)."""
        if self._plan is None:
            self._plan = plan_backend(self.settings.backend, self.settings.gpus, self.inventory)
            if self._plan.inventory is not None:  # CuPy's numbering, matched by bus id, goes on record
                self._inventory = self._plan.inventory
        return self._plan

    @property
    def decided_plan(self) -> BackendPlan | None:
        """The backend plan if a GPU case has asked for it, else ``None`` (nothing is probed)."""
        return self._plan

    @property
    def backend_name(self) -> str:
        if self._plan is not None:
            return self._plan.backend or "none"
        return "numpy" if self.settings.backend == "numpy" else "none"

    @property
    def data_source(self) -> str:
        return "synthetic" if self.settings.data is None else "cryosparc"

    @property
    def eer_context(self) -> dict[str, Any]:
        """What the EER decode figures depend on: fractions, super-resolution, the rate's basis."""
        from pytest_cryobench.profiles import get_profile

        s = self.settings
        fractions = s.eer_fractions or get_profile(s.profile).eer.fractions
        return {"fractions": int(fractions), "superres": int(s.eer_superres), "rate_of": "compressed input"}

    def context(self) -> dict[str, Any]:
        return {"profile": self.settings.profile, "backend": self.backend_name, "data": self.data_source,
                "eer": self.eer_context}

    def work_dir(self, base: Path) -> Path:
        """A fresh directory ``<base>/cryobench-<run-id>`` owned by this run (its lock held until
        :meth:`release`); dirs that killed runs left in ``base`` are removed first, and said."""
        path = base / f"cryobench-{self.run_id}"
        if path not in self.work_dirs:
            path, claim, removed = claim_work_dir(base, self.run_id)
            self.claims.append(claim)
            self.warnings.extend(removed)
            self.work_dirs.append(path)
        return path

    def release(self) -> None:
        """Drop this run's locks (run id, work dirs) at its end."""
        for claim in reversed(self.claims):
            claim.release()
        self.claims.clear()


def new_run_id(output: Path, requested: str | None) -> tuple[str, Claim | None, list[str]]:
    """The run id, held for this run in ``output``; and warnings about it.

    The default is ``cbYYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... appended when taken), unique among
    the output dir's result files and the runs going now (two runs started in the same second
    get different ids). A requested id that a running run holds is refused; one whose result
    files are already in ``output`` is used with a warning naming those files.

    Returns
    -------
    run_id, claim, warnings
        ``claim`` is ``None`` when ``output`` cannot hold the lock file (it is then checked when
        results are written).

    Raises
    ------
    ValueError
        An id with other characters, or one that a run going now holds.
    """
    if requested is not None:
        if not _RUN_ID.match(requested):
            raise ValueError(f"--cryobench-run-id {requested!r}: use letters, digits, '.', '_' and '-'")
        claim = _claim(output, requested)
        if isinstance(claim, str):
            raise ValueError(f"--cryobench-run-id {requested}: a run with this id is going in {output} ({claim}); "
                             "choose another id")
        earlier = sorted(p.name for p in output.glob(f"{requested}_*_benchmark_data.*")) if output.is_dir() else []
        warnings = [f"--cryobench-run-id {requested} was used before in {output}: this run replaces the files "
                    f"of the groups it runs, and any other group's ({', '.join(earlier)}) stays from the earlier "
                    "run; choose a new id to keep runs apart"] if earlier else []
        return requested, claim, warnings
    base = time.strftime("cb%Y%m%d-%H%M%S")
    run_id, n = base, 1
    while True:
        if not (output.is_dir() and any(output.glob(f"{run_id}_*"))):
            claim = _claim(output, run_id)
            if not isinstance(claim, str):
                return run_id, claim, []
        n += 1
        run_id = f"{base}-{n}"


def _claim(output: Path, run_id: str) -> Claim | str | None:
    try:
        return claim_run_id(output, run_id)
    except OSError:
        return None


def command_line() -> str:
    """How this process was started, for the record (``pytest --cryobench ...``)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("pytest", "py.test", "__main__.py")):
        argv[0] = "pytest"
    return shlex.join(argv)


def build_test_info(state: RunState, instance_information: dict[str, Any]) -> dict[str, Any]:
    """``test_info`` of the result files (``docs/design.md``, the result record)."""
    s = state.settings
    plan = state.decided_plan
    gpu = plan.devices[0] if plan is not None and plan.devices else None
    return {
        "cryobench_version": __version__,
        "created_at": state.started_at,
        "finished_at": time.time(),
        "interrupted": state.interrupted,
        "command": state.command,
        "profile": s.profile,
        "backend": state.backend_name,
        "data": state.data_source,
        "data_seed": DATA_SEED,
        "eer": state.eer_context,
        "instance_information": instance_information,
        "job_params": {
            "benchmark_data_dir": str(s.data) if s.data else None,
            "gpu_num_gpus": len(plan.devices) if plan is not None else 0,
            "send_data": False,
            "test_random": True,
            "test_sequential": True,
            "use_all_gpus": s.gpus == "all",
            "use_ssd": s.use_ssd,
            "profile": s.profile,
            "backend": s.backend,
            "rounds": s.rounds,
            "drop_caches": s.drop_caches,
            "project_dir": str(s.project_dir),
            "cache_dir": str(s.cache_dir) if s.cache_dir else None,
        },
        "gpu_name": gpu.name if gpu else None,
        "gpu_bus_id": gpu.bus_id if gpu else None,
    }


RUN_KEY = pytest.StashKey[RunState]()
"""Where the run's :class:`RunState` is kept in ``config.stash``."""
