"""The runs the enforcer watches: tracked runs, ordered by their next look, and watched
threads, whose runs are listed on every pass. The protocol has no "list all runs" call, so
producers register what they create."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis

from orchestrator.core.errors import InvalidInput
from orchestrator.core.models import ID_PATTERN, ID_RULE
from orchestrator.store import keys
from orchestrator.store.keys import text


def member(thread_id: str, run_id: str) -> str:
    return f"{thread_id}:{run_id}"


def parse_member(raw: bytes | str) -> tuple[str, str]:
    thread_id, _, run_id = text(raw).partition(":")
    return thread_id, run_id


def _checked(field: str, value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise InvalidInput(field, ID_RULE, value)
    return value


class Tracker:
    """Tracked runs and watched threads in Redis; each call is one round trip."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def track(self, thread_id: str, run_id: str, *, now_s: float) -> bool:
        """Watch a run from now on; False if it was tracked already (its schedule stays)."""
        key = member(_checked("thread_id", thread_id), _checked("run_id", run_id))
        return bool(self._redis.zadd(keys.TRACKED, {key: now_s}, nx=True))

    def watch_thread(self, thread_id: str) -> bool:
        return bool(self._redis.sadd(keys.WATCHED, _checked("thread_id", thread_id)))

    def watched_threads(self) -> list[str]:
        return sorted(text(t) for t in self._redis.smembers(keys.WATCHED))

    def track_many(self, runs: Iterable[tuple[str, str]], *, now_s: float) -> int:
        """Track runs found on watched threads (already tracked ones keep their schedule)."""
        mapping = {member(t, r): now_s for t, r in runs}
        added: Any = self._redis.zadd(keys.TRACKED, mapping, nx=True) if mapping else 0
        return int(added)

    def due(self, *, now_s: float, limit: int) -> list[tuple[str, str]]:
        """The runs whose next look is due, oldest first."""
        raw: Any = self._redis.zrangebyscore(keys.TRACKED, "-inf", now_s, start=0, num=limit)
        return [parse_member(m) for m in raw]

    def size(self) -> int:
        return int(self._redis.zcard(keys.TRACKED))

    def settle(
        self,
        *,
        next_look: Mapping[tuple[str, str], float],
        drop: Iterable[tuple[str, str]],
        pipe: Any = None,
    ) -> None:
        """Reschedule and untrack many runs at once (in `pipe` if given)."""
        target = pipe if pipe is not None else self._redis.pipeline(transaction=False)
        if next_look:
            target.zadd(keys.TRACKED, {member(t, r): at for (t, r), at in next_look.items()})
        dropped = [member(t, r) for t, r in drop]
        if dropped:
            target.zrem(keys.TRACKED, *dropped)
        if pipe is None:
            target.execute()
