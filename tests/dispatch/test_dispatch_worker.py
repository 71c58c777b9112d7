"""The dispatcher end to end: real Redis, real service instances as pods (uvicorn subprocesses with a fast
test renderer), jobs through the create/status API or Node's own BullMQ, and the faults of the issue."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from bullmq import Job, Queue
from dispatch_platform import create, eventually, platform_api, wait_finished
from dispatch_pods import POD_KEY, endpoints_of, free_port, running_pods
from dispatch_servers import FakeRunPod, RecordingServer, serve

pytestmark = pytest.mark.redis

NODE_DIR = Path(__file__).parent / "node"


async def test_jobs_complete_on_both_pods_with_a_working_video_url(pods, media, make_settings, start_dispatcher):
    settings = make_settings(runpod_endpoints=endpoints_of(pods), worker_concurrency=2)
    await start_dispatcher(settings)
    async with platform_api(settings) as client:
        ids = [await create(client, media, poseStyle=2, still=True) for _ in range(2)]
        finished = [await wait_finished(client, job_id) for job_id in ids]
    for status in finished:
        assert status["state"] == "completed" and status["progress"] == 100 and status["error"] is None
        result = status["result"]
        assert result["width"] == 64 and result["frames"] == 25 and result["faceDetector"] == "test-clip"
        video = httpx.get(result["videoUrl"], timeout=10)  # a signed link: a browser needs no API key
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
        poster = httpx.get(result["posterUrl"], timeout=10)
        assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert {s["result"]["pod"] for s in finished} == {pod.url for pod in pods}  # round-robin
    remote = {job["id"]: job for pod in pods for job in pod.jobs()}
    for status in finished:  # the options reached the pod
        assert remote[status["result"]["remoteJobId"]]["options"]["pose_style"] == 2


async def test_node_bullmq_producer_gets_the_python_result(pods, media, make_settings, start_dispatcher):
    if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
        pytest.fail("npm packages missing: run `npm install` in tests/dispatch/node (scripts/test.sh does)")
    settings = make_settings(runpod_endpoints=endpoints_of(pods))
    await start_dispatcher(settings)
    data = json.dumps({"imageUrl": media.image_url, "audioUrl": media.audio_url, "userId": "node-user"})
    proc = await asyncio.create_subprocess_exec(
        "node", "enqueue.js", settings.redis_url, settings.queue_name, data, "30000", cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()
    outcome = json.loads(out.decode().strip().splitlines()[-1])
    assert outcome["state"] == "completed", outcome
    assert outcome["returnvalue"]["videoUrl"].startswith(tuple(pod.url for pod in pods))
    assert outcome["progress"] == 100


@pytest.mark.slow
async def test_pod_killed_mid_job_completes_on_the_other_pod(tmp_path, media, make_settings, start_dispatcher):
    with running_pods(tmp_path, 2, render_s=2.0) as two:
        settings = make_settings(runpod_endpoints=endpoints_of(two))
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            job_id = await create(client, media)
            victim = await _pod_running_a_job(two)
            victim.kill()
            status = await wait_finished(client, job_id, timeout_s=30)
        assert status["state"] == "completed", status
        survivor = next(pod for pod in two if pod is not victim)
        assert status["result"]["pod"] == survivor.url and status["attemptsMade"] == 2
        assert "pod_unavailable" in status["lastError"]
        assert [job["status"] for job in survivor.jobs()] == ["succeeded"]  # rendered once, completed once


async def _pod_running_a_job(pods):
    await eventually(lambda: any(pod.jobs(status="running") for pod in pods), what="a pod running the job")
    return next(pod for pod in pods if pod.jobs(status="running"))


async def test_all_pods_down_fails_after_the_last_attempt(media, make_settings, start_dispatcher):
    dead = ",".join(f"http://127.0.0.1:{free_port()}" for _ in range(2))
    settings = make_settings(runpod_endpoints=dead, job_attempts=3, job_backoff_ms=100)
    await start_dispatcher(settings)
    async with platform_api(settings) as client:
        job_id = await create(client, media)
        started = time.monotonic()
        status = await wait_finished(client, job_id)
    assert status["state"] == "failed" and status["attemptsMade"] == 3
    assert status["error"].startswith("no_healthy_pod: no healthy pod among 2")
    assert time.monotonic() - started >= 0.3  # exponential backoff: 100 ms, then 200 ms


async def test_runpod_discovery_joins_the_static_list(pods, media, make_settings, start_dispatcher):
    static, live = pods
    live_port = int(live.url.rsplit(":", 1)[1])
    runpod = FakeRunPod("rp-key", {"ep-1": [("podlive01", live_port, "RUNNING"), ("podgone02", 1, "EXITED")]})
    with serve(runpod.handler()) as api_url:
        settings = make_settings(
            runpod_endpoints=endpoints_of([static]), runpod_api_key="rp-key", runpod_endpoint_ids="ep-1",
            runpod_api_url=f"{api_url}/v1", runpod_proxy_url="http://127.0.0.1:{port}", remote_api_key=POD_KEY,
            runpod_refresh_ms=100)
        dispatcher = await start_dispatcher(settings)
        async with platform_api(settings) as client:
            await eventually(lambda: dispatcher.pool.discovered, what="discovery")
            first = [await wait_finished(client, await create(client, media)) for _ in range(2)]
            runpod.failing = True
            lookups = runpod.lookups
            await eventually(lambda: runpod.lookups > lookups + 1, what="failed lookups")
            second = [await wait_finished(client, await create(client, media)) for _ in range(2)]
    assert {s["result"]["pod"] for s in first} == {static.url, live.url}  # both serve, round-robin
    assert {s["result"]["pod"] for s in second} == {static.url, live.url}  # the last known pods stay


async def test_oversize_or_blocked_inputs_fail_without_contacting_a_pod(media, make_settings, start_dispatcher):
    recorder = RecordingServer()
    with serve(recorder.handler()) as pod_url:
        settings = make_settings(runpod_endpoints=pod_url, max_image_bytes=1_000_000)
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            too_big = await wait_finished(client, await create(client, media, imageUrl=media.big_url))
            queue = Queue(settings.queue_name, {"connection": settings.redis_url})
            try:  # the create API refuses a metadata address; a job enqueued by another producer is refused too
                job = await queue.add("generate", {"imageUrl": media.image_url,
                                                   "audioUrl": "http://169.254.169.254/latest/meta-data"})
            finally:
                await queue.close()
            blocked = await wait_finished(client, job.id)
    assert too_big["state"] == "failed" and too_big["attemptsMade"] == 1
    assert too_big["error"].startswith("payload_too_large:")
    assert blocked["state"] == "failed" and blocked["error"].startswith("url_not_allowed:")
    assert recorder.paths == []


async def test_permanent_pod_error_is_not_retried(pods, media, make_settings, start_dispatcher):
    settings = make_settings(runpod_endpoints=endpoints_of(pods))
    await start_dispatcher(settings)
    async with platform_api(settings) as client:
        status = await wait_finished(client, await create(client, media, imageUrl=media.audio_url))
    assert status["state"] == "failed" and status["attemptsMade"] == 1
    assert status["error"].startswith("unsupported_media_type:")  # an audio file is no image container


async def test_progress_is_mirrored_while_the_pod_renders(slow_pod, media, make_settings, start_dispatcher):
    settings = make_settings(runpod_endpoints=endpoints_of([slow_pod]))
    await start_dispatcher(settings)
    async with platform_api(settings) as client:
        job_id = await create(client, media)
        seen: list[dict] = []

        async def finished() -> bool:
            seen.append((await client.get("/api/sadtalker/status", params={"id": job_id})).json())
            return seen[-1]["state"] in ("completed", "failed")

        await eventually(finished, timeout_s=30, what="the job finished")
    assert seen[-1]["state"] == "completed" and seen[-1]["progress"] == 100
    assert len({s["progress"] for s in seen if 5 < s["progress"] < 100}) >= 2, seen


async def test_attempt_timeout_cancels_the_pod_job(slow_pod, media, make_settings, start_dispatcher):
    settings = make_settings(runpod_endpoints=endpoints_of([slow_pod]), job_timeout_ms=1200, job_attempts=1)
    await start_dispatcher(settings)
    async with platform_api(settings) as client:
        status = await wait_finished(client, await create(client, media))
    assert status["state"] == "failed" and status["attemptsMade"] == 1
    assert status["error"] == "timeout: the attempt took longer than 1.2 s (SADTALKER_JOB_TIMEOUT_MS)"
    await eventually(lambda: slow_pod.jobs(status="canceled"), timeout_s=5, what="the pod job canceled")
    assert len(slow_pod.jobs(status="canceled")) == 1  # the GPU was freed, not left rendering


async def test_job_data_is_checked_before_anything_else(make_settings, start_dispatcher, redis_url, queue_name):
    settings = make_settings(runpod_endpoints="http://127.0.0.1:9")
    await start_dispatcher(settings)
    queue = Queue(queue_name, {"connection": redis_url})
    try:
        job = await queue.add("generate", {"imageUrl": "x"}, {"attempts": 3})
        for _ in range(100):
            if await queue.getJobState(job.id) == "failed":
                break
            await asyncio.sleep(0.05)
        job = await Job.fromId(queue, job.id)
    finally:
        await queue.close()
    assert job.failedReason.startswith("validation_error: 'imageUrl' must be an http(s) URL")
    assert job.attemptsMade == 1


async def test_legacy_pods_answer_synchronously(pods, media, make_settings, start_dispatcher):
    settings = make_settings(runpod_endpoints=endpoints_of(pods[:1]), remote_create_path="/generate_talking_video")
    await start_dispatcher(settings)
    async with platform_api(settings) as client:
        status = await wait_finished(client, await create(client, media))
    assert status["state"] == "completed", status
    video = httpx.get(status["result"]["videoUrl"], headers={"X-API-Key": POD_KEY}, timeout=10)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
