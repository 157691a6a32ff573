"""`sentinel://` URLs: read once, for redis-py's Sentinel and for kombu's sentinel transport."""

from __future__ import annotations

import pytest
import redis.asyncio.sentinel
from pydantic import SecretStr

from orchestrator.core.errors import ConfigurationError
from orchestrator.core.settings import Settings
from orchestrator.devkit.embedded_redis import is_reachable
from orchestrator.store.client import (
    BlockingSentinelPool,
    SentinelUrl,
    async_redis_client,
    redis_client,
)
from workers.app import make_app
from workers.transport import SentinelTransport

URL = "sentinel://:p%40ss@s1:26380,s2,s3:26390/2?master_name=main"


def test_a_sentinel_url_names_the_sentinels_the_primary_and_the_database() -> None:
    endpoint = SentinelUrl.parse(URL)
    assert endpoint.sentinels == (("s1", 26380), ("s2", 26379), ("s3", 26390))
    assert (endpoint.master_name, endpoint.db, endpoint.password) == ("main", 2, "p@ss")
    assert "p@ss" not in repr(endpoint)
    assert (
        endpoint.kombu_url()
        == "sentinel://:p%40ss@s1:26380/2;sentinel://s2:26379;sentinel://s3:26390"
    )
    assert endpoint.kombu_options() == {"master_name": "main"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sentinel://s1:26379/0", "needs ?master_name=NAME"),
        ("sentinel://s1:26379/zero?master_name=m", "the database must be a number"),
        ("sentinel://s1:port/0?master_name=m", "a sentinel must be HOST:PORT"),
        ("sentinel://:secret@s1/0?master_name=m&ssl=true", "master_name and sentinel_password"),
    ],
)
def test_a_bad_sentinel_url_is_refused_naming_the_field_and_the_rule(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        SentinelUrl.parse(url)
    assert str(raised.value).startswith("RUNCTL_REDIS_URL: ")
    assert says in str(raised.value)
    assert "secret" not in str(raised.value)


def test_clients_follow_the_primary_the_sentinels_name() -> None:
    client = redis_client(Settings(redis_url=SecretStr(URL)))  # nothing connects yet
    pool = client.connection_pool
    assert isinstance(pool, BlockingSentinelPool)
    assert pool.service_name == "main"
    assert pool.connection_kwargs["db"] == 2
    addresses = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(a["host"], a["port"]) for a in addresses] == [
        ("s1", 26380),
        ("s2", 26379),
        ("s3", 26390),
    ]
    client.close()


def test_the_apis_asyncio_client_follows_the_primary_too() -> None:
    client = async_redis_client(Settings(redis_url=SecretStr(URL)))  # nothing connects yet
    pool = client.connection_pool
    assert isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool)
    assert (pool.service_name, pool.connection_kwargs["db"]) == ("main", 2)
    assert pool.connection_kwargs["password"] == "p@ss"


def test_the_queue_goes_through_our_transport_over_kombus_sentinel_channel() -> None:
    app = make_app(Settings(redis_url=SecretStr(URL)), worker_id="w1")
    connection = app.connection_for_read()
    try:
        assert isinstance(connection.transport, SentinelTransport)
        assert connection.alt == [
            "sentinel://:p%40ss@s1:26380/2",
            "sentinel://s2:26379",
            "sentinel://s3:26390",
        ]
        options = app.conf.broker_transport_options
        assert options["master_name"] == "main"
        assert options["runctl_worker_id"] == "w1"
    finally:
        connection.release()
        app.close()


def test_no_sentinel_answering_means_not_reachable_not_a_crash() -> None:
    # What `runctl demo` and the stage ask before starting an embedded Redis instead.
    assert not is_reachable("sentinel://127.0.0.1:1/0?master_name=m", timeout_s=0.2)
