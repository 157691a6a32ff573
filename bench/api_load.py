"""The HTTP API under load: `python -m bench.api_load [--rps 200] [--seconds 30]
[--sse-rate 1000] [--sse-seconds 10]`.

One go, on this machine: a private Redis (or `--redis-url`), one `runctl serve` process.

1. Mixed load, open loop: `--rps` requests/s for `--seconds`, each sent at its slot
   whatever the earlier ones are doing (so a slow server shows as latency, not as a lower
   rate): 80 % reads (`GET /v1/cancels/{job_id}` of a job queued earlier, alternating with
   `GET /v1/bulk/{id}`), 20 % cancels (`POST /v1/cancels` of a new run each). No worker
   runs: cancels stay queued, which is what the API's side of a cancel costs. Reports the
   rate achieved and p50 / p99 / max latency per kind.
2. The SSE feed: one client on `/v1/outcomes/stream` while outcomes are published through
   the workers' own publish script at `--sse-rate`/s for `--sse-seconds`; reports how many
   arrived, the rate, and the lag (arrival minus publish) p50 / p99 / max.

Exit code 0 when reads' p99 <= 100 ms, every request answered 2xx, and every outcome arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.machine import describe_machine
from orchestrator.core.access import hash_token
from orchestrator.core.models import Outcome, Result
from orchestrator.devkit.embedded_redis import free_port
from orchestrator.devkit.stage import Child, StartFailed, open_redis, spawn, wait_until
from orchestrator.store.outcomes import OutcomeStore

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_P99_TARGET_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def start_serve(stack: ExitStack, directory: Path, redis_url: str) -> tuple[Child, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCTL_", "OPENAI_"))}
    tokens = [{"name": "bench", "role": "admin", "sha256": hash_token(TOKEN)}]
    env.update(
        RUNCTL_REDIS_URL=redis_url, RUNCTL_API_TOKENS_JSON=json.dumps(tokens),
        RUNCTL_API_RATE_LIMIT_RPS="100000", RUNCTL_CONFIG=str(directory / "none.toml"),
        RUNCTL_QUEUE_NAME=f"bench-{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    argv = [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)]
    child = spawn("serve", argv, env=env, log_path=directory / "serve.log")
    stack.callback(child.stop)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        child.check_alive()
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, what="runctl serve")
    return child, base


def summary(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {"count": 0}
    ms = [x * 1000 for x in latencies_s]
    return {"count": len(ms), "p50_ms": round(percentile(ms, 0.5), 1),
            "p99_ms": round(percentile(ms, 0.99), 1), "max_ms": round(max(ms), 1)}  # fmt: skip


async def mixed_load(base: str, rps: float, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, headers=AUTH, limits=limits, timeout=30) as http:
        seed = await http.post("/v1/cancels", json={"thread_id": "thread_seed", "run_id": "r0"})
        job_id = seed.json()["job_id"]
        bulk = await http.post("/v1/bulk", json=[{"thread_id": "thread_seed", "run_id": "r1"}])
        bulk_id = bulk.json()["bulk_id"]
        reads: list[float] = []
        cancels: list[float] = []
        failures: list[int] = []

        async def one(n: int) -> None:
            started = time.perf_counter()
            if n % 5 == 4:
                reply = await http.post(
                    "/v1/cancels", json={"thread_id": "thread_load", "run_id": f"run_{n}"}
                )
                bucket = cancels
            else:
                path = f"/v1/cancels/{job_id}" if n % 2 else f"/v1/bulk/{bulk_id}"
                reply = await http.get(path)
                bucket = reads
            bucket.append(time.perf_counter() - started)
            if not reply.is_success:
                failures.append(reply.status_code)

        total = int(rps * seconds)
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = start + n / rps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"requests": total, "seconds": round(elapsed, 2),
            "achieved_rps": round(total / elapsed, 1), "failures": len(failures),
            "reads": summary(reads), "cancels": summary(cancels)}  # fmt: skip


def sse_feed(base: str, redis_url: str, rate: float, seconds: float) -> dict[str, Any]:
    count = int(rate * seconds)
    published: dict[str, float] = {}
    lags: list[float] = []
    ready = threading.Event()

    def publish() -> None:
        client = redis.Redis.from_url(redis_url)
        store = OutcomeStore(client, stream_maxlen=1_000_000, keep_s=3600, progress_keep_s=3600)
        ready.wait(30)
        start = time.perf_counter()
        for n in range(count):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            job_id = f"job_{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            published[job_id] = time.perf_counter()
            store.publish(Outcome(job_id=job_id, thread_id="thread_sse", run_id=job_id[4:20],
                                  result=Result.CANCELLED, requested_at=now, finished_at=now,
                                  duration_s=0.0), provider="openai")  # fmt: skip
        client.close()

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    first = last = 0.0
    with (
        httpx.Client(base_url=base, headers=AUTH, timeout=60) as http,
        http.stream("GET", "/v1/outcomes/stream") as feed,
    ):
        ready.set()
        for line in feed.iter_lines():
            if not line.startswith("data: "):
                continue
            now = time.perf_counter()
            job_id = json.loads(line[6:])["job_id"]
            if job_id in published:
                lags.append(now - published[job_id])
                first = first or now
                last = now
            if len(lags) >= count:
                break
    publisher.join(timeout=30)
    return {"published": count, "received": len(lags),
            "received_per_s": round(len(lags) / max(last - first, 1e-9), 1),
            "lag": summary(lags)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rps", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--sse-rate", type=float, default=1000.0)
    parser.add_argument("--sse-seconds", type=float, default=10.0)
    parser.add_argument("--redis-url", default=None, help="default: a private embedded Redis")
    args = parser.parse_args(argv)
    try:
        with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
            directory = Path(tmp)
            target = open_redis(stack, url=args.redis_url, directory=directory)
            _, base = start_serve(stack, directory, target.url)
            load = asyncio.run(mixed_load(base, args.rps, args.seconds))
            sse = sse_feed(base, target.url, args.sse_rate, args.sse_seconds)
    except StartFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = {"machine": describe_machine().model_dump(), "load_avg": os.getloadavg(),
              "mixed": load, "sse": sse}  # fmt: skip
    print(json.dumps(result, indent=2))
    ok = (
        load["failures"] == 0
        and load["reads"]["p99_ms"] <= READ_P99_TARGET_MS
        and sse["received"] == sse["published"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
