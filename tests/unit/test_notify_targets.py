"""Safe targets: https only, public addresses only, the checked address pinned; what an
HTTP answer means."""

from __future__ import annotations

import pytest

from orchestrator.notify.sender import classify
from orchestrator.notify.targets import UnsafeTarget, pin


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


def test_a_public_https_target_is_pinned_to_the_address_that_was_checked() -> None:
    target = pin("https://hooks.example.com/in?x=1", (), resolver("93.184.216.34"))
    assert target.url == "https://93.184.216.34/in?x=1"
    assert target.host_header == "hooks.example.com"
    assert target.sni_hostname == "hooks.example.com"


def test_a_port_and_an_ipv6_address_are_kept() -> None:
    target = pin("https://hooks.example.com:8443/", (), resolver("2606:4700::1"))
    assert target.url == "https://[2606:4700::1]:8443/"
    assert target.host_header == "hooks.example.com:8443"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not a public address"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget, match=reason):
        pin("https://hooks.example.com/", (), resolver(address))


def test_one_bad_address_among_good_ones_is_enough_to_refuse() -> None:
    with pytest.raises(UnsafeTarget, match="private"):
        pin("https://hooks.example.com/", (), resolver("93.184.216.34", "10.0.0.1"))


def test_a_literal_address_is_checked_too() -> None:
    with pytest.raises(UnsafeTarget, match="cloud metadata"):
        pin("https://169.254.169.254/latest/meta-data/", (), resolver())


def test_plain_http_only_for_allow_listed_hosts() -> None:
    with pytest.raises(UnsafeTarget, match="only https"):
        pin("http://hooks.example.com/", (), resolver("93.184.216.34"))
    target = pin("http://127.0.0.1:9000/in", ("127.0.0.1",), resolver())
    assert target.url == "http://127.0.0.1:9000/in"
    assert target.sni_hostname is None


def test_an_allow_listed_name_may_resolve_to_a_private_address() -> None:
    target = pin("https://receiver.internal/", ("receiver.internal",), resolver("10.0.0.7"))
    assert target.address == "10.0.0.7"


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError(-2, "Name or service not known")

    with pytest.raises(UnsafeTarget, match="cannot be resolved"):
        pin("https://nowhere.example/", (), fails)


def test_what_an_answer_means() -> None:
    assert classify(204, None, None).delivered
    redirect = classify(302, None, "http://169.254.169.254/latest/")
    assert not redirect.delivered
    assert not redirect.retry
    assert "169.254.169.254" in redirect.error
    busy = classify(429, "7", None)
    assert busy.retry
    assert busy.retry_after_s == 7.0
    assert classify(503, None, None).retry
    assert classify(408, None, None).retry
    gone = classify(410, None, None)
    assert not gone.retry
    assert not gone.delivered
