"""The broker connection for `rediss://` URLs: TLS on, certificates verified by default."""

from __future__ import annotations

import ssl

from pydantic import SecretStr

from orchestrator.core.settings import Settings
from workers.app import broker_endpoint, make_app
from workers.transport import Transport


def test_a_rediss_url_verifies_certificates_with_the_ca_it_names() -> None:
    url, tls = broker_endpoint("rediss://:pw@cache.example:6380/2?ssl_ca_certs=/etc/ca.pem")
    assert url == "rediss://:pw@cache.example:6380/2"
    assert tls == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/ca.pem"}


def test_verification_is_off_only_when_the_url_says_so() -> None:
    _, tls = broker_endpoint("rediss://cache.example:6380/0?ssl_cert_reqs=none")
    assert tls == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_a_plain_url_has_no_tls_and_is_left_alone() -> None:
    assert broker_endpoint("redis://:pw@localhost:6379/0?foo=1") == (
        "redis://:pw@localhost:6379/0?foo=1",
        None,
    )


def test_the_celery_connection_uses_our_transport_with_those_options() -> None:
    url = "rediss://:pw@cache.example:6380/2?ssl_ca_certs=/etc/ca.pem"
    app = make_app(Settings(redis_url=SecretStr(url)))
    connection = app.connection_for_read()
    try:
        assert connection.transport_cls == "workers.transport:Transport"
        assert isinstance(connection.transport, Transport)
        assert connection.ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/ca.pem"}
        assert connection.hostname == "cache.example"
    finally:
        connection.release()
        app.close()
