"""`workers/transport.py` overrides and calls private parts of kombu's Redis transport. Each
one is checked here against the installed kombu, so an upgrade that renames or reshapes one
fails in CI, not at a worker's first fetch in production."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.scheduling import cycle_by_name

from workers import transport

# (owner, name, the parameters it must take, in order)
OVERRIDDEN_OR_CALLED: list[tuple[type[Any], str, list[str]]] = [
    (kombu_redis.Channel, "_brpop_start", ["self", "timeout"]),
    (kombu_redis.Channel, "_brpop_read", ["self", "options"]),
    (kombu_redis.Channel, "_poll_error", ["self", "type", "options"]),
    (kombu_redis.Channel, "_flush_brpop_reauth", ["self"]),
    (kombu_redis.Channel, "conn_or_acquire", ["self", "client"]),
    (kombu_redis.QoS, "append", ["self", "message", "delivery_tag"]),
    (kombu_redis.QoS, "restore_visible", ["self", "start", "num", "interval"]),
    (kombu_redis.QoS, "ack", ["self", "delivery_tag"]),
    (kombu_redis.QoS, "reject", ["self", "delivery_tag", "requeue"]),
    (virtual.QoS, "ack", ["self", "delivery_tag"]),
    (virtual.Channel, "_lookup", ["self", "exchange", "routing_key", "default"]),
    (virtual.Transport, "_deliver", ["self", "message", "queue"]),
]

# Attributes the transport reads on kombu's QoS (the unacked hash and its index).
QOS_ATTRIBUTES = [
    "unacked_key", "unacked_index_key", "pipe_or_acquire", "channel", "_delivered", "_dirty"
]  # fmt: skip

# Attributes the transport reads or sets on a channel, from kombu's own `__init__` or class.
CHANNEL_ATTRIBUTES = [
    "_queue_cycle",
    "_in_poll",
    "_brpop_sent_at",
    "global_keyprefix",
    "priority_steps",
    "brpop_timeout",
]


def _parameters(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_kombu_is_the_minor_series_the_transport_was_written_against() -> None:
    installed = version("kombu")
    major_minor = tuple(int(part) for part in installed.split(".")[:2])
    assert major_minor == (5, 7), f"kombu {installed}: re-check workers/transport.py"
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"kombu>=5\.7(\.\d+)?,<5\.8"', pyproject)


@pytest.mark.parametrize(("owner", "name", "expected"), OVERRIDDEN_OR_CALLED)
def test_every_private_method_exists_with_the_expected_signature(
    owner: type[Any], name: str, expected: list[str]
) -> None:
    assert _parameters(getattr(owner, name)) == expected


@pytest.mark.parametrize("name", CHANNEL_ATTRIBUTES)
def test_every_private_channel_attribute_exists(name: str) -> None:
    source = inspect.getsource(kombu_redis.Channel)
    assert hasattr(kombu_redis.Channel, name) or f"self.{name} =" in source


@pytest.mark.parametrize("name", QOS_ATTRIBUTES)
def test_every_qos_attribute_exists(name: str) -> None:
    source = inspect.getsource(kombu_redis.QoS) + inspect.getsource(virtual.QoS)
    assert hasattr(kombu_redis.QoS, name) or f"self.{name} =" in source


def test_the_queue_cycle_has_the_methods_the_fetch_uses() -> None:
    cycle = cycle_by_name(kombu_redis.Channel.queue_order_strategy)
    for name in ("consume", "rotate"):
        assert callable(getattr(cycle, name, None)), name


def test_our_overrides_keep_kombus_signatures() -> None:
    for owner, ours in ((kombu_redis.Channel, transport.Channel), (kombu_redis.QoS, transport.QoS)):
        for name in ("_brpop_start", "_brpop_read", "_poll_error", "append", "ack", "reject"):
            if name in vars(ours):
                theirs = _parameters(getattr(owner, name))
                assert _parameters(getattr(ours, name)) == theirs, f"{ours.__name__}.{name}"


def test_the_sentinel_channel_is_ours_over_kombus_sentinel_channel() -> None:
    # Ours first (the atomic fetch), then kombu's sentinel part (finding the primary), then
    # kombu's plain channel; and kombu's sentinel channel overrides none of what we do.
    mro = transport.SentinelChannel.__mro__
    order = [transport.Channel, kombu_redis.SentinelChannel, kombu_redis.Channel]
    assert [mro.index(cls) for cls in order] == sorted(mro.index(cls) for cls in order)
    assert transport.SentinelTransport.Channel is transport.SentinelChannel
    assert issubclass(transport.SentinelTransport, kombu_redis.SentinelTransport)
    # Its connections are kombu's sentinel-managed kind, looking the primary up on reconnect.
    theirs = kombu_redis.SentinelChannel.connection_class
    assert theirs is not None
    assert issubclass(transport.SentinelChannel.connection_class, theirs)
    ours = {name for name in vars(transport.Channel) if not name.startswith("__")}
    assert not ours & set(vars(kombu_redis.SentinelChannel))
    assert _parameters(vars(kombu_redis.SentinelChannel)["_get_pool"]) == ["self", "asynchronous"]
