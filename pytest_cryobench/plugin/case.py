"""What a benchmark case uses to time itself and record figures and checks.

A suite's test function receives a :class:`Case` (fixture ``cryobench_case``), runs its timed
region through :meth:`Case.measure` (pytest-benchmark's ``pedantic`` underneath), which keeps
every round's samples, then declares its headline (:meth:`Case.headline`), the amounts its rates
are made of (:meth:`Case.amounts`) and the rates (:meth:`Case.rates`), and adds known-answer
checks. Figures are derived from these by :mod:`pytest_cryobench.record.derive`. The plugin
turns the record into verdicts after the call and fails the case on a failed check or a
``slower`` verdict.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from pytest_cryobench.errors import CryobenchWarning  # also importable from here, where it used to live
from pytest_cryobench.measure import pagecache
from pytest_cryobench.measure.gpu_memory import MemoryWatch
from pytest_cryobench.measure.load import LoadMeter
from pytest_cryobench.measure.rounds import FIXED, RoundAction, RoundsPolicy
from pytest_cryobench.measure.timing import SubTimings
from pytest_cryobench.record import derive
from pytest_cryobench.record.model import CaseRecord
from pytest_cryobench.record.verdicts import finite_or_none


class Case:
    """One benchmark case being measured.

    Parameters
    ----------
    record : CaseRecord
        Where figures go.
    drop_caches : {"fadvise", "sysctl", "none"}
        How cold rounds evict their files.
    rounds : int or None
        ``--cryobench-rounds``: a fixed count (``None``: adaptive, see ``policy``).
    policy : RoundsPolicy, optional
        The profile's adaptive rounds (``measure.rounds.PROFILE_ROUNDS``); each case's own
        ``rounds`` is its minimum.
    backend : Backend, optional
        The case's array backend (GPU cases): its device is synchronised before every clock
        read, and the high-water mark of its device memory in use is recorded
        (:mod:`pytest_cryobench.measure.gpu_memory`).
    """

    def __init__(self, record: CaseRecord, *, drop_caches: str = "fadvise", rounds: int | None = None,
                 backend: Any = None, policy: RoundsPolicy | None = None) -> None:
        self.record = record
        self.drop_caches = drop_caches
        self.rounds_override = rounds
        self.policy = policy
        self.backend = backend
        # Every clock read waits for the case's device first (a no-op on the CPU).
        self.subtimings = SubTimings(backend.synchronize if backend is not None else (lambda: None))
        if backend is not None:
            record.info["device"] = backend.label
            record.info["backend"] = backend.name
        self.benchmark: Any = None
        self._failed_checks: list[str] = []

    @property
    def name(self) -> str:
        return self.record.test

    @property
    def stats(self) -> dict[str, Any]:
        """Round statistics of the total (seconds), derived from the samples ({} before any)."""
        return derive.total_stats(self.record) or {}

    def measure(self, benchmark: Any, target: Callable[[SubTimings], Any], *,
                rounds: int = 3, warmup_rounds: int = 0,
                setup: Callable[[], None] | None = None,
                cold_files: Callable[[], Sequence[Any]] | None = None) -> dict[str, Any]:
        """Time ``target`` over rounds with pytest-benchmark and record the statistics.

        Parameters
        ----------
        benchmark : pytest-benchmark fixture
        target : callable
            Called as ``target(subtimings)`` once per round; may record spans.
        rounds : int
            Timed rounds (``--cryobench-rounds`` overrides).
        warmup_rounds : int
            Untimed rounds first (compute kernels; never for cold IO).
        setup : callable, optional
            Untimed work before every round (e.g. remove the previous round's copy).
        cold_files : callable, optional
            Returns the files to evict from the page cache before every round; their residency
            afterwards is recorded, and a round that found them resident marks the case warm.

        Returns
        -------
        dict
            Round statistics of the total time (seconds).
        """
        policy = self._policy(rounds)
        self.benchmark = benchmark
        times: list[float] = []
        residencies: list[pagecache.Residency] = []
        st = self.subtimings
        setups = 0
        started: list[float] = []  # wall clock of the first timed round's setup
        action: list[RoundAction] = []

        def round_setup() -> None:
            nonlocal setups
            setups += 1
            timed_so_far = setups - 1 - warmup_rounds
            if timed_so_far >= 0:
                if not started:
                    started.append(time.perf_counter())
                else:
                    action[:] = [policy.next_action(times[-timed_so_far:], time.perf_counter() - started[0])]
                    if not action[0].more:
                        raise _EnoughRounds
            if setup is not None:
                setup()
            if cold_files is not None:
                residencies.append(pagecache.drop_and_measure(list(cold_files()), self.drop_caches))

        def timed() -> None:
            st.start_round()
            start = st.now()
            target(st)
            times.append(st.now() - start)

        load = LoadMeter().start()
        memory = MemoryWatch(self.backend).start()  # device memory high-water mark of this case
        try:
            benchmark.pedantic(timed, setup=round_setup, rounds=policy.max_rounds, warmup_rounds=warmup_rounds,
                               iterations=1)
        except _EnoughRounds:
            pass  # pytest-benchmark keeps the rounds it timed; the policy said they are enough
        self.record.info.update(memory.stop())
        other_load = load.stop()
        kept = max(0, len(times) - warmup_rounds)
        if kept and (not action or action[0].more):  # pedantic ran every round it was given
            action = [policy.next_action(times[-kept:], time.perf_counter() - started[0])]
        times = times[-kept:]
        st.rounds = st.rounds[-kept:]
        names = list(dict.fromkeys(name for rnd in st.rounds for name in rnd))  # a span missing in a round: 0
        self.record.samples = {**{name: [rnd.get(name, 0.0) for rnd in st.rounds] for name in names},
                               "total": [float(t) for t in times]}
        stopped = action[0] if action else RoundAction(False, FIXED, kept, math.inf)
        self.record.info["rounds"] = {
            "count": kept, "stopped": stopped.reason, "precision": finite_or_none(stopped.precision),
            "min": policy.min_rounds, "max": policy.max_rounds, "target_precision": policy.target_precision,
            "budget_s": finite_or_none(policy.budget_s)}
        self.record.info["other_load"] = round(other_load, 4)
        self.record.tags = {name: list(tags) for name, tags in st.tags.items()}
        if cold_files is not None:
            self._record_residency(residencies[-kept:])
        return self.stats

    def _policy(self, rounds: int) -> RoundsPolicy:
        """The rounds of this measurement: fixed by ``--cryobench-rounds``; else the profile's
        adaptive policy with the case's own ``rounds`` as its minimum (a case whose rounds are long
        then costs what it did with a fixed count); without a policy, exactly ``rounds``."""
        if self.rounds_override:
            return RoundsPolicy(1, self.rounds_override).forced(self.rounds_override)
        if self.policy is None:
            return RoundsPolicy(1, rounds).forced(rounds)
        return dataclasses.replace(self.policy, min_rounds=min(rounds, self.policy.max_rounds),
                                   max_rounds=max(rounds, self.policy.max_rounds))

    def _record_residency(self, residencies: list[pagecache.Residency]) -> None:
        self.record.residency = [round(r.fraction, 4) for r in residencies]
        if residencies and not all(r.measured for r in residencies):
            self.record.info["residency_measured"] = False
        warm = [r for r in residencies if r.warm]
        if warm:
            self.record.warm = True
            worst = max(r.fraction for r in warm)
            message = (f"{self.name}: {len(warm)} of {len(residencies)} cold round(s) found up to "
                       f"{worst:.0%} of the files still in the page cache (--cryobench-drop-caches "
                       f"{self.drop_caches}); the figure is not a cold-read figure")
            self.record.info["warm_warning"] = message
            warnings.warn(CryobenchWarning(message), stacklevel=2)

    def headline(self, name: str, per: str | None = None) -> None:
        """Declare the case's headline figure: the total time of a round in seconds, divided by
        ``amounts[per]`` when given (``per="movies"``: seconds per movie)."""
        self.record.headline = {"name": name, "per": per}

    def amounts(self, **amounts: float) -> None:
        """Record what the rates are made of (``bytes=...``, ``particles=...``), per round."""
        self.record.amounts.update({key: float(value) for key, value in amounts.items()})

    def rates(self, *names: str) -> None:
        """Declare rates named ``<quantity>_per_s`` (``mb_per_s``, ``particles_per_s``): each
        round's amount over its total time; the amount must be recorded (:meth:`amounts`)."""
        for name in names:
            amount, _, _ = derive.rate_unit(name)
            if amount not in self.record.amounts:
                raise ValueError(f"rate {name} needs the amount {amount!r}: record it with case.amounts()")
            if name not in self.record.rates:
                self.record.rates.append(name)

    def metric(self, name: str, value: float, unit: str, better: str = "lower") -> None:
        """Record a figure measured otherwise than by the rounds' clock (a requirement's value),
        compared with references (``better``: ``"lower"`` or ``"higher"``)."""
        if better not in ("lower", "higher"):
            raise ValueError(f"better must be 'lower' or 'higher', not {better!r}")
        self.record.values[name] = {"value": float(value), "unit": unit, "better": better}

    def check(self, name: str, passed: bool, message: str = "", **figures: Any) -> None:
        """Record a known-answer check; a failed one fails the case whatever its speed."""
        passed = bool(passed)
        checks = self.record.checks
        checks["passed"] = checks.get("passed", True) and passed
        checks[f"{name}_passed"] = passed
        checks.update({f"{name}_{key}" if key != name else key: value for key, value in figures.items()})
        if not passed:
            self._failed_checks.append(f"{name}: {message}" if message else name)

    def info(self, **values: Any) -> None:
        self.record.info.update(values)

    @property
    def failed_checks(self) -> list[str]:
        return list(self._failed_checks)


CASE_KEY = pytest.StashKey[Case]()
"""Where a test's :class:`Case` is kept in ``item.stash``."""


class _EnoughRounds(BaseException):
    """Raised from pytest-benchmark's per-round setup to end ``pedantic`` once the rounds policy
    says stop. A ``BaseException``, so that pedantic does not mark the benchmark as errored: the
    rounds it timed stay in its statistics."""

