"""What a result was measured on: a benchmark figure means nothing without its machine."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import psutil
from pydantic import BaseModel, ConfigDict

CPUINFO = Path("/proc/cpuinfo")


class Machine(BaseModel):
    model_config = ConfigDict(frozen=True)

    platform: str
    python: str
    cpu_model: str
    cores: int  # logical CPUs the OS reports
    ram_gib: float
    date_utc: str


def describe_machine() -> Machine:
    """This machine, now."""
    return Machine(
        platform=platform.platform(),
        python=platform.python_version(),
        cpu_model=cpu_model(),
        cores=os.cpu_count() or 0,
        ram_gib=round(float(psutil.virtual_memory().total) / 2**30, 1),
        date_utc=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def cpu_model() -> str:
    """The first `model name` of /proc/cpuinfo, else what `platform` knows."""
    try:
        lines = CPUINFO.read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return platform.processor() or "unknown"
