"""The image installs requirements.runtime.lock: runtime dependencies only, pinned exactly
as in requirements.lock (the one the tests ran against)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
PIN = re.compile(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", re.MULTILINE)
DEV_TOOLS = {"pytest", "mypy", "ruff", "hypothesis", "import-linter", "celery-types", "openai"}


def _pins(name: str) -> dict[str, str]:
    return dict(PIN.findall((ROOT / name).read_text(encoding="utf-8")))


def test_the_runtime_lock_pins_what_the_full_lock_pins() -> None:
    runtime, full = _pins("requirements.runtime.lock"), _pins("requirements.lock")
    assert runtime
    assert {name: full.get(name) for name in runtime} == runtime


def test_the_runtime_lock_has_no_dev_tools_and_the_image_uses_it() -> None:
    assert not DEV_TOOLS & set(_pins("requirements.runtime.lock"))
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "-r requirements.runtime.lock" in dockerfile
    assert "-r requirements.lock" not in dockerfile
