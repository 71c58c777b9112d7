"""The worker as a process and its Redis: SIGTERM drains, a restarted Redis is reconnected to."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from dispatch_platform import create, eventually, platform_api, wait_finished
from dispatch_pods import POD_KEY, ROOT, endpoints_of, redis_server, running_pods

from dispatch.worker import Dispatcher

pytestmark = pytest.mark.redis


@pytest.mark.slow
async def test_worker_reconnects_after_redis_restarts(pods, media, make_settings, tmp_path):
    with redis_server(tmp_path) as redis:
        settings = make_settings(redis_url=redis.url, runpod_endpoints=endpoints_of(pods))
        dispatcher = Dispatcher(settings)
        await dispatcher.start()
        try:
            async with platform_api(settings) as client:
                first = await wait_finished(client, await create(client, media))
                redis.stop()
                await asyncio.sleep(0.5)  # the worker's blocking wait and lock renewals hit a closed port
                redis.start()
                second = await wait_finished(client, await create(client, media), timeout_s=60)
        finally:
            await dispatcher.close(drain_timeout_s=5)
    assert first["state"] == "completed" and second["state"] == "completed", second


@pytest.mark.slow
async def test_sigterm_drains_the_active_job_then_exits(tmp_path, media, make_settings):
    with running_pods(tmp_path, 1, render_s=1.5) as (pod,):
        settings = make_settings(runpod_endpoints=endpoints_of([pod]))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "SADTALKER_REDIS_URL": settings.redis_url,
               "SADTALKER_QUEUE_NAME": settings.queue_name, "SADTALKER_RUNPOD_ENDPOINTS": pod.url,
               "SADTALKER_REMOTE_API_KEY": POD_KEY, "SADTALKER_ALLOW_PRIVATE_URLS": "true",
               "SADTALKER_REMOTE_POLL_MS": "50", "API_LOG_LEVEL": "INFO"}
        worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "dispatch.worker", cwd=ROOT, env=env,
                                                      stderr=asyncio.subprocess.PIPE)
        try:
            async with platform_api(settings) as client:
                active = await create(client, media)
                await eventually(lambda: pod.jobs(status="running"), what="a running pod job")
                worker.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.2)
                later = await create(client, media)
                code = await asyncio.wait_for(worker.wait(), 20)
                first = await wait_finished(client, active, timeout_s=1)
                second = (await client.get("/api/sadtalker/status", params={"id": later})).json()
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    log = (await worker.stderr.read()).decode()
    assert code == 0, log
    assert first["state"] == "completed"  # finished by the draining worker
    assert second["state"] == "waiting"  # left for the next worker
    assert "draining" in log


@pytest.mark.parametrize(("variable", "value", "words"), [
    ("SADTALKER_RUNPOD_ENDPOINTS", "ftp://pod|t|k", "SADTALKER_RUNPOD_ENDPOINTS: 'ftp://pod' is not an http(s) URL"),
    ("SADTALKER_WORKER_CONCURRENCY", "0", "SADTALKER_WORKER_CONCURRENCY"),
])
def test_bad_configuration_stops_the_worker_with_a_clear_message(variable, value, words):
    env = {**os.environ, "PYTHONPATH": str(ROOT), variable: value}
    done = subprocess.run([sys.executable, "-m", "dispatch.worker"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "invalid configuration" in done.stderr and words in done.stderr


@pytest.mark.slow
async def test_job_of_a_killed_worker_is_taken_over(slow_pod, media, make_settings, start_dispatcher):
    settings = make_settings(runpod_endpoints=endpoints_of([slow_pod]), lock_duration_ms=1000)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SADTALKER_REDIS_URL": settings.redis_url,
           "SADTALKER_QUEUE_NAME": settings.queue_name, "SADTALKER_RUNPOD_ENDPOINTS": slow_pod.url,
           "SADTALKER_REMOTE_API_KEY": POD_KEY, "SADTALKER_ALLOW_PRIVATE_URLS": "true",
           "SADTALKER_REMOTE_POLL_MS": "50", "SADTALKER_LOCK_DURATION_MS": "1000"}
    doomed = await asyncio.create_subprocess_exec(sys.executable, "-m", "dispatch.worker", cwd=ROOT, env=env,
                                                  stderr=asyncio.subprocess.DEVNULL)
    try:
        async with platform_api(settings) as client:
            job_id = await create(client, media)
            async def active() -> bool:
                return (await client.get("/api/sadtalker/status", params={"id": job_id})).json()["state"] == "active"

            await eventually(active, what="the job active")
            doomed.kill()  # the worker process dies holding the job's lock
            await doomed.wait()
            await start_dispatcher(settings)  # another worker: BullMQ's stalled check hands it the job
            status = await wait_finished(client, job_id, timeout_s=30)
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
    assert status["state"] == "completed", status
