"""The simulator's HTTP face: the four Assistants routes under `/v1`, and ways to run it.

Each API request goes through the same steps, in this order: the configured latency, then the
rate limiter, random 429s and random 5xx, then the API key and the `OpenAI-Beta` header, then
the route itself. Every API request is counted and logged (in memory, never printed).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from orchestrator.devkit.simulator import admin, errors, faces
from orchestrator.devkit.simulator.config import SimulatorConfig
from orchestrator.devkit.simulator.errors import ApiError, ConnectionDropped
from orchestrator.devkit.simulator.faces import ASSISTANTS, Face
from orchestrator.devkit.simulator.ratelimit import format_duration
from orchestrator.devkit.simulator.runtime import Runtime
from orchestrator.devkit.simulator.state import RequestRecord, RunSpec
from orchestrator.devkit.simulator.wire import (
    DEFAULT_OPTIONS,
    dumps,
    parse_object,
    run_list,
    run_object,
)
from orchestrator.providers.base import RunStatus

RUNTIME_KEY = web.AppKey("runtime", Runtime)

ROUTE_CREATE = "create_thread_and_run"
ROUTE_LIST = "list_runs"
ROUTE_RETRIEVE = "retrieve_run"
ROUTE_CANCEL = "cancel_run"
ROUTE_UNKNOWN = "unknown"

LIST_LIMIT_MAX = 100
BACKLOG = 2048  # benchmarks open hundreds of connections at once
SERVER_ERROR_STATUSES = (500, 502, 503)
# Parameters of `POST /threads/runs` that the simulator accepts and ignores.
IGNORED_CREATE_PARAMS = frozenset({"thread", "tool_resources", "stream"})
BEHAVIOR_METADATA_KEY = "sim_behavior"

Action = faces.Action


class Api:
    """The `/v1` handlers, sharing one `Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def create_thread_and_run(self, request: web.Request) -> web.Response:
        return await self._serve(request, ROUTE_CREATE, self._create)

    async def list_runs(self, request: web.Request) -> web.Response:
        return await self._serve(request, ROUTE_LIST, self._list)

    async def retrieve_run(self, request: web.Request) -> web.Response:
        return await self._serve(request, ROUTE_RETRIEVE, self._retrieve)

    async def cancel_run(self, request: web.Request) -> web.Response:
        return await self._serve(request, ROUTE_CANCEL, self._cancel)

    async def unknown(self, request: web.Request) -> web.Response:
        return await self._serve(request, ROUTE_UNKNOWN, _invalid_url)

    async def _serve(
        self, request: web.Request, route: str, action: Action, face: Face = ASSISTANTS
    ) -> web.Response:
        """Answer one API request: latency, admission, then `action`, whose `ApiError`
        becomes the error response. Counts and logs the request whatever its outcome."""
        runtime = self.runtime
        arrived_s = runtime.clock()
        latency_ms = runtime.config.latency_ms
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000.0)
        headers: dict[str, str] = {}
        status = 200
        try:
            self._admit(request, headers)
            face.authenticate(request, runtime.config)
            answer = await action(request)
            status, body = answer if isinstance(answer, tuple) else (200, answer)
            poll_after_ms = runtime.config.poll_after_ms
            if poll_after_ms is not None and route == ROUTE_RETRIEVE:
                headers["openai-poll-after-ms"] = str(poll_after_ms)
        except ApiError as error:
            status = error.status
            body = dumps(face.error_body(error))
            if error.retry_after_s is not None:
                headers.update(retry_after_headers(error.retry_after_s))
        except ConnectionDropped:
            status, body = 0, b""  # logged as "no answer"
        match = request.match_info
        runtime.state.traffic.record(
            RequestRecord(
                arrived_s,
                request.method,
                route,
                match.get("thread_id"),
                match.get("run_id"),
                status,
            )
        )
        if status == 0 and request.transport is not None:
            request.transport.abort()  # no answer at all: the client sees the connection end
        if not body:  # langgraph's 202: no body, no content type
            return web.Response(status=status, headers=headers)
        return web.Response(
            body=body, status=status, headers=headers, content_type="application/json"
        )

    def _admit(self, request: web.Request, headers: dict[str, str]) -> None:
        """Raise the error this request gets before its route is even looked at."""
        runtime = self.runtime
        config = runtime.config
        if runtime.bucket is not None:
            admission = runtime.bucket.admit()
            headers.update(admission.headers())
            if not admission.admitted:
                raise errors.rate_limited(
                    "Rate limit reached for requests per second (RPS): "
                    f"Limit {admission.limit}. Please try again in "
                    f"{format_duration(admission.wait_s)}.",
                    admission.wait_s if config.rate_limit_delay else None,
                )
        # Draw only when a rate is set, so that a seeded run's ids do not depend on traffic.
        if config.rate_429_rate > 0 and runtime.rng.random() < config.rate_429_rate:
            raise errors.rate_limited(
                "Rate limit reached for requests. Please try again later.",
                config.retry_after_s,
            )
        if config.error_5xx_rate > 0 and runtime.rng.random() < config.error_5xx_rate:
            raise errors.server_error(runtime.rng.choice(SERVER_ERROR_STATUSES))

    async def _create(self, request: web.Request) -> bytes:
        body = parse_object(await request.read())
        spec = _create_spec(body, self.runtime.config)
        return dumps(run_object(self.runtime.state.create_thread_and_run(spec)))

    async def _list(self, request: web.Request) -> bytes:
        query = request.query
        limit = _list_limit(query.get("limit"))
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise errors.invalid_param(
                "order", f"Invalid value for 'order': expected 'asc' or 'desc', got '{order}'."
            )
        page = self.runtime.state.list_runs(
            request.match_info["thread_id"],
            limit=limit,
            order="asc" if order == "asc" else "desc",
            after=query.get("after"),
            before=query.get("before"),
        )
        return dumps(run_list(page))

    async def _retrieve(self, request: web.Request) -> bytes:
        match = request.match_info
        return dumps(run_object(self.runtime.state.retrieve(match["thread_id"], match["run_id"])))

    async def _cancel(self, request: web.Request) -> bytes:
        match = request.match_info
        return dumps(run_object(self.runtime.state.cancel(match["thread_id"], match["run_id"])))


def retry_after_headers(retry_after_s: float) -> dict[str, str]:
    """`retry-after` in whole seconds (at least 1, rounded up) and `retry-after-ms` exact."""
    retry_after_ms = f"{retry_after_s * 1000:.3f}".rstrip("0").rstrip(".")
    return {
        "retry-after": str(max(1, math.ceil(retry_after_s))),
        "retry-after-ms": retry_after_ms,
    }


async def _invalid_url(request: web.Request) -> bytes:
    raise errors.invalid_url(request.method, request.path)


def _create_spec(body: dict[str, Any], config: SimulatorConfig) -> RunSpec:
    """The run a `POST /threads/runs` body asks for, or the 400 the real API would answer."""
    for name in body:
        if name not in CREATE_PARAMS:
            raise errors.invalid_param(name, f"Unrecognized request argument supplied: {name}")
    if body.get("stream"):
        raise errors.invalid_param("stream", "The simulator does not stream runs.")
    assistant_id = body.get("assistant_id")
    if not assistant_id:
        raise errors.missing_param("assistant_id")
    metadata = body.get("metadata") or {}
    fields: dict[str, Any] = {
        "status": RunStatus.QUEUED,
        "queued_s": config.queued_s,
        "run_duration_s": config.run_duration_s,
        "assistant_id": assistant_id,
        "metadata": metadata,
        "options": {name: body[name] for name in DEFAULT_OPTIONS if body.get(name) is not None},
    }
    if isinstance(metadata, dict) and BEHAVIOR_METADATA_KEY in metadata:
        fields["behavior"] = metadata[BEHAVIOR_METADATA_KEY]
    for name in ("model", "instructions", "tools"):
        if body.get(name) is not None:
            fields[name] = body[name]
    try:
        return RunSpec.model_validate(fields)
    except ValidationError as error:
        raise errors.invalid_fields(error) from None


CREATE_PARAMS = frozenset(
    {"assistant_id", "model", "instructions", "tools", "metadata", *DEFAULT_OPTIONS}
    | IGNORED_CREATE_PARAMS
)


def _list_limit(raw: str | None) -> int:
    if raw is None:
        return 20
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise errors.invalid_param(
            "limit", f"Invalid 'limit': expected an integer from 1 to {LIST_LIMIT_MAX}."
        )
    return limit


def make_app(
    config: SimulatorConfig | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> web.Application:
    """The simulator as an aiohttp application: `/v1` API routes and `/_sim` admin routes.

    `clock` (monotonic seconds) drives run lifecycles, rate limits and the request log;
    `wall_clock` (unix seconds) only dates the run objects. `app[RUNTIME_KEY]` is the
    simulator's runtime, for tests that run in the same process.
    """
    runtime = Runtime(config or SimulatorConfig(), clock=clock, wall_clock=wall_clock)
    api = Api(runtime)
    app = web.Application()
    app[RUNTIME_KEY] = runtime
    router = app.router
    router.add_post("/v1/threads/runs", api.create_thread_and_run)
    router.add_get("/v1/threads/{thread_id}/runs", api.list_runs, allow_head=False)
    router.add_get("/v1/threads/{thread_id}/runs/{run_id}", api.retrieve_run, allow_head=False)
    router.add_post("/v1/threads/{thread_id}/runs/{run_id}/cancel", api.cancel_run)
    faces.add_routes(router, api)  # the other kinds, each under its own prefix
    # Anything else under /v1 gets the API's own 404, not aiohttp's HTML page.
    router.add_route("*", "/v1/{tail:.*}", api.unknown)
    admin.add_routes(app, runtime)
    return app


def serve(config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve the simulator until interrupted. The access log is off: it would cost more
    than the requests themselves."""
    web.run_app(make_app(config), host=host, port=port, access_log=None, backlog=BACKLOG)


@dataclass
class SimulatorHandle:
    """A simulator serving from a daemon thread with its own event loop."""

    host: str
    port: int
    _loop: asyncio.AbstractEventLoop = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def base_url(self) -> str:
        """What an API client takes as its base URL, e.g. `http://127.0.0.1:8787/v1`."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.port}/_sim"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the listener and stop the loop; safe to call twice."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_in_thread(
    config: SimulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> SimulatorHandle:
    """Start a simulator in a daemon thread and return once it accepts connections.

    `port=0` picks a free port; the handle says which. Raises what the server raised if it
    could not start (for instance, the port is taken).
    """
    loop = asyncio.new_event_loop()
    listening = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(make_app(config, clock=clock), access_log=None)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, host, port, backlog=BACKLOG)
            loop.run_until_complete(site.start())
            outcome["port"] = runner.addresses[0][1]
        except BaseException as error:
            outcome["error"] = error
            listening.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        listening.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    thread = threading.Thread(target=run, name="simulator", daemon=True)
    thread.start()
    listening.wait()
    if "error" in outcome:
        raise outcome["error"]
    return SimulatorHandle(host=host, port=int(outcome["port"]), _loop=loop, _thread=thread)
