"""A Celery consumer that parks every message it refuses in the dead-letter list.

Celery already refuses what it cannot or must not read (pickle and other content types
are not accepted, so they are never deserialized); this only records the refusal, with its
reason, before Celery drops the message as it always does.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)


def park(message: Any, reason: str) -> None:
    from workers.context import get_context

    headers = getattr(message, "headers", None) or {}
    try:
        get_context().dead_letters.park(
            reason,
            body=getattr(message, "body", None),
            content_type=getattr(message, "content_type", None),
            task=str(headers.get("task")) if headers.get("task") else None,
            message_id=str(headers.get("id")) if headers.get("id") else None,
        )
    except Exception:  # parking is best effort: the refusal itself must go on
        log.exception("could not park a refused message")


class DeadLetterConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        park(message, f"cannot be decoded: {type(exc).__name__}")
        super().on_decode_error(message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        park(message, f"refused: {type(exc).__name__}: {str(exc)[:200]}")
        super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        park(message, "not a task message")
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        park(message, f"unknown task {str(exc)[:200]}")
        super().on_unknown_task(body, message, exc)
