"""Static endpoint parsing, RunPod discovery against a RunPod-shaped API on loopback, health and round-robin."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from dispatch_servers import FakeRunPod, serve

from dispatch.endpoints import (
    SERVERLESS,
    Discovery,
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


def test_serverless_endpoints_are_chosen_per_entry():
    found = parse_static_endpoints(
        "https://api.runpod.ai/v2/abc123||rp-key, http://10.0.0.9:8000||k|serverless, https://pod-8888.x||k|pod")
    assert [(ep.url, ep.kind) for ep in found] == [
        ("https://api.runpod.ai/v2/abc123", "serverless"), ("http://10.0.0.9:8000", "serverless"),
        ("https://pod-8888.x", "pod")]
    (ep,) = parse_static_endpoints('[{"url": "https://sls.example/v2/e1", "kind": "serverless", "apiKey": "k"}]')
    assert ep.kind == SERVERLESS and ep.api_key == "k"
    with pytest.raises(EndpointConfigError, match="kind 'lambda'"):
        parse_static_endpoints("https://x.example||k|lambda")


@pytest.mark.parametrize("raw", ["[not json", "ftp://x|t", '[{"token": "no url"}]', "just-a-host", "http://x|||db"])
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
                                          api_key_for_pods="pod-key", token_for_pods="rp-token")
            assert {k: [p.url for p in v] for k, v in found.items()} == {
                "ep1": ["https://pod1-8888.proxy.runpod.net"], "ep2": ["https://pod3-7000.proxy.runpod.net"]}
            pods = found["ep1"] + found["ep2"]
            assert all(p.api_key == "pod-key" and p.source == "runpod" and p.token == "rp-token" for p in pods)
            failed = await discover_runpod(client, api_url=f"{url}/v1", api_key="wrong", endpoint_ids=["ep1"],
                                           proxy_url="x", pod_port=1, api_key_for_pods=None)
            assert isinstance(failed["ep1"], DiscoveryError) and "ep1" in str(failed["ep1"])


async def test_one_failing_endpoint_id_keeps_the_others_and_its_last_pods():
    api = FakeRunPod("rp-key", {"ep1": [("pod1", 8888, "RUNNING")], "ep2": [("pod2", 8888, "RUNNING")]})
    with serve(api.handler()) as url:
        async with httpx.AsyncClient() as client:
            ids = ["ep1", "ep2", "ep-missing"]

            async def lookup():
                return await discover_runpod(client, api_url=f"{url}/v1", api_key="rp-key", endpoint_ids=ids,
                                             proxy_url="http://{pod_id}.example:{port}", pod_port=8888,
                                             api_key_for_pods=None)

            discovery = Discovery(lookup)
            assert [p.url for p in await discovery()] == ["http://pod1.example:8888", "http://pod2.example:8888"]
            api.workers["ep2"] = [("pod2", 8888, "RUNNING"), ("pod4", 8888, "RUNNING")]
            del api.workers["ep1"]  # ep1's lookup now fails: its last pods stay, ep2 refreshes
            assert [p.url for p in await discovery()] == [
                "http://pod1.example:8888", "http://pod2.example:8888", "http://pod4.example:8888"]
            ids[:] = ["ep-missing"]
            discovery = Discovery(lookup)
            with pytest.raises(DiscoveryError, match="ep-missing"):
                await discovery()


async def test_static_and_discovered_pods_are_merged_without_duplicates():
    static = [PodEndpoint("http://static.example"), PodEndpoint("http://both.example", api_key="static-key")]
    pool = PodPool(static, cooldown_s=1)
    results: list = [[PodEndpoint("http://live.example", source="runpod"),
                      PodEndpoint("http://both.example", source="runpod")], DiscoveryError("RunPod API down")]

    async def lookup():
        outcome = results.pop(0) if results else DiscoveryError("still down")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert pool.endpoints == static  # before any lookup
    task = asyncio.create_task(refresh_forever(pool, lookup, interval_s=0.05))
    await asyncio.sleep(0.01)
    assert [(p.url, p.source) for p in pool.endpoints] == [
        ("http://static.example", "static"), ("http://both.example", "static"), ("http://live.example", "runpod")]
    await asyncio.sleep(0.08)  # failed lookups keep the last known pods
    assert [p.url for p in pool.endpoints] == ["http://static.example", "http://both.example", "http://live.example"]
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


@pytest.mark.parametrize(("token_query", "proxy_token", "expected"), [
    (False, "", None), (True, "", "rp-key"), (True, "proxy-token", "proxy-token")])
async def test_discovered_pods_get_the_proxy_token_when_it_goes_in_the_query(token_query, proxy_token, expected):
    from dispatch.worker import Dispatcher

    api = FakeRunPod("rp-key", {"ep1": [("pod1", 8888, "RUNNING")]})
    with serve(api.handler()) as url:
        dispatcher = Dispatcher(DispatchSettings(runpod_api_key="rp-key", runpod_endpoint_ids="ep1",
                                                 runpod_api_url=f"{url}/v1", token_query=token_query,
                                                 runpod_proxy_token=proxy_token))
        async with httpx.AsyncClient() as dispatcher.http:
            (pod,) = (await dispatcher._discover())["ep1"]
    assert pod.token == expected
