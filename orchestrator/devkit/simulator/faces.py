"""The simulator's other kinds, each under its own prefix, over the same simulated runs and
the same fault knobs (latency, 429s, 5xx, the rate limit, scripted faults per run):

| kind | prefix (base URL to configure) | credential it enforces |
| --- | --- | --- |
| openai-assistants | `/v1` | `Authorization: Bearer KEY`, `OpenAI-Beta: assistants=v2` |
| openai-responses | `/v1` (`/responses/...`) | `Authorization: Bearer KEY` |
| azure-openai-assistants | `/azure` (`/openai/threads/...`) | `api-key` or bearer; `api-version` |
| azure-ai-agents | `/foundry` (`/threads/...`) | `Authorization: Bearer KEY` only; `api-version` |
| langgraph | `/langgraph` | `x-api-key: KEY` |

The run's status is the simulator's Assistants status, said in each kind's words.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from orchestrator.devkit.simulator import errors
from orchestrator.devkit.simulator.config import SimulatorConfig
from orchestrator.devkit.simulator.errors import ApiError
from orchestrator.devkit.simulator.runtime import Runtime
from orchestrator.devkit.simulator.state import CANCELLABLE, RunSpec, RunView, SimRun
from orchestrator.devkit.simulator.wire import dumps, error_body, parse_object
from orchestrator.providers.base import RunStatus

Answer = bytes | tuple[int, bytes]
Action = Callable[[web.Request], Awaitable[Answer]]


@dataclass(frozen=True)
class Face:
    """How one kind's API checks credentials and shapes its errors."""

    name: str
    authenticate: Callable[[web.Request, SimulatorConfig], None]
    error_body: Callable[[ApiError], dict[str, Any]]


class Serving(Protocol):
    """The simulator's `Api`: the shared request steps, and the Assistants handlers."""

    runtime: Runtime

    async def _serve(
        self, request: web.Request, route: str, action: Action, face: Face
    ) -> web.Response: ...

    async def _create(self, request: web.Request) -> bytes: ...

    async def _list(self, request: web.Request) -> bytes: ...

    async def _retrieve(self, request: web.Request) -> bytes: ...

    async def _cancel(self, request: web.Request) -> bytes: ...


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


# -- credentials ------------------------------------------------------------------------


def assistants_auth(request: web.Request, config: SimulatorConfig) -> None:
    authorization = request.headers.get("Authorization")
    if authorization is None:
        raise errors.missing_api_key()
    if not _same(authorization, f"Bearer {config.api_key}"):
        raise errors.incorrect_api_key()
    beta = request.headers.get("OpenAI-Beta")
    if beta is None or "assistants=v2" not in beta:
        raise errors.missing_beta_header()


def responses_auth(request: web.Request, config: SimulatorConfig) -> None:
    authorization = request.headers.get("Authorization")
    if authorization is None:
        raise errors.missing_api_key()
    if not _same(authorization, f"Bearer {config.api_key}"):
        raise errors.incorrect_api_key()


AZURE_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API endpoint "
    "for your resource."
)


def azure_openai_auth(request: web.Request, config: SimulatorConfig) -> None:
    """Azure OpenAI: an `api-key` header or an Entra bearer token, and `api-version`."""
    key = request.headers.get("api-key")
    bearer = request.headers.get("Authorization")
    if not (
        (key is not None and _same(key, config.api_key))
        or (bearer is not None and _same(bearer, f"Bearer {config.api_key}"))
    ):
        raise ApiError(401, AZURE_DENIED, type="invalid_request_error", code="401")
    if not request.query.get("api-version"):
        raise ApiError(404, "Resource not found", code="404")


def foundry_auth(request: web.Request, config: SimulatorConfig) -> None:
    """Foundry Agent Service: an Entra bearer token only (the stub credential hands out the
    simulator's key as its token), and `api-version`."""
    bearer = request.headers.get("Authorization")
    if bearer is None or not _same(bearer, f"Bearer {config.api_key}"):
        raise ApiError(401, "Unauthorized. Access token is missing, invalid, audience is "
                       "incorrect, or have expired.", code="PermissionDenied")  # fmt: skip
    if not request.query.get("api-version"):
        raise ApiError(400, "Missing required query parameter: api-version",
                       code="MissingApiVersionParameter")  # fmt: skip


def langgraph_auth(request: web.Request, config: SimulatorConfig) -> None:
    key = request.headers.get("x-api-key")
    if key is None or not _same(key, config.api_key):
        raise ApiError(403, "Invalid API key")


def detail_body(error: ApiError) -> dict[str, Any]:
    """langgraph-api's (FastAPI's) error shape."""
    return {"detail": error.message}


ASSISTANTS = Face("openai-assistants", assistants_auth, error_body)
RESPONSES = Face("openai-responses", responses_auth, error_body)
AZURE_OPENAI = Face("azure-openai-assistants", azure_openai_auth, error_body)
FOUNDRY = Face("azure-ai-agents", foundry_auth, error_body)
LANGGRAPH = Face("langgraph", langgraph_auth, detail_body)


# -- langgraph ---------------------------------------------------------------------------

LANGGRAPH_STATUS: dict[RunStatus, str] = {
    RunStatus.QUEUED: "pending",
    RunStatus.IN_PROGRESS: "running",
    RunStatus.REQUIRES_ACTION: "running",
    RunStatus.CANCELLING: "running",  # an interrupt settling
    RunStatus.CANCELLED: "interrupted",
    RunStatus.COMPLETED: "success",
    RunStatus.FAILED: "error",
    RunStatus.INCOMPLETE: "error",
    RunStatus.EXPIRED: "timeout",
}
NO_MATCHING = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, and "
    "the runs haven't been deleted or completed."
)
LIST_STATUSES = frozenset(LANGGRAPH_STATUS.values())


def _uuid(value: str, what: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise ApiError(422, f"Invalid {what} ID: must be a UUID") from None
    return value


def _iso(unix_s: int | None) -> str | None:
    from datetime import UTC, datetime

    return None if unix_s is None else datetime.fromtimestamp(unix_s, UTC).isoformat()


def langgraph_run(view: RunView) -> dict[str, Any]:
    """langgraph-api's Run object (the fields its OpenAPI spec requires)."""
    run = view.run
    return {
        "run_id": run.id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": _iso(view.created_at),
        "updated_at": _iso(view.created_at),
        "status": LANGGRAPH_STATUS[view.status],
        "metadata": run.metadata,
        "kwargs": {"input": {}, "config": {}},
        "multitask_strategy": "enqueue",
    }


class LangGraphApi:
    """`/langgraph`: threads, runs, cancel (202, the 404 ambiguity, rollback deleting)."""

    def __init__(self, api: Serving) -> None:
        self.api = api
        self.state = api.runtime.state

    def _run(self, request: web.Request) -> SimRun:
        thread_id = _uuid(request.match_info["thread_id"], "thread")
        run_id = _uuid(request.match_info["run_id"], "run")
        if thread_id not in self.state.threads:
            raise ApiError(404, f"Thread with ID {thread_id} not found")
        run = self.state.runs.get(run_id)
        if run is None or run.thread_id != thread_id:
            raise ApiError(404, "Not Found")
        return run

    async def create_thread(self, request: web.Request) -> web.Response:
        async def action(_: web.Request) -> Answer:
            thread_id = self.state.create_thread("uuid")
            now = _iso(int(self.state.clock()))
            thread: dict[str, Any] = {"thread_id": thread_id, "created_at": now, "updated_at": now,
                      "metadata": {}, "status": "idle", "config": {}, "values": None}  # fmt: skip
            return dumps(thread)

        return await self.api._serve(request, "langgraph:create_thread", action, LANGGRAPH)

    async def create_run(self, request: web.Request) -> web.Response:
        async def action(req: web.Request) -> Answer:
            thread_id = _uuid(req.match_info["thread_id"], "thread")
            if thread_id not in self.state.threads:
                raise ApiError(404, f"Thread with ID {thread_id} not found")
            body = parse_object(await req.read())
            config = self.api.runtime.config
            # Runs queue behind the thread's live run (multitask_strategy "enqueue"); here
            # such a run stays pending until cancelled (the simulator starts it never).
            busy = any(
                self.state.status_of(self.state.runs[r]) in CANCELLABLE
                for r in self.state.threads[thread_id]
            )
            spec = RunSpec(
                status=RunStatus.QUEUED,
                queued_s=None if busy else config.queued_s,
                run_duration_s=_sleep_s(body, config.run_duration_s),
                assistant_id=str(body.get("assistant_id") or "agent"),
            )
            view = self.state.create_thread_and_run(spec, ids="uuid", thread_id=thread_id)
            return dumps(langgraph_run(view))

        return await self.api._serve(request, "langgraph:create_run", action, LANGGRAPH)

    async def list_runs(self, request: web.Request) -> web.Response:
        async def action(req: web.Request) -> Answer:
            thread_id = _uuid(req.match_info["thread_id"], "thread")
            run_ids = self.state.threads.get(thread_id)
            if run_ids is None:
                raise ApiError(404, f"Thread with ID {thread_id} not found")
            wanted = req.query.get("status")
            if wanted is not None and wanted not in LIST_STATUSES:
                raise ApiError(422, f"Invalid status: {wanted}")
            limit, offset = _int(req, "limit", 10), _int(req, "offset", 0)
            views = [self.state.view(self.state.runs[r]) for r in reversed(run_ids)]
            if wanted is not None:
                views = [v for v in views if LANGGRAPH_STATUS[v.status] == wanted]
            return dumps([langgraph_run(v) for v in views[offset : offset + limit]])

        return await self.api._serve(request, "langgraph:list_runs", action, LANGGRAPH)

    async def retrieve(self, request: web.Request) -> web.Response:
        async def action(req: web.Request) -> Answer:
            run = self._run(req)
            if run.fail_retrieve:
                raise run.fail_retrieve.popleft().to_error()
            return dumps(langgraph_run(self.state.view(run)))

        return await self.api._serve(request, "langgraph:retrieve_run", action, LANGGRAPH)

    async def cancel(self, request: web.Request) -> web.Response:
        async def action(req: web.Request) -> Answer:
            try:
                run = self._run(req)
            except ApiError as error:
                if error.status == 404:
                    raise ApiError(404, "No runs found to cancel.") from None
                raise
            if self.state.status_of(run) not in CANCELLABLE:
                raise ApiError(404, NO_MATCHING)
            self.state.cancel(run.thread_id, run.id)  # scripted faults apply here too
            if req.query.get("action") == "rollback":
                self.state.delete(run)
            if req.query.get("wait") in ("1", "true"):
                return b"{}"
            return 202, b""

        return await self.api._serve(request, "langgraph:cancel_run", action, LANGGRAPH)


def _sleep_s(body: dict[str, Any], default: float | None) -> float | None:
    """A run given `input.sleep_s` (like the test graph) completes after that long."""
    given = body.get("input")
    if isinstance(given, dict) and isinstance(given.get("sleep_s"), int | float):
        return float(given["sleep_s"])
    return default


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    try:
        return default if raw is None else max(0, int(raw))
    except ValueError:
        raise ApiError(422, f"Invalid {name}") from None


# -- responses ---------------------------------------------------------------------------

RESPONSE_STATUS: dict[RunStatus, str] = {
    RunStatus.QUEUED: "queued",
    RunStatus.IN_PROGRESS: "in_progress",
    RunStatus.REQUIRES_ACTION: "in_progress",
    RunStatus.CANCELLING: "in_progress",  # a cancel settling
    RunStatus.CANCELLED: "cancelled",
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.INCOMPLETE: "incomplete",
    RunStatus.EXPIRED: "failed",
}


def response_object(view: RunView) -> dict[str, Any]:
    """The spec's `Response` (every required field) for a background response."""
    run = view.run
    status = RESPONSE_STATUS[view.status]
    return {
        "id": run.id,
        "object": "response",
        "created_at": view.created_at,
        "status": status,
        "background": True,
        "completed_at": view.completed_at,
        "error": {"code": "server_error", "message": "Sorry, something went wrong."}
        if status == "failed"
        else None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": run.instructions or None,
        "model": run.model,
        "tools": [],
        "output": [],
        "parallel_tool_calls": True,
        "metadata": run.metadata,
        "tool_choice": "auto",
        "temperature": 1.0,
        "top_p": 1.0,
    }  # `usage` is optional and not nullable: left out


class ResponsesApi:
    """`/v1/responses`: create (background only), retrieve, cancel (idempotent)."""

    def __init__(self, api: Serving) -> None:
        self.api = api
        self.state = api.runtime.state

    def _response(self, request: web.Request) -> SimRun:
        response_id = request.match_info["response_id"]
        run = self.state.runs.get(response_id)
        if run is None or not run.id.startswith("resp_"):
            raise ApiError(404, f"Response with id '{response_id}' not found.",
                           param="response_id")  # fmt: skip
        return run

    async def create(self, request: web.Request) -> web.Response:
        async def action(req: web.Request) -> Answer:
            body = parse_object(await req.read())
            if body.get("background") is not True:
                raise errors.invalid_param(
                    "background", "The simulator serves background responses only."
                )
            config = self.api.runtime.config
            spec = RunSpec(status=RunStatus.QUEUED, queued_s=config.queued_s,
                           run_duration_s=config.run_duration_s,
                           model=str(body.get("model") or "gpt-sim"),
                           metadata=body.get("metadata") or {})  # fmt: skip
            view = self.state.create_thread_and_run(spec, ids="response")
            return dumps(response_object(view))

        return await self.api._serve(request, "responses:create", action, RESPONSES)

    async def retrieve(self, request: web.Request) -> web.Response:
        async def action(req: web.Request) -> Answer:
            run = self._response(req)
            if run.fail_retrieve:
                raise run.fail_retrieve.popleft().to_error()
            return dumps(response_object(self.state.view(run)))

        return await self.api._serve(request, "responses:retrieve", action, RESPONSES)

    async def cancel(self, request: web.Request) -> web.Response:
        async def action(req: web.Request) -> Answer:
            run = self._response(req)
            if (
                self.state.status_of(run) in CANCELLABLE
                or run.fail_cancel
                or (run.fail_cancel_always is not None)
            ):
                self.state.cancel(run.thread_id, run.id)
            return dumps(response_object(self.state.view(run)))  # a finished one as it is

        return await self.api._serve(request, "responses:cancel", action, RESPONSES)


# -- the Assistants protocol under Azure's prefixes ------------------------------------------


def _assistants_routes(router: web.UrlDispatcher, api: Serving, prefix: str, face: Face) -> None:
    def handler(route: str, action: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await api._serve(request, f"{face.name}:{route}", action, face)

        return handle

    router.add_post(f"{prefix}/threads/runs", handler("create_thread_and_run", api._create))
    router.add_get(f"{prefix}/threads/{{thread_id}}/runs", handler("list_runs", api._list),
                   allow_head=False)  # fmt: skip
    router.add_get(f"{prefix}/threads/{{thread_id}}/runs/{{run_id}}",
                   handler("retrieve_run", api._retrieve), allow_head=False)  # fmt: skip
    router.add_post(f"{prefix}/threads/{{thread_id}}/runs/{{run_id}}/cancel",
                    handler("cancel_run", api._cancel))  # fmt: skip


def add_routes(router: web.UrlDispatcher, api: Serving) -> None:
    """Every kind but openai-assistants (which `server.make_app` routes itself)."""
    responses = ResponsesApi(api)
    router.add_post("/v1/responses", responses.create)
    router.add_get("/v1/responses/{response_id}", responses.retrieve, allow_head=False)
    router.add_post("/v1/responses/{response_id}/cancel", responses.cancel)
    _assistants_routes(router, api, "/azure/openai", AZURE_OPENAI)
    _assistants_routes(router, api, "/foundry", FOUNDRY)
    graphs = LangGraphApi(api)
    router.add_post("/langgraph/threads", graphs.create_thread)
    router.add_post("/langgraph/threads/{thread_id}/runs", graphs.create_run)
    router.add_get("/langgraph/threads/{thread_id}/runs", graphs.list_runs, allow_head=False)
    router.add_get("/langgraph/threads/{thread_id}/runs/{run_id}", graphs.retrieve,
                   allow_head=False)  # fmt: skip
    router.add_post("/langgraph/threads/{thread_id}/runs/{run_id}/cancel", graphs.cancel)
