"""The `/_sim` routes: seed runs, read counters and the request log, change knobs, reset.

They need no API key, are not counted as API traffic, and answer errors in the same
`{"error": {...}}` shape as the API (400 for an invalid body, naming the field in `param`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import Field, ValidationError, model_validator

from orchestrator.devkit.simulator import errors
from orchestrator.devkit.simulator.config import SimulatorConfig
from orchestrator.devkit.simulator.errors import ApiError
from orchestrator.devkit.simulator.runtime import Runtime
from orchestrator.devkit.simulator.state import IdStyle, RunSpec
from orchestrator.devkit.simulator.wire import dumps, error_body, parse_object

SEED_MAX_COUNT = 100_000
REDACTED = "***"
LOG_FILTERS = ("run_id", "thread_id", "route", "method")

Handler = Callable[[web.Request], Awaitable[web.Response]]


class SeedRequest(RunSpec):
    """`POST /_sim/runs`: `count` runs as the `RunSpec` fields say, all in `thread_id`,
    or `runs_per_thread` to a new thread, or else one new thread per run."""

    count: int = Field(default=1, ge=1, le=SEED_MAX_COUNT)
    ids: IdStyle = "openai"  # "uuid" for langgraph, "response" for Responses
    thread_id: str | None = None
    runs_per_thread: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_grouping(self) -> SeedRequest:
        if self.thread_id is not None and self.runs_per_thread is not None:
            raise ValueError("give thread_id or runs_per_thread, not both")
        return self


class Admin:
    """The `/_sim` handlers, sharing the API's `Runtime`. Each may raise `ApiError` or
    pydantic's `ValidationError`; `add_routes` turns both into error responses."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def seed_runs(self, request: web.Request) -> web.Response:
        seed = SeedRequest.model_validate(parse_object(await request.read()))
        spec = RunSpec.model_validate(
            seed.model_dump(exclude={"count", "thread_id", "runs_per_thread", "ids"})
        )
        runs = self.runtime.state.seed(
            spec, count=seed.count, thread_id=seed.thread_id,
            runs_per_thread=seed.runs_per_thread, ids=seed.ids,
        )  # fmt: skip
        return _json({"runs": [{"thread_id": run.thread_id, "run_id": run.id} for run in runs]})

    async def stats(self, request: web.Request) -> web.Response:
        return _json(self.runtime.state.stats())

    async def requests(self, request: web.Request) -> web.Response:
        """The request log, oldest first, filtered by any of `run_id`, `thread_id`,
        `route`, `method` and `status` given in the query string."""
        query = request.query
        wanted: dict[str, Any] = {name: query[name] for name in LOG_FILTERS if name in query}
        if "status" in query:
            try:
                wanted["status"] = int(query["status"])
            except ValueError:
                raise errors.invalid_param("status", "Invalid 'status'.") from None
        entries = [
            record._asdict()
            for record in self.runtime.state.traffic.log
            if all(getattr(record, name) == value for name, value in wanted.items())
        ]
        return _json({"requests": entries})

    async def settled(self, request: web.Request) -> web.Response:
        """Cancelled runs with the unix time each settles at, from the `after`-th on."""
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise errors.invalid_param("after", "Invalid 'after'.") from None
        return _json({"runs": self.runtime.state.settled_runs(after=max(0, after))})

    async def settle(self, request: web.Request) -> web.Response:
        return _json({"settled": self.runtime.state.settle_now()})

    async def get_config(self, request: web.Request) -> web.Response:
        return _json(_public_config(self.runtime.config))

    async def patch_config(self, request: web.Request) -> web.Response:
        config = self.runtime.update_config(parse_object(await request.read()))
        return _json(_public_config(config))

    async def reset(self, request: web.Request) -> web.Response:
        """Forget runs, counters and the log. A body `{"config": {...}}` also replaces the
        config by those knobs over the defaults; without it the config stays."""
        body = parse_object(await request.read())
        config = None
        if body.get("config") is not None:
            config = SimulatorConfig.model_validate(body["config"])
        self.runtime.reset(config)
        return _json({"ok": True, "config": _public_config(self.runtime.config)})

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})


def add_routes(app: web.Application, runtime: Runtime) -> None:
    """Mount the admin routes on `app`."""
    admin = Admin(runtime)
    router = app.router
    router.add_post("/_sim/runs", _guarded(admin.seed_runs))
    router.add_get("/_sim/stats", _guarded(admin.stats))
    router.add_get("/_sim/requests", _guarded(admin.requests))
    router.add_get("/_sim/settled", _guarded(admin.settled))
    router.add_post("/_sim/settle", _guarded(admin.settle))
    router.add_get("/_sim/config", _guarded(admin.get_config))
    router.add_patch("/_sim/config", _guarded(admin.patch_config))
    router.add_post("/_sim/reset", _guarded(admin.reset))
    router.add_get("/_sim/health", _guarded(admin.health))


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except ApiError as error:
            return _json(error_body(error), status=error.status)
        except ValidationError as error:
            return _json(error_body(errors.invalid_fields(error)), status=400)

    return guarded


def _public_config(config: SimulatorConfig) -> dict[str, Any]:
    # The key is a secret even in a simulator: demos sometimes reuse a real-looking one.
    return {**config.model_dump(), "api_key": REDACTED}


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(payload), status=status, content_type="application/json")
