"""The runs the enforcer watches: tracked runs, ordered by their next look, and watched
threads, whose runs are listed on every pass. The protocol has no "list all runs" call, so
producers register what they create."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis

from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import DEFAULT_CONNECTION, ID_PATTERN, ID_RULE
from orchestrator.store import keys
from orchestrator.store.keys import text

RunRef = tuple[str, str | None, str]
"""A tracked run: (connection name, thread id or None, run id)."""


def member(provider: str, thread_id: str | None, run_id: str) -> str:
    return f"{provider}:{thread_id or '-'}:{run_id}"


def parse_member(raw: bytes | str) -> RunRef:
    """A member back as a run; `thread:run` (written before connections had names) is a
    run of the `openai` connection."""
    parts = text(raw).split(":")
    if len(parts) == 2:
        return DEFAULT_CONNECTION, parts[0], parts[1]
    provider, thread_id, run_id = parts[0], parts[1], ":".join(parts[2:])
    return provider, None if thread_id == "-" else thread_id, run_id


def _checked(field: str, value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise InvalidInput(field, ID_RULE, value)
    return value


class Tracker:
    """Tracked runs and watched threads in Redis; each call is one round trip."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def track(
        self,
        thread_id: str | None,
        run_id: str,
        *,
        now_s: float,
        provider: str = DEFAULT_CONNECTION,
    ) -> bool:
        """Watch a run from now on; False if it was tracked already (its schedule stays)."""
        thread = None if thread_id is None else _checked("thread_id", thread_id)
        key = member(provider, thread, _checked("run_id", run_id))
        return bool(self._redis.zadd(keys.TRACKED, {key: now_s}, nx=True))

    def watch_thread(self, thread_id: str, *, provider: str = DEFAULT_CONNECTION) -> bool:
        return bool(
            self._redis.sadd(keys.WATCHED, f"{provider}:{_checked('thread_id', thread_id)}")
        )

    def watched_threads(self) -> list[tuple[str, str]]:
        """(connection, thread id) of each watched thread; a bare thread id is `openai`'s."""
        found = []
        for raw in self._redis.smembers(keys.WATCHED):
            provider, _, thread_id = text(raw).rpartition(":")
            found.append((provider or DEFAULT_CONNECTION, thread_id))
        return sorted(found)

    def track_many(self, runs: Iterable[RunRef], *, now_s: float) -> int:
        """Track runs found on watched threads (already tracked ones keep their schedule)."""
        mapping = {member(p, t, r): now_s for p, t, r in runs}
        added: Any = self._redis.zadd(keys.TRACKED, mapping, nx=True) if mapping else 0
        return int(added)

    def due(self, *, now_s: float, limit: int) -> list[RunRef]:
        """The runs whose next look is due, oldest first."""
        raw: Any = self._redis.zrangebyscore(keys.TRACKED, "-inf", now_s, start=0, num=limit)
        return [parse_member(m) for m in raw]

    def size(self) -> int:
        return int(self._redis.zcard(keys.TRACKED))

    def settle(
        self,
        *,
        next_look: Mapping[RunRef, float],
        drop: Iterable[RunRef],
        pipe: Any = None,
    ) -> None:
        """Reschedule and untrack many runs at once (in `pipe` if given)."""
        target = pipe if pipe is not None else self._redis.pipeline(transaction=False)
        if next_look:
            target.zadd(keys.TRACKED, {member(*ref): at for ref, at in next_look.items()})
        dropped = [member(*ref) for ref in drop]
        if dropped:
            target.zrem(keys.TRACKED, *dropped)
        if pipe is None:
            target.execute()
