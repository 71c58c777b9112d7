"""The set of GPU pods jobs go to: the static list, RunPod discovery, health and cooldown, round-robin.

Discovery uses RunPod's REST API v1: `GET {api}/endpoints/{endpointId}?includeWorkers=true` with
`Authorization: Bearer <RUNPOD_API_KEY>` answers the endpoint object whose `workers` array lists its pods
(`id`, `desiredStatus`, `ports` such as `"8888/http"`). A running pod is reached through RunPod's HTTP
proxy, `https://{podId}-{port}.proxy.runpod.net`. Discovered pods join the static list (deduplicated by URL);
an endpoint id whose lookup fails keeps its last known pods while the others refresh.

A target is a pod (the service's `/v1/jobs` API, or the legacy app) or a RunPod serverless endpoint
(`https://api.runpod.ai/v2/{endpointId}`: `/run`, `/status/{id}`), chosen per entry of the static list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from dispatch import constants as c

log = logging.getLogger(__name__)


class EndpointConfigError(ValueError):
    code = "endpoint_config_error"


class NoHealthyPod(RuntimeError):
    code = "no_healthy_pod"


class DiscoveryError(RuntimeError):
    code = "runpod_discovery_failed"


POD = "pod"
SERVERLESS = "serverless"
KINDS = (POD, SERVERLESS)


@dataclass(frozen=True)
class PodEndpoint:
    """One target: its base URL, the RunPod proxy token and its API key (both optional), and its kind:
    `pod` (the service, or the legacy app) or `serverless` (a RunPod serverless endpoint, whose API key
    goes in `Authorization: Bearer`)."""

    url: str
    token: str | None = None
    api_key: str | None = None
    source: str = "static"  # "static" | "runpod"
    kind: str = POD


HealthCheck = Callable[[PodEndpoint], Awaitable["str | None"]]  # None when healthy, else the reason
LookupFn = Callable[[], Awaitable[list[PodEndpoint]]]


def _looks_serverless(url: str) -> bool:
    """`https://api.runpod.ai/v2/{endpointId}`: RunPod's serverless API."""
    parts = urlsplit(url)
    return parts.hostname == c.RUNPOD_SERVERLESS_HOST and parts.path.startswith("/v2/")


def _endpoint(url: str, token: str | None, api_key: str | None, kind: str | None = None) -> PodEndpoint:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EndpointConfigError(f"SADTALKER_RUNPOD_ENDPOINTS: {url!r} is not an http(s) URL")
    kind = (kind or "").strip().lower() or (SERVERLESS if _looks_serverless(url) else POD)
    if kind not in KINDS:
        raise EndpointConfigError(f"SADTALKER_RUNPOD_ENDPOINTS: kind {kind!r} of {url} is not one of {', '.join(KINDS)}")
    return PodEndpoint(url, (token or "").strip() or None, (api_key or "").strip() or None, kind=kind)


def _from_item(item: object) -> PodEndpoint:
    if isinstance(item, str):
        url, token, api_key, kind = (item.split("|") + ["", "", ""])[:4]
        return _endpoint(url, token, api_key, kind)
    if isinstance(item, dict) and isinstance(item.get("url"), str):
        return _endpoint(item["url"], item.get("token"), item.get("apiKey") or item.get("api_key"),
                         item.get("kind") or item.get("type"))
    raise EndpointConfigError(
        f"SADTALKER_RUNPOD_ENDPOINTS: entry {item!r} is neither 'url|token|apiKey[|kind]' nor {{\"url\": ...}}")


def parse_static_endpoints(raw: str) -> list[PodEndpoint]:
    """`SADTALKER_RUNPOD_ENDPOINTS`: a JSON array (of `url|token|apiKey[|kind]` strings or
    `{url, token, apiKey, kind}` objects) or a comma-separated list of `url|token|apiKey[|kind]`. `kind` is
    `pod` or `serverless`; left out, URLs of `https://api.runpod.ai/v2/...` are serverless, others pods."""
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as e:
            raise EndpointConfigError(f"SADTALKER_RUNPOD_ENDPOINTS is not valid JSON: {e}") from e
    else:
        items = [part for part in raw.split(",") if part.strip()]
    return [_from_item(item) for item in items]


def _pod_port(pod: dict, preferred: int) -> int:
    """The pod's HTTP port: `preferred` when exposed, else its first `/http` port."""
    http_ports = [int(p.split("/")[0]) for p in pod.get("ports") or [] if str(p).endswith("/http")]
    return preferred if preferred in http_ports or not http_ports else http_ports[0]


async def discover_runpod(client: httpx.AsyncClient, *, api_url: str, api_key: str, endpoint_ids: Sequence[str],
                          proxy_url: str, pod_port: int, api_key_for_pods: str | None,
                          token_for_pods: str | None = None) -> dict[str, list[PodEndpoint] | DiscoveryError]:
    """Endpoint id -> its running pods as proxy URLs, or the DiscoveryError of its lookup (one failing id
    never hides the others' pods). `token_for_pods` is given to every pod (SADTALKER_TOKEN_QUERY)."""
    found: dict[str, list[PodEndpoint] | DiscoveryError] = {}
    for endpoint_id in endpoint_ids:
        url = f"{api_url.rstrip('/')}/endpoints/{endpoint_id}"
        try:
            resp = await client.get(url, params={"includeWorkers": "true"}, timeout=c.RUNPOD_API_TIMEOUT_S,
                                    headers={"Authorization": f"Bearer {api_key}"})
            resp.raise_for_status()
            workers = resp.json().get("workers") or []
            pods = [PodEndpoint(proxy_url.format(pod_id=pod["id"], port=_pod_port(pod, pod_port)).rstrip("/"),
                                token_for_pods, api_key_for_pods, "runpod")
                    for pod in workers if pod.get("desiredStatus") == "RUNNING" and pod.get("id")]
        except (httpx.HTTPError, ValueError, AttributeError, TypeError) as e:
            found[endpoint_id] = DiscoveryError(f"RunPod API lookup of endpoint {endpoint_id} failed: {e}")
            continue
        found[endpoint_id] = pods
    return found


@dataclass
class _Health:
    down_until: float = 0.0  # time.monotonic() seconds
    checked_at: float = -1e9
    reason: str = ""


@dataclass
class PodPool:
    """Round-robin over the healthy pods. A pod that fails a health check or a request cools down
    for `cooldown_s`; a passed health check is trusted for HEALTH_TTL_S."""

    static: list[PodEndpoint]
    cooldown_s: float
    discovered: list[PodEndpoint] | None = None  # None: discovery off or no lookup has worked yet
    _health: dict[str, _Health] = field(default_factory=dict)
    _next: int = 0

    @property
    def endpoints(self) -> list[PodEndpoint]:
        """The static targets, then the discovered pods not already listed (by URL)."""
        known = {ep.url for ep in self.static}
        return self.static + [ep for ep in self.discovered or [] if ep.url not in known]

    def mark_down(self, endpoint: PodEndpoint, reason: str) -> None:
        state = self._health.setdefault(endpoint.url, _Health())
        state.down_until = time.monotonic() + self.cooldown_s
        state.checked_at = -1e9
        state.reason = reason
        log.warning("pod %s skipped for %g s: %s", endpoint.url, self.cooldown_s, reason)

    def mark_up(self, endpoint: PodEndpoint) -> None:
        state = self._health.setdefault(endpoint.url, _Health())
        state.down_until = 0.0
        state.checked_at = time.monotonic()

    def _candidates(self, exclude: set[str]) -> list[PodEndpoint]:
        pods = self.endpoints
        if not pods:
            return []
        start = self._next % len(pods)
        self._next += 1
        now = time.monotonic()
        ordered = pods[start:] + pods[:start]
        return [p for p in ordered if p.url not in exclude
                and self._health.get(p.url, _Health()).down_until <= now]

    async def acquire(self, check: HealthCheck, exclude: set[str] | None = None) -> PodEndpoint:
        """The next healthy pod in round-robin order; `check(endpoint)` probes pods not checked lately."""
        exclude = exclude or set()
        for endpoint in self._candidates(exclude):
            state = self._health.get(endpoint.url)
            if state and time.monotonic() - state.checked_at < c.HEALTH_TTL_S:
                return endpoint
            problem = await check(endpoint)
            if problem is None:
                self.mark_up(endpoint)
                return endpoint
            self.mark_down(endpoint, problem)
        if not self.endpoints:
            raise NoHealthyPod("no pods configured: set SADTALKER_RUNPOD_ENDPOINTS or RUNPOD_ENDPOINT_IDS")
        now = time.monotonic()
        reasons = "; ".join(f"{p.url}: {self._health[p.url].reason}" for p in self.endpoints
                            if p.url in self._health and self._health[p.url].down_until > now)
        raise NoHealthyPod(f"no healthy pod among {len(self.endpoints)} ({reasons or 'all excluded'})")


async def refresh_forever(pool: PodPool, lookup: LookupFn, interval_s: float) -> None:
    """Keep `pool.discovered` current; a failed lookup keeps the last known pods until one works again."""
    while True:
        try:
            pool.discovered = await lookup()
            log.info("RunPod discovery: %d running pod(s)", len(pool.discovered))
        except DiscoveryError as e:
            log.warning("%s; keeping %d known pod(s) and the %d static endpoint(s)", e,
                        len(pool.discovered or []), len(pool.static))
        await asyncio.sleep(interval_s)


class Discovery:
    """A LookupFn over `discover_runpod` that remembers each endpoint id's last good pods: an id whose lookup
    fails keeps them (logged), the others refresh. Raises DiscoveryError only when every id fails and none
    was ever found."""

    def __init__(self, lookup: Callable[[], Awaitable[dict[str, list[PodEndpoint] | DiscoveryError]]]):
        self._lookup = lookup
        self.last: dict[str, list[PodEndpoint]] = {}

    async def __call__(self) -> list[PodEndpoint]:
        results = await self._lookup()
        errors = []
        for endpoint_id, outcome in results.items():
            if isinstance(outcome, DiscoveryError):
                errors.append(str(outcome))
                log.warning("%s; keeping its %d last known pod(s)", outcome, len(self.last.get(endpoint_id, [])))
            else:
                self.last[endpoint_id] = outcome
        if errors and len(errors) == len(results) and not self.last:
            raise DiscoveryError("; ".join(errors))
        pods = [ep for endpoint_id in results for ep in self.last.get(endpoint_id, [])]
        return list({ep.url: ep for ep in pods}.values())
