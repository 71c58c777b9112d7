"""Static endpoint parsing, RunPod discovery against a RunPod-shaped API on loopback, health and round-robin."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from dispatch_servers import FakeRunPod, serve

from dispatch.endpoints import (
    DiscoveryError,
    EndpointConfigError,
    NoHealthyPod,
    PodEndpoint,
    PodPool,
    discover_runpod,
    parse_static_endpoints,
    refresh_forever,
)
from dispatch.settings import DispatchSettings


def test_static_list_comma_and_json_forms():
    comma = parse_static_endpoints("https://a-8888.proxy.runpod.net|tok|key1, http://10.0.0.2:8888/")
    assert comma == [PodEndpoint("https://a-8888.proxy.runpod.net", "tok", "key1"),
                     PodEndpoint("http://10.0.0.2:8888", None, None)]
    as_json = parse_static_endpoints('["https://a.example|t|k", {"url": "https://b.example", "apiKey": "k2"}]')
    assert as_json == [PodEndpoint("https://a.example", "t", "k"), PodEndpoint("https://b.example", None, "k2")]
    assert parse_static_endpoints("  ") == []


@pytest.mark.parametrize("raw", ["[not json", "ftp://x|t", '[{"token": "no url"}]', "just-a-host"])
def test_static_list_errors_name_the_variable(raw):
    with pytest.raises(EndpointConfigError, match="SADTALKER_RUNPOD_ENDPOINTS"):
        parse_static_endpoints(raw)


def test_settings_read_the_description_variables(monkeypatch):
    monkeypatch.setenv("SADTALKER_REDIS_URL", "redis://redis:6379/2")
    monkeypatch.setenv("SADTALKER_WORKER_CONCURRENCY", "3")
    monkeypatch.setenv("SADTALKER_RUNPOD_API_KEY", "rp")
    monkeypatch.setenv("RUNPOD_ENDPOINT_IDS", "e1, e2")
    monkeypatch.setenv("SADTALKER_TOKEN_QUERY", "true")
    monkeypatch.setenv("SADTALKER_REMOTE_CREATE_PATH", "generate_talking_video")
    s = DispatchSettings()
    assert (s.redis_url, s.worker_concurrency, s.runpod_api_key) == ("redis://redis:6379/2", 3, "rp")
    assert s.runpod_endpoint_id_list == ["e1", "e2"] and s.discovery_enabled and s.token_query
    assert s.legacy_pods and s.remote_create_path == "/generate_talking_video"
    assert s.job_timeout_ms == 8 * 60 * 1000 and s.runpod_refresh_ms == 60_000 and s.queue_name == "sadtalker"
    with pytest.raises(ValueError, match="SADTALKER_RUNPOD_PROXY_URL"):
        DispatchSettings(SADTALKER_RUNPOD_PROXY_URL="https://{podId}.proxy.runpod.net")
    monkeypatch.setenv("API_KEYS", "changeme")
    with pytest.raises(ValueError, match="placeholder"):
        DispatchSettings()


async def test_discovery_lists_running_pods_as_proxy_urls():
    api = FakeRunPod("rp-key", {"ep1": [("pod1", 8888, "RUNNING"), ("pod2", 8888, "EXITED")],
                                "ep2": [("pod3", 7000, "RUNNING")]})
    with serve(api.handler()) as url:
        async with httpx.AsyncClient() as client:
            found = await discover_runpod(client, api_url=f"{url}/v1", api_key="rp-key", endpoint_ids=["ep1", "ep2"],
                                          proxy_url="https://{pod_id}-{port}.proxy.runpod.net", pod_port=8888,
                                          api_key_for_pods="pod-key")
            assert [p.url for p in found] == ["https://pod1-8888.proxy.runpod.net",
                                              "https://pod3-7000.proxy.runpod.net"]
            assert all(p.api_key == "pod-key" and p.source == "runpod" for p in found)
            with pytest.raises(DiscoveryError, match="ep1"):
                await discover_runpod(client, api_url=f"{url}/v1", api_key="wrong", endpoint_ids=["ep1"],
                                      proxy_url="x", pod_port=1, api_key_for_pods=None)


async def test_failed_discovery_falls_back_to_the_static_list():
    static = [PodEndpoint("http://static.example")]
    pool = PodPool(static, cooldown_s=1)
    results: list = [[PodEndpoint("http://live.example", source="runpod")], DiscoveryError("RunPod API down")]

    async def lookup():
        outcome = results.pop(0) if results else DiscoveryError("still down")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    task = asyncio.create_task(refresh_forever(pool, lookup, interval_s=0.05))
    await asyncio.sleep(0.01)
    assert [p.url for p in pool.endpoints] == ["http://live.example"]
    await asyncio.sleep(0.08)
    assert pool.endpoints == static
    task.cancel()


async def test_round_robin_skips_unhealthy_pods_for_the_cooldown():
    pods = [PodEndpoint(f"http://pod{i}") for i in range(3)]
    pool = PodPool(pods, cooldown_s=0.2)
    sick = {"http://pod1"}
    checks: list[str] = []

    async def check(ep: PodEndpoint) -> str | None:
        checks.append(ep.url)
        return "readyz 503" if ep.url in sick else None

    picked = [(await pool.acquire(check)).url for _ in range(4)]
    assert picked == ["http://pod0", "http://pod2", "http://pod2", "http://pod0"]
    assert checks.count("http://pod1") == 1  # cooling down: not probed again
    sick.clear()
    await asyncio.sleep(0.25)
    assert {(await pool.acquire(check)).url for _ in range(3)} == {p.url for p in pods}
    with pytest.raises(NoHealthyPod, match="all excluded"):
        await pool.acquire(check, exclude={p.url for p in pods})
    with pytest.raises(NoHealthyPod, match="no pods configured"):
        await PodPool([], cooldown_s=1).acquire(check)
