"""Which image URLs the gateway fetches. A URL is read strictly: anything malformed is the caller's
BadRequestImageUrl, never a server error. Each address its host resolves to is then judged: public addresses always,
private and loopback ones only where the settings open them, and never a port of the platform's own services on an
address of this machine (in local mode S3, MLflow, Triton, the controller and the gateway listen on loopback, where
image URLs are otherwise allowed). An IPv6 address that embeds an IPv4 one is judged by the IPv4 address, since
that is where a translator or tunnel delivers it."""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from kubevision.core.settings import GatewaySettings
from kubevision.gateway.errors import CustomVisionError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_HOST_LENGTH = 253  # DNS's limit on a name
_PORT_AFTER_BRACKET = re.compile(r"(:[0-9]*)?")
_NOT_IN_URLS = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace and controls (RFC 3986), and the backslash that
# browsers read as a slash: each makes a URL that different parsers read differently

# NAT64 (RFC 6052): the well-known prefix, and the local-use block whose prefix length each network picks.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
NAT64_LOCAL_USE_LENGTHS = (48, 56, 64, 96)


def url_error(message: str) -> CustomVisionError:
    return CustomVisionError(message, "BadRequestImageUrl")


@dataclass(frozen=True)
class Target:
    """Where an image URL points: its host in ASCII (IDNA for names, no brackets for IPv6) and its port."""

    scheme: str
    host: str
    port: int
    host_header: str  # the Host header the origin expects: the host as written (in ASCII), with an explicit port


def parse(url: object) -> Target:
    """The target of an absolute http(s) URL, or BadRequestImageUrl saying what is wrong with it."""
    if not isinstance(url, str) or not url:
        raise url_error("The image URL is missing.")
    if _NOT_IN_URLS.search(url):
        raise url_error("The image URL holds whitespace, a control character or a backslash.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # an unclosed bracket, a port out of range or not a number
        raise url_error(f"The image URL is malformed: {error}.") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise url_error("The image URL must be an absolute http or https URL.")
    if "@" in parts.netloc:
        raise url_error("The image URL must not hold a user name or password.")
    if port == 0:
        raise url_error("The image URL's port must be between 1 and 65535.")
    bracketed = parts.netloc.startswith("[")
    if bracketed and not _PORT_AFTER_BRACKET.fullmatch(parts.netloc.partition("]")[2]):
        raise url_error("The image URL has text between its IPv6 address and its port.")
    host = parts.hostname if bracketed else _ascii_host(parts.hostname)
    shown = f"[{host}]" if bracketed else host
    return Target(
        scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80),
        host_header=shown if port is None else f"{shown}:{port}",
    )


def _ascii_host(host: str) -> str:
    """The name as DNS sees it: IDNA-encoded, each label 1 to 63 characters, 253 in all."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as error:  # an empty or overlong label, a character IDNA forbids
        raise url_error(f"The image URL's host {host!r} is not a valid name: {error}.") from error
    if len(ascii_host.rstrip(".")) > MAX_HOST_LENGTH:
        raise url_error(f"The image URL's host is longer than {MAX_HOST_LENGTH} characters.")
    return ascii_host


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
    (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96, and 64:ff9b:1::/48 at each prefix
    length a network may use), 6to4 (2002::/16) and Teredo (2001::/32: its server and its client). Empty for
    every other address."""
    value = int(address)
    if address.ipv4_mapped:
        return [address.ipv4_mapped]
    if value >> 32 == 0xFFFF_0000:
        return [ipaddress.IPv4Address(value & 0xFFFF_FFFF)]
    if value >> 32 == 0 and not (address.is_unspecified or address.is_loopback):
        return [ipaddress.IPv4Address(value)]
    if address in NAT64_WELL_KNOWN:
        return [_rfc6052(address, 96)]
    if address in NAT64_LOCAL_USE:
        return [_rfc6052(address, length) for length in NAT64_LOCAL_USE_LENGTHS]
    if address.sixtofour:
        return [address.sixtofour]
    if address.teredo:
        return list(address.teredo)
    return []


def _rfc6052(address: ipaddress.IPv6Address, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address after a NAT64 prefix of this length: the four octets that follow it, skipping octet 8
    (bits 64 to 71, reserved by RFC 6052)."""
    octets = [i for i in range(prefix_length // 8, 16) if i != 8][:4]
    return ipaddress.IPv4Address(bytes(address.packed[i] for i in octets))


def allowed(address: Address, port: int, settings: GatewaySettings, platform_ports: Collection[int]) -> bool:
    """Whether an image URL may connect to `address` on `port`."""
    judged = (embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else []) or [address]
    if port in platform_ports and any(on_this_machine(a) for a in {address, *judged}):
        return False
    return all(_address_allowed(a, settings) for a in judged)


def _address_allowed(address: Address, settings: GatewaySettings) -> bool:
    if address.is_loopback:
        return settings.allow_loopback_urls or settings.allow_private_urls
    if address.is_global:
        return True
    return settings.allow_private_urls and not (address.is_multicast or address.is_unspecified)


def on_this_machine(address: Address) -> bool:
    """Loopback, unspecified (which connects to this machine), or an address of one of its interfaces: the
    kernel lets a socket bind only to those."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if isinstance(address, ipaddress.IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError as error:
        if error.errno == errno.EADDRNOTAVAIL:
            return False
        return True  # it cannot be told: judged as this machine's, the safe side
    return True
