"""Structured logging: plain or JSON lines, each carrying the job_id and run_id in hand."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_job: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "runctl_job", default=None
)
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


@contextmanager
def job_context(job_id: str, run_id: str, thread_id: str | None) -> Iterator[None]:
    """Every log line inside this block names the job and its run."""
    token = _job.set({"job_id": job_id, "run_id": run_id, "thread_id": thread_id or ""})
    try:
        yield
    finally:
        _job.reset(token)


class _JobFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_job.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        return base + "".join(f" {k}={v}" for k, v in extra.items())


def configure(*, json_lines: bool, level: int | str = "INFO") -> None:
    """Send every log line to stderr, plain or JSON; quiet the HTTP client's own lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else _PlainFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
