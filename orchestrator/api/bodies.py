"""A bulk job's targets from a request body: a JSON array, JSON lines or CSV, read with
the CLI's own target rules (`service/targets.py`). The body's size is capped by FastAPI's
`max_body_size` (413)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from orchestrator.core.errors import InvalidInput
from orchestrator.service.targets import Problem, Target, check_target, read_targets


def targets_from_body(body: bytes, content_type: str) -> Iterator[Target | Problem]:
    """A JSON array of targets (`application/json`), else JSON lines or CSV (the first
    line decides, as for `runctl bulk-cancel FILE`)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("body", "must be UTF-8 text") from None
    if content_type.split(";", maxsplit=1)[0].strip() == "application/json":
        return _json_array(text)
    return read_targets(text.splitlines())


def _json_array(text: str) -> Iterator[Target | Problem]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(items, list):
        raise InvalidInput("body", "must be a JSON array of {thread_id, run_id} objects")
    for n, item in enumerate(items):
        where = f"item {n}"
        if not isinstance(item, dict):
            yield Problem(where, "item", "must be a JSON object")
            continue
        yield check_target(item, where)
