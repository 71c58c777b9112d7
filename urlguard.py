"""Safe fetching of client-supplied URLs: http(s) only, public addresses only, size and time caps.

Every redirect hop is re-checked, and the address the connection actually reached is checked again, so a
DNS answer that changes between the check and the connection cannot reach a private service.
Imports nothing of ours (the API and the dispatcher use it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path
from urllib.parse import urljoin, urlparse

import httpx

# Cloud metadata endpoints, refused even when private addresses are allowed.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
CHUNK_BYTES = 64 * 1024


class BlockedURL(ValueError):
    code = "url_not_allowed"


class FetchFailed(RuntimeError):
    code = "fetch_failed"


class TooLarge(FetchFailed):
    code = "payload_too_large"


def _address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private address"
    return None


def check_address(ip: str, *, allow_private: bool = False) -> None:
    """Refuses an IP address literal that is not a public unicast address (see `check_url`)."""
    problem = _address_problem(ipaddress.ip_address(ip.split("%", 1)[0]), allow_private)
    if problem:
        raise BlockedURL(f"{ip} is {problem}; only public addresses may be fetched")


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raises BlockedURL (FetchFailed when the host does not resolve) unless `url` is http(s) and every address its host resolves to is public.

    Private, loopback, link-local, multicast, unspecified and cloud-metadata addresses are refused;
    `allow_private=True` (tests, private networks) still refuses metadata, multicast and unspecified.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise BlockedURL(f"only http and https URLs are accepted, got {parsed.scheme or 'no'} scheme")
    if not parsed.hostname:
        raise BlockedURL(f"URL has no host: {url!r}")
    if parsed.username or parsed.password:
        raise BlockedURL("URLs with credentials are not accepted")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        infos = socket.getaddrinfo(parsed.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as e:
        raise FetchFailed(f"cannot resolve host {parsed.hostname!r}: {e}") from e
    for info in infos:
        try:
            check_address(str(info[4][0]), allow_private=allow_private)
        except BlockedURL as e:
            raise BlockedURL(f"{parsed.hostname} resolves to {e}") from None


def _check_peer(response: httpx.Response, allow_private: bool) -> None:
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer:
        check_address(str(peer[0]), allow_private=allow_private)


async def fetch_to_file(
    client: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout_s: float,
    allow_private: bool = False,
    max_redirects: int = 3,
) -> int:
    """Downloads `url` into `dest` and returns its size in bytes.

    Follows at most `max_redirects` redirects itself, checking each hop; stops reading as soon as the body
    passes `max_bytes` (TooLarge) or the whole fetch passes `timeout_s` (FetchFailed). `dest` is removed on
    failure.
    """
    try:
        return await asyncio.wait_for(
            _fetch(client, url, dest, max_bytes, allow_private, max_redirects), timeout=timeout_s
        )
    except TimeoutError as e:
        dest.unlink(missing_ok=True)
        raise FetchFailed(f"fetching {url} took longer than {timeout_s:g} s") from e
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


async def _fetch(
    client: httpx.AsyncClient, url: str, dest: Path, max_bytes: int, allow_private: bool, max_redirects: int
) -> int:
    for _hop in range(max_redirects + 1):
        await asyncio.to_thread(check_url, url, allow_private=allow_private)
        try:
            async with client.stream("GET", url, follow_redirects=False) as response:
                _check_peer(response, allow_private)
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed(f"{url} answered a redirect without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"{url} answered HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise TooLarge(f"{url} is {declared} bytes, more than the limit of {max_bytes}")
                return await _stream_to_file(response, dest, max_bytes, url)
        except httpx.HTTPError as e:
            raise FetchFailed(f"fetching {url} failed: {e.__class__.__name__}: {e}") from e
    raise FetchFailed(f"{url}: more than {max_redirects} redirects")


async def _stream_to_file(response: httpx.Response, dest: Path, max_bytes: int, url: str) -> int:
    size = 0
    with dest.open("wb") as out:
        async for chunk in response.aiter_bytes(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"{url} is larger than the limit of {max_bytes} bytes")
            out.write(chunk)
    return size
