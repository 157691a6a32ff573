"""The JSON shapes the simulator sends: the `RunObject` of the OpenAPI spec, lists, errors.

Every run object carries all 25 fields the spec requires, plus `temperature` and `top_p`,
with the spec's types: nullable fields are present as null, never omitted. `instructions`
is a string, never null: the spec does not allow null there, although its own example uses it.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.devkit.simulator import errors
from orchestrator.devkit.simulator.errors import ApiError
from orchestrator.devkit.simulator.state import RunPage, RunView, usage_of
from orchestrator.providers.base import TERMINAL, RunStatus

SIM_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "sim_lookup",
        "description": "A tool the simulator pretends the run is waiting on.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}

# The sampling fields a create request may set; these are the values when it does not.
DEFAULT_OPTIONS: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "max_prompt_tokens": None,
    "max_completion_tokens": None,
    "truncation_strategy": {"type": "auto", "last_messages": None},
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "response_format": "auto",
}

_FAILED_ERROR = {"code": "server_error", "message": "Sorry, something went wrong."}
_INCOMPLETE_DETAILS = {"reason": "max_completion_tokens"}


def dumps(payload: Any) -> bytes:
    """Compact JSON, as bytes ready for the response body."""
    return json.dumps(payload, separators=(",", ":")).encode()


def parse_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object (empty body: `{}`), or the API's 400 for bad JSON."""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise errors.invalid_body() from None
    if not isinstance(body, dict):
        raise errors.invalid_body()
    return body


def run_object(view: RunView) -> dict[str, Any]:
    """The spec's `RunObject` for a run as read at one instant."""
    run = view.run
    status = view.status
    waiting = status is RunStatus.REQUIRES_ACTION
    tools = run.tools if run.tools is not None else ([SIM_TOOL] if waiting else [])
    usage = None
    if status in TERMINAL:
        prompt_tokens, completion_tokens = usage_of(run.id)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    body: dict[str, Any] = {
        "id": run.id,
        "object": "thread.run",
        "created_at": view.created_at,
        "assistant_id": run.assistant_id,
        "thread_id": run.thread_id,
        "status": status.value,
        "started_at": view.started_at,
        "expires_at": view.expires_at,
        "cancelled_at": view.cancelled_at,
        "failed_at": view.failed_at,
        "completed_at": view.completed_at,
        "required_action": _required_action(run.id) if waiting else None,
        "last_error": _FAILED_ERROR if status is RunStatus.FAILED else None,
        "model": run.model,
        "instructions": run.instructions,
        "tools": tools,
        "metadata": run.metadata,
        "incomplete_details": _INCOMPLETE_DETAILS if status is RunStatus.INCOMPLETE else None,
        "usage": usage,
        **DEFAULT_OPTIONS,
    }
    if run.options:
        body.update(run.options)
    return body


def run_list(page: RunPage) -> dict[str, Any]:
    """The list envelope of `GET /threads/{thread_id}/runs`."""
    data = [run_object(view) for view in page.views]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": page.has_more,
    }


def error_body(error: ApiError) -> dict[str, Any]:
    """`{"error": {message, type, param, code}}`, the protocol's one error shape."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def _required_action(run_id: str) -> dict[str, Any]:
    return {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": "call_" + run_id.removeprefix("run_"),
                    "type": "function",
                    "function": {"name": "sim_lookup", "arguments": '{"query": "weather"}'},
                }
            ]
        },
    }
