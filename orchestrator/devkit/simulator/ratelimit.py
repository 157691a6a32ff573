"""A token bucket over all API requests, reporting what OpenAI's rate-limit headers report."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Admission:
    """One request's verdict: `wait_s` is 0 when admitted, else the time until a token."""

    wait_s: float
    limit: int
    remaining: int
    reset_s: float

    @property
    def admitted(self) -> bool:
        return self.wait_s == 0.0

    def headers(self) -> dict[str, str]:
        """The `x-ratelimit-*-requests` headers, `reset` formatted like OpenAI's (`12ms`)."""
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": format_duration(self.reset_s),
        }


class TokenBucket:
    """`rate_per_s` tokens a second, holding at most one second's worth (at least one).

    Time comes from the injected `clock` (seconds); each `admit` is O(1).
    """

    def __init__(self, rate_per_s: float, clock: Callable[[], float]) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = max(1.0, rate_per_s)
        self._clock = clock
        self._tokens = self.capacity
        self._updated_s = clock()

    def admit(self) -> Admission:
        """Take a token if there is one; either way, say how the bucket stands."""
        now = self._clock()
        elapsed_s = max(0.0, now - self._updated_s)
        self._tokens = min(self.capacity, self._tokens + elapsed_s * self.rate_per_s)
        self._updated_s = now
        wait_s = 0.0
        if self._tokens >= 1.0:
            self._tokens -= 1.0
        else:
            wait_s = (1.0 - self._tokens) / self.rate_per_s
        return Admission(
            wait_s=wait_s,
            limit=int(self.capacity),
            remaining=int(self._tokens),
            reset_s=(self.capacity - self._tokens) / self.rate_per_s,
        )


def format_duration(seconds: float) -> str:
    """`0.012` -> `12ms`, `1.5` -> `1.5s`, `0` -> `0s`: the style of OpenAI's reset headers."""
    if seconds <= 0:
        return "0s"
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    return f"{round(seconds, 3):g}s"
