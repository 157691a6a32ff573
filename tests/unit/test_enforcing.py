"""The worker's enforcement: the policy file read once and again only when it changes, a
missing file logged once, the provider client built once for every pass."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import redis

from orchestrator.core.connections import Connection
from orchestrator.core.settings import Settings
from tests.unit.fakes import ScriptedProvider
from workers.enforcing import Enforcing, PolicySource

ONE_RULE = """
[[rule]]
name = "{name}"
max_age = {{ in_progress = "1h" }}
"""


def _write(path: Path, name: str, *, mtime_ns: int) -> None:
    path.write_text(ONE_RULE.format(name=name), encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_the_file_is_read_again_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "runctl.toml"
    _write(path, "first", mtime_ns=1_000_000_000)
    source = PolicySource(path)
    first = source.current()
    assert first is not None
    assert first.rule[0].name == "first"

    _write(path, "other", mtime_ns=1_000_000_000)  # same size and time: not read again
    assert source.current() is first
    _write(path, "later", mtime_ns=2_000_000_000)
    later = source.current()
    assert later is not None
    assert later.rule[0].name == "later"


def test_a_missing_file_is_logged_once_and_picked_up_when_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runctl.toml"
    source = PolicySource(path)
    with caplog.at_level(logging.WARNING, logger="workers.enforcing"):
        assert [source.current() for _ in range(3)] == [None, None, None]
    assert sum("no policy file" in r.getMessage() for r in caplog.records) == 1
    _write(path, "arrived", mtime_ns=3_000_000_000)
    arrived = source.current()
    assert arrived is not None
    assert arrived.rule[0].name == "arrived"


def test_an_invalid_file_keeps_the_policies_last_read_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runctl.toml"
    _write(path, "good", mtime_ns=1_000_000_000)
    source = PolicySource(path)
    good = source.current()
    path.write_text("[[rule]]\nname = 3\n", encoding="utf-8")
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    with caplog.at_level(logging.ERROR, logger="workers.enforcing"):
        assert source.current() is good
        assert source.current() is good
    assert sum("refused" in r.getMessage() for r in caplog.records) == 1


def test_one_provider_client_serves_every_pass(tmp_path: Path) -> None:
    path = tmp_path / "runctl.toml"
    _write(path, "first", mtime_ns=1_000_000_000)
    settings = Settings(policies_file=str(path))
    built: list[ScriptedProvider] = []

    def make_runs(connection: Connection) -> ScriptedProvider:
        built.append(ScriptedProvider([]))
        return built[-1]

    client = redis.Redis()  # never called here: nothing connects
    enforcing = Enforcing(settings, client, lambda jobs: [], make_runs=make_runs)
    first = enforcing.enforcer()
    again = enforcing.enforcer()
    _write(path, "second", mtime_ns=2_000_000_000)
    changed = enforcing.enforcer()
    clients = [enforcing.clients.get("openai")[0] for _ in range(2)]  # the default connection

    assert len(built) == 1
    assert clients == [built[0], built[0]]
    assert first is not None
    assert again is first
    assert changed is not None
    assert changed.policies.rule[0].name == "second"
    assert changed.fetch is first.fetch  # the same client and limiter behind it
