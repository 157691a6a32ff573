"""Watching processes during a measurement: peak memory, CPU time, jobs in flight.

A daemon thread samples each process's resident set size every
`interval_s` and keeps the peak; CPU seconds are read once at start and once at stop, so
they cost nothing in between.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict

MIB = 2**20


class Usage(BaseModel):
    """What one process used between start and stop."""

    model_config = ConfigDict(frozen=True)

    name: str
    peak_rss_mib: float
    cpu_s: float  # user + system


@dataclass
class _Watched:
    name: str
    process: Any  # psutil.Process; psutil ships no types
    cpu_at_start_s: float
    cpu_s: float = 0.0
    peak_rss: int = 0


class Sampler:
    """Samples the named processes (name -> pid) until `stop()`; a context manager.

    `inflight` is an optional probe counting the jobs in flight; its peak is kept too.
    """

    def __init__(
        self,
        pids: Mapping[str, int],
        *,
        interval_s: float = 0.2,
        inflight: Callable[[], int] | None = None,
    ) -> None:
        self._watched = [
            _Watched(name, process, _cpu_s(process))
            for name, process in ((name, psutil.Process(pid)) for name, pid in pids.items())
        ]
        self._interval_s = interval_s
        self._inflight = inflight
        self.peak_inflight: int | None = None
        self._busy_at_start_s = _machine_busy_s()
        self.machine_busy_s = 0.0  # every process's CPU time, ours and others', once stopped
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> list[Usage]:
        """Stop sampling (idempotent) and return each process's usage, in the given order."""
        if not self._stopped.is_set():
            self._stopped.set()
            self._thread.join()
            self._sample()
            self.machine_busy_s = round(_machine_busy_s() - self._busy_at_start_s, 2)
            for watched in self._watched:
                # A process that died leaves its CPU time unknown: the run failed anyway.
                with contextlib.suppress(psutil.Error):
                    watched.cpu_s = _cpu_s(watched.process) - watched.cpu_at_start_s
        return [
            Usage(name=w.name, peak_rss_mib=round(w.peak_rss / MIB, 1), cpu_s=round(w.cpu_s, 2))
            for w in self._watched
        ]

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self._sample()

    def _sample(self) -> None:
        for watched in self._watched:
            try:
                watched.peak_rss = max(watched.peak_rss, _rss(watched.process))
            except psutil.Error:
                continue
        if self._inflight is not None:
            count = self._inflight()
            self.peak_inflight = max(self.peak_inflight or 0, count)


def _rss(process: Any) -> int:
    # The process alone: the benchmark's own children are the other watched processes.
    return int(process.memory_info().rss)


def _cpu_s(process: Any) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _machine_busy_s() -> float:
    """CPU seconds all cores spent not idle since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))
