"""How many rounds a case runs: until its median is known well enough, within bounds.

Pure logic, no clock of its own: the caller times each round, hands over the samples so far and
the seconds spent, and asks :meth:`RoundsPolicy.next_action` whether to run another. The reasons
for the numbers below are in ``docs/design.md``; in short:

* the verdict's interval (``record.significance``) is distribution-free from 5 rounds a side at
  99% (``1 / C(10, 5) = 1/252 < 0.005``); with 3 it rests on a log-normal assumption and is wide,
  so 3 rounds decide only large changes on quiet machines;
* the interval of one median (what ``precision`` measures) is distribution-free from 6 rounds at
  95% (``[min, max]`` covers the median with probability ``1 - 2**(1-n)``: 96.9% at 6, 93.8% at 5)
  and from 8 at 99% (99.2%); at 15 rounds the 95% interval is ``[x(4), x(12)]``, no longer the
  extremes, so one outlier no longer sets it.

IO cases need cold rounds, each a whole pass over the file set: their bounds count such passes,
and the budget is in seconds of those passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from pytest_cryobench.measure.spread import check_confidence, precision

# Why a case stops (``more`` False) or goes on (``more`` True).
PRECISE, BUDGET, MAX_ROUNDS, FIXED = "precise", "budget", "max_rounds", "fixed"
BELOW_MIN, IMPRECISE = "min_rounds", "imprecise"
STOP_REASONS = (PRECISE, BUDGET, MAX_ROUNDS, FIXED)


@dataclasses.dataclass(frozen=True)
class RoundAction:
    """What to do after the rounds so far.

    Attributes
    ----------
    more : bool
        Run another round.
    reason : str
        Stopping: ``precise``, ``budget``, ``max_rounds`` or ``fixed``; going on: ``min_rounds``,
        ``imprecise`` or ``fixed``.
    rounds : int
        Rounds timed so far.
    precision : float
        Relative half-width of the interval of the median so far (``inf`` below 2 rounds).
    """

    more: bool
    reason: str
    rounds: int
    precision: float


@dataclasses.dataclass(frozen=True)
class RoundsPolicy:
    """Adaptive rounds: between ``min_rounds`` and ``max_rounds``, until precise or out of time.

    Attributes
    ----------
    min_rounds, max_rounds : int
        Bounds on the timed rounds (``1 <= min_rounds <= max_rounds``).
    target_precision : float
        Stop once the interval of the median is this narrow, relative (0.03: +-3%).
    confidence : float
        Level of that interval (0.95).
    budget_s : float
        Seconds a case may spend on its timed rounds (set-up aside); once past ``min_rounds``, no
        round starts that would be expected to end beyond it.
    fixed : int or None
        A count forced by ``--cryobench-rounds``: exactly that many rounds, nothing adaptive.
    """

    min_rounds: int
    max_rounds: int
    target_precision: float = 0.03
    confidence: float = 0.95
    budget_s: float = math.inf
    fixed: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError(f"rounds: need 1 <= min_rounds <= max_rounds, got {self.min_rounds}, "
                             f"{self.max_rounds}")
        if not self.target_precision > 0:
            raise ValueError(f"target_precision must be > 0, got {self.target_precision!r}")
        if not self.budget_s > 0:
            raise ValueError(f"budget_s must be > 0 seconds, got {self.budget_s!r}")
        check_confidence(self.confidence)
        if self.fixed is not None and self.fixed < 1:
            raise ValueError(f"a fixed round count must be >= 1, got {self.fixed!r}")

    def forced(self, rounds: int) -> RoundsPolicy:
        """This policy with its count fixed (what ``--cryobench-rounds N`` does)."""
        return dataclasses.replace(self, fixed=rounds)

    def next_action(self, samples: Sequence[float], elapsed_s: float) -> RoundAction:
        """Whether to time another round.

        Parameters
        ----------
        samples : sequence of float, shape (n,)
            The metric of each round so far (seconds, or a rate): finite and > 0.
        elapsed_s : float
            Seconds spent on those rounds, including any per-round set-up (dropping caches), so
            that ``elapsed_s / n`` predicts the next round's cost.

        Returns
        -------
        RoundAction
        """
        n = len(samples)
        spread = precision(samples, self.confidence) if n else math.inf
        if self.fixed is not None:
            return RoundAction(n < self.fixed, FIXED, n, spread)
        if n < self.min_rounds:
            return RoundAction(True, BELOW_MIN, n, spread)
        if spread <= self.target_precision:
            return RoundAction(False, PRECISE, n, spread)
        if n >= self.max_rounds:
            return RoundAction(False, MAX_ROUNDS, n, spread)
        if elapsed_s + elapsed_s / n > self.budget_s:
            return RoundAction(False, BUDGET, n, spread)
        return RoundAction(True, IMPRECISE, n, spread)


# Per profile: smoke checks that everything runs (3 rounds suffice to catch gross changes, 5 at
# most); standard reaches the distribution-free intervals (5+ a side) and, on a noisy case, 12
# rounds; full allows 20 for the most precise figures. Budgets bound the cost of noisy cases
# (seconds of timed rounds with their set-up) so that a default run takes about what it took with
# fixed rounds: a case whose own minimum already spends the budget stops there.
PROFILE_ROUNDS = {
    "smoke": RoundsPolicy(min_rounds=3, max_rounds=5, target_precision=0.05, budget_s=5.0),
    "standard": RoundsPolicy(min_rounds=5, max_rounds=12, target_precision=0.03, budget_s=10.0),
    "full": RoundsPolicy(min_rounds=5, max_rounds=20, target_precision=0.03, budget_s=120.0),
}
