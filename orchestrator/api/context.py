"""What every route of `runctl serve` shares: the settings, the producer (with its Redis
client), the tokens, the request log, the session signer and the clock."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio
from fastapi import Request

from orchestrator.core.access import ApiToken, Tokens, parse_tokens
from orchestrator.core.connections import read_config
from orchestrator.core.settings import Settings
from orchestrator.metrics.fleet import fleet_registry
from orchestrator.service.producer import Producer
from orchestrator.store import keys
from orchestrator.store.client import async_redis_client
from orchestrator.store.ratelimit import RateLimiter
from orchestrator.store.requests import RequestLog


def load_tokens(settings: Settings) -> Tokens:
    """`[[api.tokens]]` from runctl.toml (RUNCTL_CONFIG) and RUNCTL_API_TOKENS_JSON."""
    return parse_tokens(read_config(Path(settings.config_file)), settings.api_tokens_json)


@dataclass
class Context:
    settings: Settings
    producer: Producer
    tokens: Tokens
    clock: Callable[[], float] = time.time
    session_secret: str = ""
    _limiters: dict[str, RateLimiter] = field(default_factory=dict)
    _async_client: redis.asyncio.Redis | None = None

    def __post_init__(self) -> None:
        configured = self.settings.api_session_secret
        if not self.session_secret:
            given = configured.get_secret_value() if configured else ""
            self.session_secret = given or secrets.token_urlsafe(32)
        self.requests = RequestLog(self.client)
        self.fleet_registry = fleet_registry(self.client, self.settings)  # read at each scrape

    @property
    def client(self) -> redis.Redis:
        return self.producer.redis

    def async_client(self) -> redis.asyncio.Redis:
        """The asyncio client of the server's event loop (made on first use, in it)."""
        if self._async_client is None:
            self._async_client = async_redis_client(self.settings)
        return self._async_client

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def limiter(self, token: ApiToken) -> RateLimiter:
        """The token's own GCRA bucket for mutating requests (store/ratelimit.py)."""
        if token.name not in self._limiters:
            self._limiters[token.name] = RateLimiter(
                self.client,
                provider=keys.api_rate(token.name),
                rate_limit_rps=self.settings.api_rate_limit_rps,
                burst_s=self.settings.api_rate_burst_s,
            )
        return self._limiters[token.name]

    def record(self, token: ApiToken, action: str, target: str) -> None:
        """One entry in the request log for a mutating request by `token`."""
        self.requests.record(
            at_s=self.clock(), token=token.name, role=token.role.label, action=action,
            target=target,
        )  # fmt: skip


def context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx
