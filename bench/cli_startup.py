"""How fast `runctl` commands start: `python -m bench.cli_startup`.

Each command is run `--runs` times after `--warmup` runs (as hyperfine does), in a new
process each time, against a Redis (`--redis-url`, or a private embedded one) and a
throwaway queue; the table gives the mean, standard deviation, min and median wall time
from spawn to exit. `watch` never exits: it is timed from spawn to its first line, with
one outcome already on the stream (`--from-start`). Then, once per command,
`python -X importtime` lists its most expensive imports and says whether Celery, kombu,
httpx or gevent were loaded (none should be, for these commands).

Issue 11's target: each command starts in at most 0.3 s on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench.machine import describe_machine
from orchestrator.core.models import Outcome, Result
from orchestrator.devkit.stage import open_redis
from orchestrator.store.outcomes import OutcomeStore

TARGET_S = 0.3
HEAVY = ("celery", "kombu", "httpx", "gevent", "aiohttp")
PROBE = (
    "import sys\n"
    "sys.argv = ['runctl', *sys.argv[1:]]\n"
    "try:\n"
    "    from orchestrator.cli import main\n"
    "    main()\n"
    "except SystemExit:\n"
    "    pass\n"
    "finally:\n"
    "    print('LOADED ' + ' '.join(sorted({m.split('.')[0] for m in sys.modules} & set("
    + repr(HEAVY)
    + "))), file=sys.stderr)\n"
)


def commands() -> dict[str, list[str]]:
    return {
        "--help": ["--help"],
        "cancel": ["cancel", "thread_bench", f"run_{uuid.uuid4().hex[:8]}"],
        "bulk status": ["bulk", "status", "bulk_nosuch"],
        "audit": ["audit", "--bulk", "bulk_nosuch"],
        "watch": ["watch", "--from-start"],
    }


def runctl(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "from orchestrator.cli import main; main()", *args]


def time_once(name: str, args: list[str], env: dict[str, str]) -> float:
    if name == "cancel":  # a fresh run each time: never "already in flight"
        args = [*args[:2], f"run_{uuid.uuid4().hex[:10]}"]
    started = time.monotonic()
    if name == "watch":
        with subprocess.Popen(
            runctl(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        ) as process:
            assert process.stdout is not None
            process.stdout.readline()
            elapsed = time.monotonic() - started
            process.terminate()
        return elapsed
    subprocess.run(runctl(args), env=env, capture_output=True, check=False)
    return time.monotonic() - started


def import_profile(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """The most expensive imports (cumulative µs) and which heavy packages were loaded."""
    if args[0] == "watch":
        args = ["watch", "--help"]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, *args],
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    rows: list[tuple[int, str]] = []
    loaded = ""
    for line in done.stderr.decode().splitlines():
        if line.startswith("LOADED"):
            loaded = line.removeprefix("LOADED").strip()
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if cumulative.strip().isdigit() and name.strip() != "orchestrator.cli":
            rows.append((int(cumulative), name.rstrip()))
    rows.sort(reverse=True)  # nested imports too: the chain down to what costs
    return {"top_imports_us": rows[:10], "heavy_loaded": loaded.split() if loaded else []}


def seed_outcome(url: str) -> None:
    client = redis.Redis.from_url(url)
    now = datetime.now(UTC)
    store = OutcomeStore(client, stream_maxlen=1000, keep_s=600, progress_keep_s=600)
    store.publish(
        Outcome(
            job_id=f"job_{uuid.uuid4().hex}",
            thread_id="thread_bench",
            run_id="run_bench",
            result=Result.CANCELLED,
            requested_at=now,
            finished_at=now,
            duration_s=0.0,
        ),
        provider="assistants",
    )
    client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--redis-url", default=None, help="a scratch Redis (jobs are queued)")
    parser.add_argument("--json", dest="json_output", action="store_true")
    options = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="runctl-startup-") as tmp:
        target = open_redis(stack, url=options.redis_url, directory=Path(tmp) / "redis")
        seed_outcome(target.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCTL_", "OPENAI_"))}
        queue = f"bench-startup-{uuid.uuid4().hex[:6]}"
        env.update(RUNCTL_REDIS_URL=target.url, RUNCTL_QUEUE_NAME=queue)
        load = os.getloadavg()
        for name, args in commands().items():
            for _ in range(options.warmup):
                time_once(name, args, env)
            times = [time_once(name, args, env) for _ in range(options.runs)]
            results[name] = {
                "mean_s": round(statistics.mean(times), 3),
                "stdev_s": round(statistics.stdev(times), 3) if len(times) > 1 else 0.0,
                "min_s": round(min(times), 3),
                "median_s": round(statistics.median(times), 3),
                "met": statistics.median(times) <= TARGET_S,
                **import_profile(args, env),
            }
        client = redis.Redis.from_url(target.url)
        client.delete(queue)
        client.close()
    report = {
        "machine": describe_machine().model_dump(),
        "load_avg_at_start": [round(x, 2) for x in load],
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "target_s": TARGET_S,
        "commands": results,
    }
    if options.json_output:
        print(json.dumps(report))
        return 0
    print(f"machine: {report['machine']}\nload average: {report['load_avg_at_start']}")
    for name, r in results.items():
        print(
            f"{name:<12} median {r['median_s']:.3f} s  mean {r['mean_s']:.3f} ± {r['stdev_s']:.3f}"
            f"  min {r['min_s']:.3f}  heavy loaded: {r['heavy_loaded'] or 'none'}"
        )
        for cumulative_us, module in r["top_imports_us"]:
            print(f"    {cumulative_us / 1000:7.1f} ms  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
