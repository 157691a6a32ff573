"""Reading the enforcement streams back: the newest events and alerts, as JSON objects.

The enforcer writes them (`service/enforcer.py`): `runctl:events` entries carry an `event`
field, `runctl:alerts` entries an `alert` field, each one JSON object.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis

from orchestrator.store import keys

_FIELD = {keys.EVENTS: b"event", keys.ALERTS: b"alert"}


def newest(client: redis.Redis, stream: str, *, count: int) -> list[dict[str, Any]]:
    """The newest `count` entries of `stream` (EVENTS or ALERTS), oldest first, each with
    its stream id as `id`."""
    entries = cast(list[Any], client.xrevrange(stream, count=count))[::-1]
    field = _FIELD[stream]
    return [
        {"id": keys.text(entry_id), **json.loads(fields[field])} for entry_id, fields in entries
    ]
