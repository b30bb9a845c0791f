"""Prediction images: size and dimension limits checked before decoding in full, and image URLs fetched with a
timeout, a size cap, http(s) only, and only to the addresses gateway/url_policy.py allows (by default never into
private, loopback or link-local networks, and never to the platform's own services)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Collection
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image

from kubevision.core.images import ImageProblem
from kubevision.core.images import decode as decode_image
from kubevision.core.settings import GatewaySettings
from kubevision.gateway import links, url_policy
from kubevision.gateway.errors import CustomVisionError, image_too_large
from kubevision.gateway.services.signed_files import SignedFiles
from kubevision.gateway.url_policy import url_error

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


async def _resolve(target: url_policy.Target, settings: GatewaySettings, platform_ports: Collection[int]) -> str:
    """One address of the target's host that the policy allows; every address it resolves to must be allowed, so
    that a name with one public and one private address cannot be used to reach the private one."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise url_error(f"The image URL's host {target.host!r} cannot be resolved.") from error
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or not all(url_policy.allowed(a, target.port, settings, platform_ports) for a in addresses):
        raise url_error(f"The image URL's host {target.host!r} is not reachable from this service.")
    return str(addresses[0])


async def fetch(url: str, client: httpx.AsyncClient, settings: GatewaySettings, *,
                platform_ports: Callable[[], Collection[int]]) -> bytes:
    """The image at `url`, following a few redirects, each checked as the first. The connection goes to the
    address that was checked (the Host header and TLS server name keep the original host), so a DNS answer that
    changes between the check and the request cannot redirect it. `platform_ports` names the ports of this
    machine's platform services (read at each fetch, as local mode may restart one on another port); the gateway's
    own port is always one."""
    try:
        async with asyncio.timeout(settings.url_timeout_seconds):
            reserved = {settings.port, *await asyncio.to_thread(platform_ports)}
            for _ in range(settings.url_max_redirects + 1):
                target = url_policy.parse(url)
                address = await _resolve(target, settings, reserved)
                host = f"[{address}]" if ":" in address else address
                pinned = urlsplit(url)._replace(netloc=f"{host}:{target.port}").geturl()
                request = client.build_request(
                    "GET", pinned, headers={"Host": target.host_header}, extensions={"sni_hostname": target.host},
                )
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise url_error(f"The image URL answered HTTP {response.status_code}.")
                    return await _read_capped(response, settings.max_image_bytes)
                finally:
                    await response.aclose()
            raise url_error(f"The image URL redirected more than {settings.url_max_redirects} times.")
    except TimeoutError as error:
        raise url_error(f"The image URL did not answer within {settings.url_timeout_seconds:g} s.") from error
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise url_error(f"The image URL cannot be fetched: {type(error).__name__}.") from error
    except ValueError as error:  # a redirect's Location that no parser above foresaw: still the URL's fault
        raise url_error(f"The image URL cannot be fetched: {error}.") from error


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise CustomVisionError(f"The image is {declared} bytes; the limit is {limit}.", "BadRequestImageSizeBytes")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise image_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class ImageFetcher:
    """Image URLs as prediction, quick tests and uploads read them: a link this gateway signed (an image's
    originalImageUri) from the store, through gateway/services/signed_files.py, and any other URL over HTTP under
    the URL policy."""

    def __init__(self, settings: GatewaySettings, http: httpx.AsyncClient, files: SignedFiles,
                 platform_ports: Callable[[], Collection[int]]):
        self.settings = settings
        self.http = http
        self.files = files
        self.platform_ports = platform_ports

    async def fetch(self, url: str, max_bytes: int | None = None) -> bytes:
        """The image at `url`, at most `max_bytes` (the settings' max_image_bytes unless given)."""
        settings = self.settings if max_bytes is None else self.settings.model_copy(
            update={"max_image_bytes": max_bytes})
        link = links.image_link(url)
        if link is None or not self.files.is_ours(link):
            return await fetch(url, self.http, settings, platform_ports=self.platform_ports)
        try:
            data = await self.files.image(link)
        except CustomVisionError as error:
            raise url_error(f"The image URL is a link of this service that cannot be read: {error.message}") from error
        if len(data) > settings.max_image_bytes:
            raise image_too_large(settings.max_image_bytes)
        return data
