"""Safe targets: where the notifier may send, decided before each request.

A URL must be `https`, and its host must resolve only to public addresses (not private,
loopback, link-local, multicast, reserved, or a cloud metadata address), unless the host
is named in `[notifier] allow_hosts`. The request then goes to the very address that was
checked (the URL's host replaced by it, `Host` and TLS SNI kept as the name), so a DNS
answer that changes between the check and the connect (rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from orchestrator.core.errors import RunctlError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
"""Cloud instance metadata (AWS, GCP, Azure, and AWS's IPv6 one): credentials live there."""

DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeTarget(RunctlError):
    """The notifier refused to send there: fix the URL, or allow-list the host."""


@dataclass(frozen=True)
class PinnedTarget:
    """A checked destination: connect to `url` (its host is the checked address), send
    `host_header`, and verify TLS for `sni_hostname`."""

    url: str
    host: str
    address: str
    host_header: str
    sni_hostname: str | None


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def forbidden_reason(address: Address) -> str | None:
    """Why an address may not be a target (unless allow-listed), or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden_reason(address.ipv4_mapped)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for bad, reason in checks if bad), None)


def pin(url: str, allow_hosts: Iterable[str], resolve: Resolver = system_resolve) -> PinnedTarget:
    """Check `url` and choose the address to connect to; UnsafeTarget says why not."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in DEFAULT_PORTS:
        raise UnsafeTarget("the URL must be absolute, http or https")
    allowed = host in set(allow_hosts)
    if parts.scheme != "https" and not allowed:
        raise UnsafeTarget(f"{host}: only https is allowed (or list the host in allow_hosts)")
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolve(host, port)]
        except OSError as exc:
            raise UnsafeTarget(f"{host}: cannot be resolved ({exc.strerror or exc})") from None
    if not addresses:
        raise UnsafeTarget(f"{host}: resolves to no address")
    if not allowed:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason:
                raise UnsafeTarget(f"{host} resolves to {address}, {reason}: refused")
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    named = f"[{host}]" if ":" in host else host
    host_header = f"{named}:{parts.port}" if parts.port else named
    return PinnedTarget(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host=host, address=str(chosen), host_header=host_header,
        sni_hostname=host if parts.scheme == "https" else None,
    )  # fmt: skip
