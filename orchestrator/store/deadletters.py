"""Messages a worker refused, parked with the reason, for an operator to read.

A refused message is never deserialized beyond what told us it is bad: a pickle payload is
kept as a preview of its bytes, never loaded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

from orchestrator.core.telemetry import NO_TELEMETRY, Telemetry
from orchestrator.store import keys

KEEP = 10_000  # the newest refused messages kept
PREVIEW_BYTES = 2000


class DeadLetters:
    def __init__(
        self,
        client: redis.Redis,
        *,
        clock: Callable[[], float] = time.time,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self._redis = client
        self._clock = clock
        self._telemetry = telemetry

    def park(
        self,
        reason: str,
        *,
        body: bytes | str | None = None,
        content_type: str | None = None,
        task: str | None = None,
        message_id: str | None = None,
        pipe: redis.client.Pipeline | None = None,
    ) -> None:
        """Park one refused message; with `pipe`, only queue the commands on it."""
        raw = body.encode("utf-8", "replace") if isinstance(body, str) else (body or b"")
        entry = {
            "at": self._clock(),
            "reason": reason[:500],
            "content_type": content_type,
            "task": task,
            "id": message_id,
            "bytes": len(raw),
            "preview": raw[:PREVIEW_BYTES].decode("utf-8", "replace"),
        }
        own = pipe is None
        pipe = self._redis.pipeline(transaction=False) if pipe is None else pipe
        pipe.lpush(keys.DEAD_LETTERS, json.dumps(entry))
        pipe.ltrim(keys.DEAD_LETTERS, 0, KEEP - 1)
        if own:
            pipe.execute()
        self._telemetry.dead_letter_parked()

    def newest(self, count: int) -> list[dict[str, Any]]:
        rows: Any = self._redis.lrange(keys.DEAD_LETTERS, 0, count - 1)
        return [json.loads(row) for row in rows]
