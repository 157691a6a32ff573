"""A webhook receiver for the notifier's tests, run as its own process on 127.0.0.1.

    python -m tests.integration.notify_receiver [--fail-for-s S] [--redirect-to URL]
                                                [--delay-ms MS]

It prints its port on the first line of stdout, then serves any path. Every POST is
recorded on arrival (path, headers, body, and whether its Standard Webhooks signature
verifies with the secret in RECEIVER_SECRET, checked by the `standardwebhooks` library);
it is *processed* only the first time its `webhook-id` is seen (a de-duplicating
receiver). `GET /_received` returns what it saw. Faults: answer 500 for the first
`--fail-for-s` seconds after the first request; answer every request with a 302 to
`--redirect-to`; wait `--delay-ms` before answering.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


def make_app(args: argparse.Namespace) -> web.Application:
    secret = os.environ.get("RECEIVER_SECRET", "")
    verifier = Webhook(secret) if secret else None
    seen: list[dict[str, Any]] = []
    processed: set[str] = set()  # de-duplicated by webhook-id
    first_at: list[float] = []

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        verified = None
        if verifier is not None and "webhook-id" in request.headers:
            try:
                verifier.verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        msg_id = request.headers.get("webhook-id", "")
        seen.append({"path": request.path, "id": msg_id, "verified": verified,
                     "body": body.decode(errors="replace"),
                     "headers": {k.lower(): v for k, v in headers.items()}})  # fmt: skip
        if not first_at:
            first_at.append(time.monotonic())
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        if args.redirect_to:
            raise web.HTTPFound(args.redirect_to)
        if args.fail_for_s and time.monotonic() - first_at[0] < args.fail_for_s:
            return web.Response(status=500, text="not yet")
        if msg_id:
            processed.add(msg_id)
        return web.Response(status=204)

    async def received(request: web.Request) -> web.Response:
        return web.json_response({"requests": seen, "processed": sorted(processed)})

    app = web.Application()
    app.router.add_get("/_received", received)
    app.router.add_post("/{tail:.*}", receive)
    return app


async def main(args: argparse.Namespace) -> None:
    runner = web.AppRunner(make_app(args), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server: Any = site._server
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-for-s", type=float, default=0.0)
    parser.add_argument("--redirect-to", default="")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(0)
