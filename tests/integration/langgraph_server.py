"""LangGraph's own server (`langgraph dev`, from langgraph-cli[inmem] in the dev extra),
offline, on a free port, serving `langgraph_app/sleeper.py`.

It runs from a fresh temporary directory (it writes `.langgraph_api/` into its working
directory and resumes old runs from it), with absolute graph paths (it resolves them from
its working directory), telemetry and version checks off, and no LangSmith key.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.harness import wait_for

APP_DIR = Path(__file__).resolve().parent / "langgraph_app"
READY_TIMEOUT_S = 90.0
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
}
KEY_VARIABLES = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_API_KEY")


@dataclass(frozen=True)
class LangGraphServer:
    base_url: str
    log_path: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def langgraph_dev(workdir: Path) -> Iterator[LangGraphServer]:
    """Start `langgraph dev` in `workdir` and yield once `/ok` answers; stop it on exit."""
    config = workdir / "langgraph.json"
    config.write_text(json.dumps({
        "dependencies": [str(APP_DIR)],
        "graphs": {"sleeper": f"{APP_DIR / 'sleeper.py'}:graph"},
    }))  # fmt: skip
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES} | OFFLINE_ENV
    log_path = workdir / "langgraph-dev.log"
    binary = Path(sys.executable).parent / "langgraph"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "dev", "--config", str(config), "--no-browser", "--no-reload",
             "--host", "127.0.0.1", "--port", str(port), "--n-jobs-per-worker", "4"],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"langgraph dev exited:\n{log_path.read_text()[-3000:]}")
        log_text = log_path.read_text(errors="replace")
        if f"127.0.0.1:{port}" not in log_text and "already in use" in log_text:
            raise AssertionError(f"port {port} was taken; langgraph dev moved elsewhere")
        try:
            return httpx.get(f"{base_url}/ok", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, timeout_s=READY_TIMEOUT_S, interval_s=0.2, what="langgraph dev /ok")
        yield LangGraphServer(base_url, log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
