"""How fast `runctl bulk-cancel FILE` queues: `python -m bench.bulk_enqueue`.

Writes a JSON-lines file of `--lines` runs, then times `runctl bulk-cancel FILE --json` end
to end as an operator runs it (a new process: start-up, reading, validating, admission,
queueing), with no worker running, and reads back what Redis holds per queued job (INFO
used_memory before and after, and MEMORY USAGE of the queue list). The peer, in the same
run: the same producer queueing `--peer-lines` jobs through Celery's `send_task`
(`workers.queue.CeleryQueue`, what `runctl` used before issue 11), in this process.

Uses its own Redis (`--redis-url`, or a private embedded one); each contender gets a fresh
database (FLUSHDB), so only an embedded or a scratch Redis is safe. Prints a table, or
with `--json` one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from bench.machine import describe_machine
from orchestrator.core.settings import Settings
from orchestrator.devkit.stage import open_redis
from orchestrator.service.producer import Producer
from orchestrator.service.targets import Problem, read_targets

TARGET_S = 5.0  # issue 11: 100,000 targets queued in at most this long
TARGET_BYTES_PER_JOB = 1024


def write_targets(path: Path, lines: int) -> None:
    prefix = uuid.uuid4().hex[:8]
    with path.open("w", encoding="utf-8") as out:
        for n in range(lines):
            out.write(json.dumps({"thread_id": f"thread_{prefix}_{n}", "run_id": f"run_{n}"}))
            out.write("\n")


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def ours(url: str, path: Path, lines: int, queue: str) -> dict[str, Any]:
    """`runctl bulk-cancel` in a new process, timed from spawn to exit."""
    client = redis.Redis.from_url(url)
    client.flushdb()
    before = used_memory(client)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCTL_", "OPENAI_"))}
    env.update(RUNCTL_REDIS_URL=url, RUNCTL_QUEUE_NAME=queue)
    runctl = [sys.executable, "-c", "from orchestrator.cli import main; main()"]
    started = time.monotonic()
    done = subprocess.run(
        [*runctl, "bulk-cancel", str(path), "--json"], env=env, capture_output=True, check=False
    )
    wall_s = time.monotonic() - started
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if done.returncode != 0:
        raise SystemExit(f"runctl bulk-cancel failed:\n{done.stderr.decode()[-2000:]}")
    summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
    queued = int(summary["queued"])
    after = used_memory(client)
    queue_bytes = int(client.memory_usage(queue) or 0)
    client.flushdb()
    client.close()
    return {
        "lines": lines,
        "queued": queued,
        "wall_s": round(wall_s, 2),
        "jobs_per_s": round(queued / wall_s),
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "redis_bytes_per_job": round((after - before) / max(1, queued)),
        "queue_list_bytes_per_job": round(queue_bytes / max(1, queued)),
    }


def peer(url: str, path: Path, lines: int, queue: str) -> dict[str, Any]:
    """The same producer, in this process, queueing through Celery's `send_task`."""
    from workers.queue import CeleryQueue  # imports Celery: the peer only

    client = redis.Redis.from_url(url)
    client.flushdb()
    before = used_memory(client)
    settings = Settings(redis_url=SecretStr(url), queue_name=queue)
    producer = Producer(settings, CeleryQueue(settings))
    problems: list[Problem] = []
    started = time.monotonic()
    with path.open(encoding="utf-8") as stream:
        head = (line for n, line in enumerate(stream) if n < lines)
        bulk_id = producer.bulk_cancel(read_targets(head), on_problem=problems.append)
    wall_s = time.monotonic() - started
    record = producer.bulks.get(bulk_id)
    queued = record.queued if record else 0
    after = used_memory(client)
    queue_bytes = int(client.memory_usage(queue) or 0)
    producer.close()
    client.flushdb()
    client.close()
    return {
        "lines": lines,
        "queued": queued,
        "wall_s": round(wall_s, 2),
        "jobs_per_s": round(queued / wall_s),
        "redis_bytes_per_job": round((after - before) / max(1, queued)),
        "queue_list_bytes_per_job": round(queue_bytes / max(1, queued)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_enqueue", description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--peer-lines", type=int, default=10_000, help="0: no peer")
    parser.add_argument("--redis-url", default=None, help="a scratch Redis (it is flushed)")
    parser.add_argument("--json", dest="json_output", action="store_true")
    options = parser.parse_args(argv)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="runctl-enqueue-") as tmp:
        workdir = Path(tmp)
        target = open_redis(stack, url=options.redis_url, directory=workdir / "redis")
        path = workdir / "targets.jsonl"
        write_targets(path, options.lines)
        load = os.getloadavg()
        queue = f"bench-enqueue-{uuid.uuid4().hex[:6]}"
        report: dict[str, Any] = {
            "machine": describe_machine().model_dump(),
            "load_avg_at_start": [round(x, 2) for x in load],
            "ours": ours(target.url, path, options.lines, queue),
        }
        if options.peer_lines:
            report["celery_send_task_peer"] = peer(target.url, path, options.peer_lines, queue)
        report["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    mine = report["ours"]
    report["checks"] = {
        f"{options.lines} queued in <= {TARGET_S:g} s": mine["wall_s"] <= TARGET_S,
        f"<= {TARGET_BYTES_PER_JOB} bytes per queued job": mine["redis_bytes_per_job"]
        <= TARGET_BYTES_PER_JOB,
    }
    if options.json_output:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
