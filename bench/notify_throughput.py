"""How fast the notifier delivers: `python -m bench.notify_throughput [--outcomes 10000]`.

One go, on this machine: a private Redis (or `--redis-url`), a webhook receiver in its own
process (it verifies every signature, as a real one would), one `runctl notify run` process
with one webhook subscription; then N outcomes published at once through the workers' own
publish script, and the receiver polled until every one has arrived. Reports deliveries per
second (N over the time from the first publish to the last arrival) and the lag of each
event (its arrival minus its outcome's `finished_at`): p50, p99, max. Everything it started
is stopped on success, failure or Ctrl-C. Exit code 0 when every event arrived.
"""

from __future__ import annotations

import argparse
import base64
import math
import os
import secrets
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.table import Table

from orchestrator.core.models import Outcome, Result
from orchestrator.devkit.stage import Child, StartFailed, open_redis, spawn, wait_until
from orchestrator.store import keys
from orchestrator.store.outcomes import OutcomeStore

FOLLOW_TIMEOUT_S = 600.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def start_receiver(stack: ExitStack, directory: Path, secret: str) -> tuple[Child, int]:
    log_path = directory / "receiver.log"
    env = dict(os.environ, RECEIVER_SECRET=secret)
    child = spawn("receiver", [sys.executable, "-m", "bench.webhook_receiver"],
                  env=env, log_path=log_path)  # fmt: skip
    stack.callback(child.stop)

    def port_printed() -> bool:
        child.check_alive()
        return log_path.read_text().strip().split("\n")[0].isdigit()

    wait_until(port_printed, what="the webhook receiver")
    return child, int(log_path.read_text().split("\n")[0])


def start_notifier(
    stack: ExitStack, directory: Path, redis_url: str, url: str, secret: str, concurrency: int
) -> Child:
    config = directory / "runctl.toml"
    config.write_text(
        f'[notifier]\nallow_hosts = ["127.0.0.1"]\nconcurrency = {concurrency}\n\n'
        f'[[notify]]\nname = "bench"\nkind = "webhook"\nurl = "{url}"\n'
        f'secret_env = "BENCH_HOOK_SECRET"\nevents = ["run.outcome"]\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCTL_")}
    env.update(RUNCTL_REDIS_URL=redis_url, BENCH_HOOK_SECRET=secret, RUNCTL_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-m", "orchestrator", "notify", "run", "--config", str(config)]
    child = spawn("notifier", argv, env=env, log_path=directory / "notifier.log")
    stack.callback(child.stop)
    client = redis.Redis.from_url(redis_url)

    def grouped() -> bool:
        child.check_alive()
        try:
            return bool(client.xinfo_groups(keys.BULK_FINISHED))
        except redis.ResponseError:
            return False

    try:
        wait_until(grouped, what="the notifier's consumer groups")
    finally:
        client.close()
    return child


def publish(redis_url: str, count: int) -> float:
    """Publish `count` outcomes as fast as one client can; returns when the first went."""
    client = redis.Redis.from_url(redis_url)
    store = OutcomeStore(client, stream_maxlen=1_000_000, keep_s=3600, progress_keep_s=3600)
    started = time.time()
    try:
        for _ in range(count):
            job_id = f"job_{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            store.publish(Outcome(job_id=job_id, thread_id="thread_bench", run_id=job_id[4:20],
                                  result=Result.CANCELLED, requested_at=now, finished_at=now,
                                  duration_s=0.0), provider="assistants")  # fmt: skip
    finally:
        client.close()
    return started


def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="notify-bench-") as tmp:
        directory = Path(tmp)
        target = open_redis(stack, url=args.redis_url, directory=directory)
        receiver, port = start_receiver(stack, directory, secret)
        start_notifier(stack, directory, target.url, f"http://127.0.0.1:{port}/hook", secret,
                       args.concurrency)  # fmt: skip
        started = publish(target.url, args.outcomes)
        published_s = time.time() - started
        stats: dict[str, Any] = {}

        def all_arrived() -> bool:
            receiver.check_alive()
            stats.update(httpx.get(f"http://127.0.0.1:{port}/_stats", timeout=30).json())
            return bool(len(stats["arrivals"]) >= args.outcomes)

        wait_until(all_arrived, what="every delivery", timeout_s=FOLLOW_TIMEOUT_S)
    arrivals = stats["arrivals"]
    lags = [arrived - finished for arrived, finished in arrivals]
    span_s = max(arrived for arrived, _ in arrivals) - started
    return {
        "outcomes": args.outcomes, "concurrency": args.concurrency,
        "redis": "embedded" if target.embedded else "external",
        "publish_s": round(published_s, 2), "span_s": round(span_s, 2),
        "deliveries_per_s": round(args.outcomes / span_s, 1),
        "lag_p50_s": round(percentile(lags, 0.50), 3),
        "lag_p99_s": round(percentile(lags, 0.99), 3), "lag_max_s": round(max(lags), 3),
        "requests": stats["requests"], "unverified": stats["unverified"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outcomes", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16, help="[notifier] concurrency")
    parser.add_argument("--redis-url", default=None, help="default: a private embedded Redis")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except StartFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        import json

        print(json.dumps(result))
    else:
        table = Table("measure", "value", title="notifier throughput (one webhook)")
        for name, value in result.items():
            table.add_row(name, str(value))
        Console().print(table)
    return 0 if result["unverified"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
