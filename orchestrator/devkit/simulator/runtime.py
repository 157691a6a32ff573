"""One simulator's mutable whole: its config, its runs, its rate limiter and its random source.

The HTTP layers (`server`, `admin`) share one `Runtime`; only the event loop's thread touches
it, so it needs no lock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from orchestrator.devkit.simulator.config import SimulatorConfig
from orchestrator.devkit.simulator.ratelimit import TokenBucket
from orchestrator.devkit.simulator.state import State


class Runtime:
    """Config, state, rate limiter and random source, changed together."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(config.seed)
        self.state = State(config, clock=clock, wall_clock=wall_clock, rng=self.rng)
        self.config = config
        self.bucket: TokenBucket | None = None
        self._apply(config, reseed=False)

    def update_config(self, changes: dict[str, Any]) -> SimulatorConfig:
        """Merge `changes` into the config; raises pydantic's ValidationError when the
        result is invalid, leaving the old config in force."""
        merged = SimulatorConfig.model_validate({**self.config.model_dump(), **changes})
        self._apply(merged, reseed="seed" in changes)
        return merged

    def reset(self, config: SimulatorConfig | None = None) -> None:
        """Forget all runs and traffic; start over with `config` if given. The random
        source restarts from the seed, so a seeded simulator replays identically."""
        self.state.reset()
        self._apply(config or self.config, reseed=True)

    def _apply(self, config: SimulatorConfig, *, reseed: bool) -> None:
        previous = self.config
        self.config = config
        self.state.config = config
        if reseed:
            self.rng.seed(config.seed)
        rps = config.rate_limit_rps
        if rps is None:
            self.bucket = None
        elif self.bucket is None or previous.rate_limit_rps != rps:
            self.bucket = TokenBucket(rps, self.clock)
