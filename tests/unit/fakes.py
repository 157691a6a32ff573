"""Hand-built stand-ins for unit tests of pure logic: a clock that sleeps instantly, and a
provider that plays back a script."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.core.models import Run
from orchestrator.providers.base import (
    ASSISTANTS_DIALECT,
    Dialect,
    ProviderError,
    ProviderReply,
    RunPage,
)

START_S = 1_700_000_000.0


@dataclass
class FakeClock:
    """Epoch seconds that advance only when `sleep` is called; records every sleep."""

    now_s: float = START_S
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


Step = ProviderReply | ProviderError | Callable[[], ProviderReply]


def reply(status: str, *, poll_after_s: float | None = None) -> ProviderReply:
    return ProviderReply(Run(id="run_1", thread_id="thread_1", status=status), poll_after_s)


def cannot_cancel(status: str) -> ProviderError:
    return ProviderError(
        f"Cannot cancel run with status '{status}'.",
        http_status=400,
        type="invalid_request_error",
        refused_status=status,  # as the Assistants dialect reads this refusal
    )


@dataclass
class ScriptedProvider:
    """Answers cancel and retrieve from two scripts; the last retrieve step repeats."""

    cancels: list[Step] = field(default_factory=list)
    retrieves: list[Step] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    dialect: Dialect = ASSISTANTS_DIALECT

    def cancel(self, thread_id: str | None, run_id: str) -> ProviderReply:
        self.calls.append("cancel")
        return _play(self.cancels, repeat_last=False)

    def retrieve(self, thread_id: str | None, run_id: str) -> ProviderReply:
        self.calls.append("retrieve")
        return _play(self.retrieves, repeat_last=True)

    def list_runs(self, thread_id: str, *, after: str | None = None, limit: int = 100) -> RunPage:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _play(script: list[Step], *, repeat_last: bool) -> ProviderReply:
    assert script, "the provider was called more often than the test scripted"
    step = script[0] if repeat_last and len(script) == 1 else script.pop(0)
    if isinstance(step, ProviderError):
        raise step
    if isinstance(step, ProviderReply):
        return step
    return step()
