"""Reading the outcome stream: one batch at a time, or followed forever."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import redis

from orchestrator import keys
from orchestrator.models import Outcome


def stream_tail(client: redis.Redis) -> str:
    """The id of the newest outcome in the stream ("0-0" when empty): read after it."""
    newest = cast(list[Any], client.xrevrange(keys.OUTCOME_STREAM, count=1))
    return keys.text(newest[0][0]) if newest else "0-0"


def read_batch(
    client: redis.Redis, after_id: str, *, block_ms: int, count: int = 1000
) -> tuple[str, list[Outcome]]:
    """Outcomes published after `after_id` (waiting up to `block_ms`), and the id to go on from."""
    reply = cast(
        list[Any], client.xread({keys.OUTCOME_STREAM: after_id}, count=count, block=block_ms)
    )
    outcomes: list[Outcome] = []
    for _stream, entries in reply or []:
        for entry_id, fields in entries:
            after_id = keys.text(entry_id)
            outcomes.append(Outcome.model_validate_json(fields[b"outcome"]))
    return after_id, outcomes


def follow_outcomes(client: redis.Redis, *, from_start: bool = False) -> Iterator[Outcome]:
    """Yield outcomes as they are published (from the stream's start with `from_start`)."""
    # "$" would be re-read on every call and miss entries between calls: pin an id instead.
    last_id = "0-0" if from_start else stream_tail(client)
    while True:
        last_id, outcomes = read_batch(client, last_id, block_ms=5000, count=500)
        yield from outcomes
