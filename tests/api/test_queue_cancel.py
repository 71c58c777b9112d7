"""Queue positions, queue full (429 + Retry-After), cancel of queued and running jobs, timeout, failures."""

from __future__ import annotations

import asyncio

from tests.support.app import make_settings, running_app, wait_status


def _files(face_jpg, speech_wav) -> dict:
    return {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", speech_wav.read_bytes())}


async def test_queue_full_positions_and_cancel(tmp_path, factory, face_jpg, short_speech_wav):
    settings = make_settings(tmp_path, sadtalker_max_queue=2)
    factory.hold.clear()  # the first job stops at its first batch boundary until released
    async with running_app(settings, factory) as (app, client):
        files = _files(face_jpg, short_speech_wav)
        first = (await client.post("/v1/jobs", files=files)).json()
        await asyncio.to_thread(factory.wait_started, first["id"])
        second = (await client.post("/v1/jobs", files=files)).json()
        third = (await client.post("/v1/jobs", files=files)).json()
        assert (second["queue_position"], third["queue_position"]) == (1, 2)
        full = await client.post("/v1/jobs", files=files)
        assert full.status_code == 429 and full.json()["error"]["code"] == "queue_full"
        assert int(full.headers["retry-after"]) >= 1

        running = (await client.get(f"/v1/jobs/{first['id']}")).json()
        assert running["status"] == "running" and running["queue_position"] is None

        canceled = await client.post(f"/v1/jobs/{third['id']}/cancel")
        assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"
        assert canceled.json()["error"]["code"] == "canceled"

        await client.post(f"/v1/jobs/{first['id']}/cancel")  # stops at the next batch boundary
        done = await wait_status(client, first["id"], ("canceled", "failed", "succeeded"))
        assert done["status"] == "canceled" and factory.canceled == [first["id"]]
        assert done["result"] is None
        video = await client.get(f"/v1/jobs/{first['id']}/video")
        assert video.status_code == 409 and video.json()["error"]["code"] == "job_not_finished"

        await asyncio.to_thread(factory.wait_started, second["id"])  # the worker was freed
        assert (await client.get(f"/v1/jobs/{second['id']}")).json()["status"] == "running"
        factory.hold.set()
        assert (await wait_status(client, second["id"], ("succeeded",)))["status"] == "succeeded"
        again = await client.post(f"/v1/jobs/{second['id']}/cancel")  # cancel after the end changes nothing
        assert again.json()["status"] == "succeeded"
        metrics = (await client.get("/metrics")).text
        assert 'sadtalker_jobs{state="canceled"} 2.0' in metrics
        assert 'sadtalker_jobs_finished_total{status="succeeded"} 1.0' in metrics
        assert "sadtalker_queue_depth 0.0" in metrics
        assert 'sadtalker_stage_duration_seconds_count{stage="render"}' in metrics


async def test_timeout_frees_the_worker(tmp_path, factory, face_jpg, short_speech_wav):
    settings = make_settings(tmp_path, sadtalker_job_timeout_s=0.5)
    factory.hold.clear()
    async with running_app(settings, factory) as (_, client):
        files = _files(face_jpg, short_speech_wav)
        slow = (await client.post("/v1/jobs", files=files)).json()
        done = await wait_status(client, slow["id"], ("failed", "succeeded"))
        assert done["status"] == "failed" and done["error"]["code"] == "timeout"
        factory.hold.set()
        nxt = (await client.post("/v1/jobs", files=files)).json()
        assert (await wait_status(client, nxt["id"], ("succeeded", "failed")))["status"] == "succeeded"


async def test_render_error_code_becomes_the_job_error(settings, factory, face_jpg, short_speech_wav):
    factory.script.fail_code = "encode_failed"
    async with running_app(settings, factory) as (_, client):
        job = (await client.post("/v1/jobs", files=_files(face_jpg, short_speech_wav))).json()
        done = await wait_status(client, job["id"], ("failed", "succeeded"))
        assert done["error"] == {"code": "encode_failed", "message": "scripted failure encode_failed"}
        metrics = (await client.get("/metrics")).text
        assert 'sadtalker_job_failures_total{code="encode_failed"} 1.0' in metrics


async def test_models_unavailable_and_readyz(tmp_path, factory, face_jpg, short_speech_wav):
    factory.script.load_error = "checkpoints missing in /x: SadTalker_V0.0.2_256.safetensors"
    async with running_app(make_settings(tmp_path), factory, wait_ready=False) as (_, client):
        await asyncio.sleep(0.1)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
        assert "SadTalker_V0.0.2_256.safetensors" in ready.json()["error"]["message"]
        submit = await client.post("/v1/jobs", files=_files(face_jpg, short_speech_wav))
        assert submit.status_code == 503 and submit.json()["error"]["code"] == "models_unavailable"
        assert (await client.get("/healthz")).status_code == 200


async def test_deleting_a_running_job_stops_it_and_leaves_nothing(settings, factory, face_jpg, short_speech_wav):
    factory.hold.clear()
    async with running_app(settings, factory) as (app, client):
        files = _files(face_jpg, short_speech_wav)
        job = (await client.post("/v1/jobs", files=files)).json()
        await asyncio.to_thread(factory.wait_started, job["id"])
        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 404
        nxt = (await client.post("/v1/jobs", files=files)).json()
        factory.hold.set()
        assert (await wait_status(client, nxt["id"], ("succeeded", "failed")))["status"] == "succeeded"
        manager = app.state.services.manager
        assert factory.canceled == [job["id"]]
        assert not manager.input_dir(job["id"]).exists() and not manager.render_dir(job["id"]).exists()
        videos = settings.sadtalker_output_dir / "videos"
        assert sorted(p.name for p in videos.iterdir()) == [f"{nxt['id']}.jpg", f"{nxt['id']}.mp4"]  # + poster
