"""When to look again at a run being cancelled: a poll schedule learned from settle times.

A run's *settle time* is how long it stays `cancelling` after its cancel was accepted. A
connection's recent settle times (a histogram shared by the fleet, `store.settling`) say
when a run is likely to have settled: the first look goes where a share `first_quantile`
of runs has settled, each next one where a share `next_quantile` of the runs still
unsettled has, never sooner than the server's hint allows, and the lifecycle puts the last
one on the deadline. So a connection whose runs settle in 0.3-1.5 s is looked at about
twice per run, not every 250 ms.

Settle times are *interval-censored*: a run seen `cancelling` at 0.5 s and `cancelled` at
0.75 s settled somewhere in (0.5, 0.75]. An observation spreads one unit of weight evenly
over the histogram's bins in that interval.

Weights decay with a half-life (`decay_weight`): an observation counts 2**(age/half-life)
less, so a connection whose settle times change is relearned within a few half-lives. The
histogram handed to the schedule is scaled so that an observation made now weighs 1; the
seed (`prior_weight` in the bin of the hint, or of today's first poll without a hint) then
weighs as much as that many fresh observations.

Everything here is pure: the clock is a parameter, and tests assert exact sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

BIN_S = 0.05  # a histogram bin: finer than any hint a server sends
BINS = 400  # 20 s of settle times; the last bin holds everything later
PRIOR_WEIGHT = 3.0  # the seed weighs as much as three fresh observations
HALF_LIFE_S = 300.0  # after 5 minutes an observation weighs half as much


def bin_of(settle_s: float, *, bin_s: float = BIN_S, bins: int = BINS) -> int:
    """The bin holding `settle_s`: bin i covers (i*bin_s, (i+1)*bin_s]; the last, the rest."""
    return min(max(0, math.ceil(settle_s / bin_s) - 1), bins - 1)


def spread(
    after_s: float, by_s: float, *, bin_s: float = BIN_S, bins: int = BINS
) -> dict[int, float]:
    """One observation of a run that settled in (after_s, by_s]: a weight per bin, summing
    to 1, proportional to the overlap of each bin with the interval."""
    after_s, by_s = max(0.0, after_s), max(0.0, by_s)
    if by_s <= after_s:
        return {bin_of(by_s, bin_s=bin_s, bins=bins): 1.0}
    first, last = bin_of(after_s, bin_s=bin_s, bins=bins), bin_of(by_s, bin_s=bin_s, bins=bins)
    if first == last:
        return {first: 1.0}
    width = by_s - after_s
    weights: dict[int, float] = {}
    for i in range(first, last + 1):
        low = max(after_s, i * bin_s)
        high = by_s if i == bins - 1 else min(by_s, (i + 1) * bin_s)
        if high > low:
            weights[i] = (high - low) / width
    return weights


def decay_weight(at_s: float, landmark_s: float, *, half_life_s: float = HALF_LIFE_S) -> float:
    """Forward decay: an observation at `at_s` is stored with this weight, so that relative
    to one at `landmark_s` it counts double per half-life it is younger. Divide by
    `decay_weight(now, landmark)` to weigh an observation made now as 1."""
    return float(2.0 ** ((at_s - landmark_s) / half_life_s))


@dataclass(frozen=True)
class SettleHistogram:
    """Decayed weights of settle times per bin (scaled so that a fresh observation is 1)."""

    weights: tuple[float, ...]
    bin_s: float = BIN_S

    @classmethod
    def empty(cls, *, bins: int = BINS, bin_s: float = BIN_S) -> SettleHistogram:
        return cls((0.0,) * bins, bin_s)

    @property
    def horizon_s(self) -> float:
        """Settle times up to here are told apart; the last bin holds all later ones."""
        return (len(self.weights) - 1) * self.bin_s

    def seeded(self, seed_s: float, weight: float = PRIOR_WEIGHT) -> SettleHistogram:
        """This histogram plus `weight` in the bin of `seed_s` (the prior)."""
        i = bin_of(seed_s, bin_s=self.bin_s, bins=len(self.weights))
        weights = list(self.weights)
        weights[i] += weight
        return SettleHistogram(tuple(weights), self.bin_s)

    def quantile_after(self, share: float, after_s: float) -> float | None:
        """The settle time by which `share` of the runs not settled by `after_s` have
        settled (the end of its bin), or None when the histogram cannot say: no weight
        after `after_s`, or the share reached only in the last (open-ended) bin."""
        bins = len(self.weights)
        start = bin_of(after_s, bin_s=self.bin_s, bins=bins)
        # The part of `after_s`'s own bin that lies after it still counts.
        start_end_s = (start + 1) * self.bin_s
        first_part = self.weights[start] * max(0.0, start_end_s - after_s) / self.bin_s
        total = first_part + sum(self.weights[start + 1 :])
        if total <= 0.0:
            return None
        wanted = share * total
        seen = first_part
        if seen >= wanted and start < bins - 1:
            return start_end_s
        for i in range(start + 1, bins - 1):
            seen += self.weights[i]
            if seen >= wanted:
                return (i + 1) * self.bin_s
        return None


@dataclass(frozen=True)
class LookPlan:
    """How the learned schedule places looks; the quantiles trade requests for latency."""

    first_quantile: float = 0.75  # higher: fewer second looks, later first ones
    next_quantile: float = 0.9
    min_gap_s: float = 0.25  # between two looks when the server sends no hint
    prior_weight: float = PRIOR_WEIGHT


def next_look_s(
    histogram: SettleHistogram,
    *,
    since_cancel_s: float,
    looks_done: int,
    hint_s: float | None,
    plan: LookPlan,
    unsettled_s: float = 0.0,
) -> float | None:
    """How long to sleep before the next look at a run whose cancel was accepted
    `since_cancel_s` ago and that was last known unsettled `unsettled_s` after it (0: not
    looked at yet; `looks_done` looks so far); None when the histogram cannot say (the
    caller keeps its own cadence).

    Never less than the server's hint (or `plan.min_gap_s` without one)."""
    floor_s = hint_s if hint_s is not None and hint_s > 0 else plan.min_gap_s
    share = plan.first_quantile if looks_done == 0 else plan.next_quantile
    settled_by_s = histogram.quantile_after(share, unsettled_s)
    if settled_by_s is None:
        return None
    return max(floor_s, settled_by_s - since_cancel_s)


class LearnedSchedule:
    """A `lifecycle.PollSchedule` from a shared histogram: one per provider connection and
    process, shared by its jobs.

    `snapshot()` returns the connection's current histogram (cached by the store) and
    `record(after_s, by_s)` adds one observation. The seed is the last hint the server
    sent (`seed_s` until one comes): until something is learned, the first look goes at
    the hint, as without a learned schedule.
    """

    def __init__(
        self,
        snapshot: Callable[[], SettleHistogram],
        record: Callable[[float, float], None],
        *,
        seed_s: float,
        plan: LookPlan | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._record = record
        self._seed_s = seed_s
        self.plan = plan or LookPlan()

    def sleep_s(
        self,
        *,
        since_cancel_s: float,
        looks_done: int,
        hint_s: float | None,
        unsettled_s: float = 0.0,
    ) -> float | None:
        if hint_s is not None and hint_s > 0:
            self._seed_s = hint_s
        histogram = self._snapshot().seeded(self._seed_s, self.plan.prior_weight)
        return next_look_s(
            histogram,
            since_cancel_s=since_cancel_s,
            looks_done=looks_done,
            hint_s=hint_s,
            plan=self.plan,
            unsettled_s=unsettled_s,
        )

    def settled(self, *, after_s: float, by_s: float) -> None:
        self._record(after_s, by_s)


def merge(weights: Sequence[float], increments: dict[int, float]) -> tuple[float, ...]:
    """`weights` plus `increments` (for fakes and tests: Redis adds them in the store)."""
    merged = list(weights)
    for i, w in increments.items():
        merged[i] += w
    return tuple(merged)
