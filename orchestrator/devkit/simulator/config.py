"""The simulator's knobs: one validated object, changed at runtime through `PATCH /_sim/config`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SettleShape(StrEnum):
    """How long a cancelled run stays `cancelling`: the distribution of its settle time."""

    UNIFORM = "uniform"  # uniform in [cancel_settle_min_s, cancel_settle_max_s]
    FIXED = "fixed"  # always cancel_settle_min_s
    LOGNORMAL = "lognormal"  # median cancel_settle_median_s, 99th percentile cancel_settle_p99_s


class SimulatorConfig(BaseModel):
    """How the simulated Assistants API behaves.

    Every probability is in [0, 1] and every duration is non-negative; the cancel settle
    range must be ordered. Unknown knobs are refused so that a typo never goes unnoticed.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    api_key: str = Field(default="sim-key", min_length=1)
    """The bearer token every API request must carry."""
    latency_ms: float = Field(default=0.0, ge=0.0, le=60_000.0)
    """Added to every API response, before anything else is decided."""
    error_5xx_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of API requests answered with a random 500, 502 or 503."""
    rate_429_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of API requests answered with 429 `rate_limit_exceeded`."""
    retry_after_s: float = Field(default=1.0, gt=0.0, le=3600.0)
    """What those random 429s ask the client to wait."""
    rate_limit_rps: float | None = Field(default=None, gt=0.0)
    """A token bucket over all API requests (burst = one second's worth); None = unlimited."""
    rate_limit_delay: bool = True
    """Whether the bucket's 429s say how long to wait; False: a bare 429, no retry-after."""
    cancel_settle_min_s: float = Field(default=0.3, ge=0.0)
    cancel_settle_max_s: float = Field(default=1.5, ge=0.0)
    """A cancelled run leaves `cancelling` after a uniform random delay in this range."""
    cancel_settle_shape: SettleShape = SettleShape.UNIFORM
    """The settle time's distribution (the range above is for `uniform` and `fixed`)."""
    cancel_settle_median_s: float = Field(default=1.0, gt=0.0)
    cancel_settle_p99_s: float = Field(default=20.0, gt=0.0)
    """For `lognormal`: its median and 99th percentile (a long tail)."""
    run_duration_s: float | None = Field(default=None, ge=0.0)
    """Runs created through the API complete on their own this long after they start;
    None = never (they stay `in_progress` until cancelled)."""
    queued_s: float = Field(default=0.0, ge=0.0)
    """How long a run created through the API stays `queued` before `in_progress`."""
    poll_after_ms: int | None = Field(default=None, ge=0)
    """If set, run responses carry the `openai-poll-after-ms` header the SDK's poller reads."""
    seed: int | None = None
    """Seed of the one random source (ids, settle delays, injected errors); None = random."""

    @model_validator(mode="after")
    def _settle_range_is_ordered(self) -> SimulatorConfig:
        if self.cancel_settle_max_s < self.cancel_settle_min_s:
            raise ValueError("cancel_settle_max_s must be >= cancel_settle_min_s")
        if self.cancel_settle_p99_s < self.cancel_settle_median_s:
            raise ValueError("cancel_settle_p99_s must be >= cancel_settle_median_s")
        return self
