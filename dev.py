#!/usr/bin/env python3
"""Bootstrap and run: needs only Python 3.11+. Installs the locked dependencies into .venv.

python3 dev.py demo     the main job on embedded defaults (see README)
python3 dev.py test     the one quality gate: lint, format, types, import layers, all tests
python3 dev.py runctl   any runctl command, e.g. `python3 dev.py runctl cancel T R --wait`
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("RUNCTL_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".runctl-installed"
PYTEST_NO_TESTS = 5


def main(argv: list[str]) -> int:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command in {"help", "-h", "--help"}:
        print(__doc__)
        return 0
    ensure_venv()
    if command == "demo":
        return run([str(BIN / "runctl"), "demo", *rest])
    if command == "runctl":
        return run([str(BIN / "runctl"), *rest])
    if command in {"test", "check"}:
        return gate(rest)
    sys.stderr.write(f"unknown command {command!r}\n{__doc__}")
    return 2


def gate(pytest_args: list[str]) -> int:
    """Lint, format check, type check, import contracts, then every test; the first failure
    stops it."""
    steps = [
        [str(PYTHON), "-m", "ruff", "check", "."],
        [str(PYTHON), "-m", "ruff", "format", "--check", "."],
        [str(PYTHON), "-m", "mypy"],
        [str(BIN / "lint-imports")],  # the layers (contracts in pyproject.toml)
    ]
    for step in steps:
        shown = step[1:] if step[0] == str(PYTHON) else [Path(step[0]).name, *step[1:]]
        print(f"\n$ {' '.join(shown)}", flush=True)
        if code := run(step):
            return code
    print("\n$ pytest", flush=True)
    code = run([str(PYTHON), "-m", "pytest", *pytest_args])
    if code == PYTEST_NO_TESTS:
        sys.stderr.write("pytest ran no test: that is a failure\n")
        return 1
    return code


def ensure_venv() -> None:
    """Create .venv and install requirements.lock (hash-checked) when it changed."""
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        check([sys.executable, "-m", "venv", str(VENV)])
    print("installing locked dependencies (first run only; about a minute)", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    check([*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")])
    check([*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)])
    STAMP.write_text(wanted)


def fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def run(cmd: list[str]) -> int:
    return subprocess.call(cmd, cwd=ROOT)


def check(cmd: list[str]) -> None:
    if code := run(cmd):
        sys.exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
