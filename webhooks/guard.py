"""Connect-time address guard: the URL check is applied again to every address the host resolves to, right
before connecting, and the connection goes to that checked address.

Checking a URL and then letting the HTTP client resolve the name again leaves a gap: a DNS answer that changes in
between (DNS rebinding) would deliver the webhook to a private service. Here the resolution that is checked is
the one that is used. TLS still verifies the certificate against the host name (httpcore sends it as SNI).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx


class AddressRefused(ValueError):
    """The host resolved to an address the URL check refuses."""

    code = "url_not_allowed"


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, checks each address with `url_check`, connects to the first that answers."""

    def __init__(self, url_check: Callable[[str], None], inner: httpcore.AsyncNetworkBackend | None = None):
        self._url_check = url_check
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            literal = f"[{address}]" if ":" in address else address
            try:
                self._url_check(f"http://{literal}:{port}/")
            except ValueError as e:
                raise AddressRefused(f"{host} resolves to {address}: {e}") from e
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(url_check: Callable[[str], None], limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go only to addresses `url_check` accepts."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        raise RuntimeError("this httpx version keeps its connection pool elsewhere; update webhooks.guard")
    # httpx builds its pool without a network-backend argument: build the same pool with the guarded backend.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(url_check),
    )
    return transport
