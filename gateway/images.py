"""Prediction images: size and dimension limits checked before decoding in full, and image URLs fetched with a
timeout, a size cap, http(s) only, and (by default) never into private, loopback or link-local networks."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image

from kubevision.core.images import ImageProblem
from kubevision.core.images import decode as decode_image
from kubevision.core.settings import GatewaySettings
from kubevision.gateway.errors import CustomVisionError

IMAGE_CODES = {"bytes": "BadRequestImageSizeBytes", "pixels": "BadRequestImageDimensions",
               "format": "BadRequestImageFormat", "unreadable": "BadRequestImageFormat"}


def decode(data: bytes, settings: GatewaySettings) -> tuple[Image.Image, str]:
    """An upright RGB image, decoded as the trainer decodes (kubevision.core.images), and its MIME type."""
    if not data:
        raise CustomVisionError("The image is empty.", "BadRequestImageStream")
    try:
        image, image_format = decode_image(data, settings.max_image_bytes, settings.max_image_pixels)
    except ImageProblem as problem:
        raise CustomVisionError(f"The image cannot be used: {problem}", IMAGE_CODES[problem.kind]) from problem
    return image, Image.MIME[image_format]


def _url_error(message: str) -> CustomVisionError:
    return CustomVisionError(message, "BadRequestImageUrl")


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address, settings: GatewaySettings) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return settings.allow_loopback_urls or settings.allow_private_urls
    if address.is_global:
        return True
    return settings.allow_private_urls and not (address.is_multicast or address.is_unspecified)


async def _resolve(host: str, port: int, settings: GatewaySettings) -> str:
    """One address of `host` that the policy allows; every address it resolves to must be allowed, so that a
    name with one public and one private address cannot be used to reach the private one."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise _url_error(f"The image URL's host {host!r} cannot be resolved.") from error
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or not all(_allowed(a, settings) for a in addresses):
        raise _url_error(f"The image URL's host {host!r} is not reachable from this service.")
    return str(addresses[0])


async def fetch(url: str, client: httpx.AsyncClient, settings: GatewaySettings) -> bytes:
    """The image at `url`, following a few redirects, each checked as the first. The connection goes to the
    address that was checked (the Host header and TLS server name keep the original host), so a DNS answer that
    changes between the check and the request cannot redirect it."""
    try:
        async with asyncio.timeout(settings.url_timeout_seconds):
            for _ in range(settings.url_max_redirects + 1):
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise _url_error("The image URL must be an absolute http or https URL.")
                port = parts.port or (443 if parts.scheme == "https" else 80)
                address = await _resolve(parts.hostname, port, settings)
                host = f"[{address}]" if ":" in address else address
                pinned = parts._replace(netloc=f"{host}:{port}").geturl()
                request = client.build_request(
                    "GET", pinned, headers={"Host": parts.netloc.rsplit("@", 1)[-1]},
                    extensions={"sni_hostname": parts.hostname},
                )
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise _url_error(f"The image URL answered HTTP {response.status_code}.")
                    return await _read_capped(response, settings.max_image_bytes)
                finally:
                    await response.aclose()
            raise _url_error(f"The image URL redirected more than {settings.url_max_redirects} times.")
    except TimeoutError as error:
        raise _url_error(f"The image URL did not answer within {settings.url_timeout_seconds:g} s.") from error
    except httpx.HTTPError as error:
        raise _url_error(f"The image URL cannot be fetched: {type(error).__name__}.") from error


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise CustomVisionError(f"The image is {declared} bytes; the limit is {limit}.", "BadRequestImageSizeBytes")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise CustomVisionError(f"The image is over the limit of {limit} bytes.", "BadRequestImageSizeBytes")
        chunks.append(chunk)
    return b"".join(chunks)
