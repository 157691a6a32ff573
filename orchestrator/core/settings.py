"""One Settings object, read from the environment. Every duration names its unit.

The provider's variables are the official SDK's own (`OPENAI_API_KEY`, `OPENAI_BASE_URL`,
`OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`), so an environment that already works with the SDK
works here; everything of ours is `RUNCTL_*`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.core.models import MAX_DEADLINE_S, MIN_DEADLINE_S

_CLEAN_KEY = re.compile(r"[!-~]+")  # printable ASCII, no space: what a header value can carry


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting must never print the key or the Redis password.
    model_config = SettingsConfigDict(
        env_prefix="RUNCTL_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    # --- the provider (never put on the queue) -------------------------------------------
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "RUNCTL_API_KEY")
    )
    base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("OPENAI_BASE_URL", "RUNCTL_BASE_URL"),
    )
    org_id: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_ORG_ID", "RUNCTL_ORG_ID")
    )
    project_id: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_PROJECT_ID", "RUNCTL_PROJECT_ID")
    )

    # runctl.toml: the named connections (`[providers.<name>]`) and the policy rules.
    config_file: str = Field(
        default="runctl.toml", validation_alias=AliasChoices("RUNCTL_CONFIG", "config")
    )

    # --- Redis and the queue ---------------------------------------------------------------
    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    queue_name: str = "runctl"
    # Keep a message invisible to other workers for longer than any job can run, so that a
    # live worker's job is never handed to a second worker; a dead worker's job comes back
    # after this long.
    visibility_timeout_s: float = Field(default=MAX_DEADLINE_S + 300.0, gt=0)
    # How often each worker looks for messages whose worker died (kombu's restore scan).
    restore_interval_s: float = Field(default=10.0, gt=0)
    # A worker process holds a lease it renews every fifth of this; once it has missed its
    # renewals for this long, any live worker returns the messages it held (its jobs resume
    # from their saved progress). The visibility timeout stays as the last resort.
    worker_lease_s: float = Field(default=15.0, ge=1.0, le=600.0)
    # On SIGTERM a worker stops taking messages, lets jobs finish for this long, then hands
    # the rest back to the head of the queue with their progress saved, and exits.
    shutdown_grace_s: float = Field(default=10.0, ge=0.0, le=600.0)
    # A job that meets a Redis outage waits this long for Redis, resuming from its progress;
    # then it is handed back to the queue (or, if Redis is still away, to the restore sweep).
    redis_outage_max_s: float = Field(default=300.0, gt=0)
    outcome_stream_maxlen: int = Field(default=1_000_000, ge=1000)
    outcome_keep_s: int = Field(default=7 * 24 * 3600, ge=60)

    # --- one job ---------------------------------------------------------------------------
    default_deadline_s: float = Field(default=120.0, ge=MIN_DEADLINE_S, le=MAX_DEADLINE_S)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=20.0, gt=0)
    # Enough that the deadline, not the count, ends the retries of a provider outage: with
    # backoff capped at 8 s, 20 attempts span about two and a half minutes.
    max_attempts: int = Field(default=20, ge=1, le=100)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=8.0, gt=0)
    # A delay the server asks for is waited in full; beyond this (or the deadline) the
    # request gives up instead.
    server_delay_max_s: float = Field(default=300.0, gt=0)
    # The first look comes after most cancels have settled: a cancel usually takes about a
    # second, and under a rate limit every early poll costs a slot another run needed.
    poll_first_s: float = Field(default=1.0, gt=0)
    poll_max_s: float = Field(default=1.0, gt=0)  # the SDK polls every 1 s
    # Learn each provider connection's settle times (fleet-wide, in Redis) and look when
    # runs are likely to have settled (`core.settling`); off: the cadence above alone.
    poll_learned: bool = True
    # Quantiles of the settle times at which the first and each next look go: higher means
    # fewer requests per run, and later answers.
    poll_first_quantile: float = Field(default=0.75, gt=0, lt=1)
    poll_next_quantile: float = Field(default=0.9, gt=0, lt=1)
    # Between two looks when the server sends no `openai-poll-after-ms` hint.
    poll_min_gap_s: float = Field(default=0.25, gt=0)
    # An observed settle time counts half as much after this long.
    settle_half_life_s: float = Field(default=300.0, gt=0)

    # --- the shared rate limit (all workers, all machines) ----------------------------------
    # Requests per second to the provider, across every worker; 0 turns the limit off.
    rate_limit_rps: float = Field(default=100.0, ge=0)
    # How far ahead of its even spacing a request may go (a small burst absorbs jitter).
    rate_burst_s: float = Field(default=0.05, ge=0)

    # --- timeout enforcement (policies) ------------------------------------------------------
    policies_file: str = "runctl.toml"
    enforce_interval_s: float = Field(default=30.0, gt=0)  # how often beat runs a pass
    enforce_batch_limit: int = Field(default=1000, ge=1)  # due runs looked at per pass
    enforce_recheck_max_s: float = Field(default=300.0, gt=0)
    enforce_reissue_max: int = Field(default=2, ge=0)  # then an alert
    enforce_reissue_backoff_s: float = Field(default=30.0, ge=0)

    # --- runctl serve: the HTTP API and the dashboard ---------------------------------------
    # More [[api.tokens]] (a JSON array of {name, role, sha256}) besides runctl.toml's.
    api_tokens_json: str | None = None
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Mutating requests per second per token, and how far ahead of that a burst may go.
    api_rate_limit_rps: float = Field(default=20.0, gt=0)
    api_rate_burst_s: float = Field(default=2.0, ge=0)
    # Signs the dashboard's session cookies; unset: a random one per process (sessions end
    # when it restarts). Never the token: the cookie carries the token's name and expiry.
    api_session_secret: SecretStr | None = None
    api_session_ttl_s: int = Field(default=8 * 3600, ge=60)
    # How many of the newest outcomes a run lookup reads (there is no index by run).
    api_run_scan_limit: int = Field(default=20_000, ge=100)

    # --- the worker ------------------------------------------------------------------------
    worker_concurrency: int = Field(default=1000, ge=1, le=10_000)
    log_json: bool = False
    log_level: str = "INFO"

    # --- metrics (Prometheus) ----------------------------------------------------------------
    # A worker serves /metrics on the first free port of METRICS_PORT .. METRICS_PORT +
    # METRICS_PORTS - 1 (several workers on one host take the next free one; each logs its
    # port and lists it in runctl:workers). 0: no metrics endpoint.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_ports: int = Field(default=32, ge=1, le=1024)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped from other hosts; no secret in it

    @field_validator("api_key")
    @classmethod
    def _key_is_one_clean_token(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not _CLEAN_KEY.fullmatch(key.get_secret_value()):
            # Never echo it: say what is wrong, not what it is.
            raise ValueError(
                "OPENAI_API_KEY must be one token of printable ASCII, with no spaces or "
                "newlines (check the secret file for a trailing newline)"
            )
        return key

    @model_validator(mode="after")
    def _visibility_outlasts_deadlines(self) -> Settings:
        if self.visibility_timeout_s <= self.default_deadline_s:
            raise ValueError(
                "RUNCTL_VISIBILITY_TIMEOUT_S must be longer than RUNCTL_DEFAULT_DEADLINE_S, "
                "or a live worker's job would be handed to a second worker"
            )
        return self

    @property
    def inflight_ttl_s(self) -> int:
        """How long a run's in-flight marker outlives a job that never published."""
        return int(self.visibility_timeout_s * 2)

    @property
    def max_deadline_s(self) -> float:
        """The longest deadline a job may ask for: it must end before its message reappears."""
        return min(MAX_DEADLINE_S, self.visibility_timeout_s - 1.0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Tests build `Settings(...)` directly instead."""
    return Settings()
