"""The API's request log: one stream entry per mutating request, naming the token.

Every cancel, bulk job and abort made through `runctl serve` is appended here with the
token's name (never the token), its role, the action and what it acted on.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from orchestrator.store import keys

KEEP = 100_000  # the newest entries kept (approximately)


class RequestLog:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def record(self, *, at_s: float, token: str, role: str, action: str, target: str) -> None:
        entry = {"at": at_s, "token": token, "role": role, "action": action, "target": target}
        self._redis.xadd(
            keys.API_REQUESTS, {"entry": json.dumps(entry)}, maxlen=KEEP, approximate=True
        )

    def newest(self, count: int) -> list[dict[str, Any]]:
        """The newest `count` entries, newest first."""
        entries = cast(list[Any], self._redis.xrevrange(keys.API_REQUESTS, count=count))
        return [{"id": keys.text(i), **json.loads(f[b"entry"])} for i, f in entries]
