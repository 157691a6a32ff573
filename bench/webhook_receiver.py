"""The benchmark's webhook receiver, a process of its own: `python -m bench.webhook_receiver`.

Prints its port, then accepts POSTs on any path: verifies each signature with the
`standardwebhooks` library (the secret in RECEIVER_SECRET), keeps the first arrival of each
`webhook-id` (epoch s) with the outcome's `finished_at`, and answers 204. `GET /_stats`
returns `{"arrivals": [[arrival_s, finished_at_s], ...], "requests": n, "unverified": n}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


def make_app() -> web.Application:
    verifier = Webhook(os.environ["RECEIVER_SECRET"])
    first: dict[str, tuple[float, float]] = {}
    counts = {"requests": 0, "unverified": 0}

    async def receive(request: web.Request) -> web.Response:
        arrived_s = time.time()
        body = await request.read()
        counts["requests"] += 1
        try:
            verifier.verify(body, dict(request.headers), json_parse=False)
        except WebhookVerificationError:
            counts["unverified"] += 1
            return web.Response(status=401)
        msg_id = request.headers["webhook-id"]
        if msg_id not in first:
            finished = json.loads(body)["data"].get("finished_at")
            finished_s = datetime.fromisoformat(finished).timestamp() if finished else arrived_s
            first[msg_id] = (arrived_s, finished_s)
        return web.Response(status=204)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"arrivals": list(first.values()), **counts})

    app = web.Application()
    app.router.add_get("/_stats", stats)
    app.router.add_post("/{tail:.*}", receive)
    return app


async def main() -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
