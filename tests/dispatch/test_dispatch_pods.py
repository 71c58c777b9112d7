"""How the pod client authenticates (X-API-Key, RunPod token header or query) and resolves video URLs."""

from __future__ import annotations

import httpx

from dispatch.endpoints import PodEndpoint
from dispatch.pods import PodClient, RemoteJobFailed, find_video_url
from dispatch.settings import DispatchSettings

EP = PodEndpoint("https://abc123-8888.proxy.runpod.net", token="rp-token", api_key="endpoint-key")


def client(**settings) -> PodClient:
    return PodClient(httpx.AsyncClient(), DispatchSettings(**settings))


def test_token_goes_in_the_authorization_header_by_default():
    assert client()._auth(EP) == ({"X-API-Key": "endpoint-key", "Authorization": "Bearer rp-token"}, {})


def test_token_query_and_remote_api_key_override():
    headers, params = client(token_query=True, remote_api_key="global-key")._auth(EP)
    assert headers == {"X-API-Key": "global-key"} and params == {"token": "rp-token"}


def test_video_url_is_made_absolute_and_carries_the_token_when_asked():
    job = {"id": "job_1", "status": "succeeded", "result": {"video_url": "/v1/jobs/job_1/video"}}
    assert client().video_url(EP, job) == f"{EP.url}/v1/jobs/job_1/video"
    assert client(token_query=True).video_url(EP, job) == f"{EP.url}/v1/jobs/job_1/video?token=rp-token"
    s3 = {"result": {"video_url": "https://bucket.s3.amazonaws.com/v.mp4?X-Amz-Signature=1"}}
    assert client(token_query=True).video_url(EP, s3) == s3["result"]["video_url"]


def test_permanent_and_retryable_pod_errors():
    assert RemoteJobFailed("no_face_detected", "no face").permanent
    assert not RemoteJobFailed("interrupted", "pod restarted").permanent
    assert str(RemoteJobFailed("timeout", "too slow")) == "timeout: too slow"


async def test_health_probe_path_and_probing_off():
    from dispatch_servers import RecordingServer, serve

    recorder = RecordingServer()
    with serve(recorder.handler()) as url:
        ep = PodEndpoint(url)
        async with httpx.AsyncClient() as http:
            assert await PodClient(http, DispatchSettings()).health(ep) == "/readyz answered 503"
            probe = PodClient(http, DispatchSettings(remote_health_path="ping"))
            assert await probe.health(ep) == "/ping answered 503"
            assert await PodClient(http, DispatchSettings(remote_health_path="")).health(ep) is None
    assert recorder.paths == ["/readyz", "/ping"]


async def test_choosing_the_legacy_path_turns_the_probe_into_a_route_check():
    from dispatch_servers import RecordingServer, serve

    legacy = DispatchSettings(remote_create_path="/generate_talking_video")
    assert legacy.health_path == "/generate_talking_video" and legacy.probe_is_route_check
    assert DispatchSettings().health_path == "/readyz" and not DispatchSettings().probe_is_route_check
    explicit = DispatchSettings(remote_create_path="/generate_talking_video", remote_health_path="/ping")
    assert explicit.health_path == "/ping" and not explicit.probe_is_route_check
    recorder = RecordingServer()  # answers 503: a route check fails on a server error
    with serve(recorder.handler()) as url:
        async with httpx.AsyncClient() as http:
            assert await PodClient(http, legacy).health(PodEndpoint(url)) == "/generate_talking_video answered 503"
    assert recorder.paths == ["/generate_talking_video"]


def test_video_url_of_legacy_answers_under_the_usual_names():
    assert find_video_url({"video_url": "/v.mp4"}) == "/v.mp4"
    assert find_video_url({"url": "https://cdn/x.mp4"}) == "https://cdn/x.mp4"
    assert find_video_url({"data": {"videoUrl": "https://cdn/y.mp4"}}) == "https://cdn/y.mp4"
    assert find_video_url({"output": {"download_url": "https://cdn/z.mp4"}}) == "https://cdn/z.mp4"
    assert find_video_url({"status": "done"}) is None


def test_redis_password_never_reaches_the_log():
    from dispatch.worker import _without_password

    assert _without_password("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert _without_password("redis://127.0.0.1:6379") == "redis://127.0.0.1:6379"
