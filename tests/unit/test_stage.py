"""The stage's own rules: a clean worker environment, polled readiness with a deadline, a
dead child reported with its log, TERM then KILL. Children here are tiny Python scripts in
place of `runctl worker` (no Redis, no Celery)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from orchestrator.devkit import stage
from orchestrator.devkit.stage import Child, StartFailed, WorkerEnv, spawn, wait_until

SHOW_ENV_AND_FAIL = (
    "import os, sys; "
    "print(sorted(k for k in os.environ if k.startswith(('RUNCTL_', 'OPENAI_')))); "
    "sys.exit(3)"
)
SLEEP = "import time; time.sleep(60)"
IGNORE_TERM = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(60)"
)


def worker_env() -> WorkerEnv:
    return WorkerEnv(
        redis_url="redis://127.0.0.1:1/0",
        queue="q-test",
        base_url="http://127.0.0.1:1/v1",
        api_key="sim-key-test",
        settings={"RUNCTL_DEFAULT_DEADLINE_S": "60"},
    )


def python(tmp_path: Path, code: str, name: str = "child") -> Child:
    return spawn(
        name, [sys.executable, "-c", code], env=stage.base_env(), log_path=tmp_path / "c.log"
    )


def test_a_worker_gets_nothing_from_the_shells_runctl_or_openai_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNCTL_WORKER_CONCURRENCY", "not-a-number")
    monkeypatch.setenv("OPENAI_ORGANIZATION", "org-from-the-shell")
    monkeypatch.setenv("SOMETHING_ELSE", "x")
    monkeypatch.setenv("PATH", "/bin:/usr/bin")

    env = worker_env().env()

    assert env["PATH"] == "/bin:/usr/bin"
    assert {k for k in env if k.startswith(("RUNCTL_", "OPENAI_"))} == {
        "RUNCTL_REDIS_URL",
        "RUNCTL_QUEUE_NAME",
        "RUNCTL_DEFAULT_DEADLINE_S",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
    }
    assert "SOMETHING_ELSE" not in env
    assert env["OPENAI_API_KEY"] == "sim-key-test"


def test_settings_win_over_the_named_fields() -> None:
    env = WorkerEnv("redis://a/0", "q", "http://b/v1", "k", {"RUNCTL_QUEUE_NAME": "other"})
    assert env.env()["RUNCTL_QUEUE_NAME"] == "other"


def test_the_producer_sees_the_workers_settings_and_no_api_key() -> None:
    settings = worker_env().producer_settings()
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:1/0"
    assert settings.queue_name == "q-test"
    assert settings.default_deadline_s == 60.0
    assert settings.api_key is None


def test_wait_until_gives_up_at_the_deadline() -> None:
    with pytest.raises(StartFailed, match=r"the thing was not ready after 0\.2 s"):
        wait_until(lambda: False, what="the thing", timeout_s=0.2, interval_s=0.01)


def test_wait_until_returns_once_the_probe_holds() -> None:
    answers = iter([False, False, True])
    wait_until(lambda: next(answers), what="x", timeout_s=10, interval_s=0.001)
    assert next(answers, None) is None


def test_a_dead_child_is_reported_with_its_log(tmp_path: Path) -> None:
    child = python(tmp_path, "import sys; print('bad config: port'); sys.exit(3)")
    child.process.wait()
    with pytest.raises(StartFailed, match=r"(?s)child exited with code 3:.*bad config: port"):
        child.check_alive()


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    child = python(tmp_path, IGNORE_TERM)
    wait_until(lambda: "up" in child.log(), what="the child", timeout_s=30)
    child.stop(grace_s=0.2)
    assert child.process.returncode == -signal.SIGKILL


def test_stop_ends_a_well_behaved_child_with_sigterm(tmp_path: Path) -> None:
    child = python(tmp_path, SLEEP)
    child.stop()
    assert child.process.returncode == -signal.SIGTERM
    child.stop()  # again: nothing left to do


def test_a_worker_that_dies_while_starting_fails_the_start_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNCTL_FROM_THE_SHELL", "1")
    monkeypatch.setattr(
        stage, "worker_argv", lambda name, **_: [sys.executable, "-c", SHOW_ENV_AND_FAIL]
    )

    with pytest.raises(StartFailed) as failed:
        stage.start_workers(worker_env(), ["w1@t"], ready=lambda _: False, log_dir=tmp_path)

    assert "w1@t exited with code 3" in str(failed.value)
    assert "RUNCTL_QUEUE_NAME" in str(failed.value)  # the log's tail: what the child saw
    assert "RUNCTL_FROM_THE_SHELL" not in str(failed.value)


def test_workers_that_never_get_ready_are_all_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Child] = []

    def spawn_and_note(*args: object, **kwargs: object) -> Child:
        child = spawn(*args, **kwargs)  # type: ignore[arg-type]
        started.append(child)
        return child

    monkeypatch.setattr(stage, "spawn", spawn_and_note)
    monkeypatch.setattr(stage, "worker_argv", lambda name, **_: [sys.executable, "-c", SLEEP])

    with pytest.raises(StartFailed, match="worker a@t was not ready after"):
        stage.start_workers(
            worker_env(),
            ["a@t", "b@t"],
            ready=lambda _: False,
            log_dir=tmp_path,
            ready_timeout_s=0.3,
        )

    assert [c.process.returncode for c in started] == [-signal.SIGTERM, -signal.SIGTERM]


def test_readiness_is_asked_by_worker_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stage, "worker_argv", lambda name, **_: [sys.executable, "-c", SLEEP])
    asked: list[str] = []

    def ready(name: str) -> bool:
        asked.append(name)
        return True

    workers = stage.start_workers(worker_env(), ["a@t", "b@t"], ready=ready, log_dir=tmp_path)
    try:
        assert asked == ["a@t", "b@t"]
        assert [w.log_path.name for w in workers] == ["a@t.log", "b@t.log"]
    finally:
        for worker in workers:
            worker.stop()
