"""The job lifecycle over HTTP: submit -> poll -> download, the job JSON, listing, delete."""

from __future__ import annotations

import json
import subprocess

import imageio_ffmpeg

from tests.support.app import running_app, wait_status


def _files(face_png, speech_wav) -> dict:
    return {"image": ("portrait.png", face_png.read_bytes(), "image/png"),
            "audio": ("speech.wav", speech_wav.read_bytes(), "audio/wav")}


async def test_submit_poll_download(settings, factory, face_png, speech_wav, tmp_path):
    async with running_app(settings, factory) as (_, client):
        response = await client.post("/v1/jobs", files=_files(face_png, speech_wav),
                                     data={"size": "256", "still": "true", "metadata": json.dumps({"user": 7})})
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["object"] == "job" and job["id"].startswith("job_")
        assert job["status"] in ("queued", "running")
        assert job["options"]["still"] is True and job["metadata"] == {"user": 7}
        assert job["links"]["self"] == f"http://testserver/v1/jobs/{job['id']}"
        assert response.headers["location"] == job["links"]["self"]

        done = await wait_status(client, job["id"], ("succeeded", "failed"))
        assert done["status"] == "succeeded", done
        assert done["progress"]["percent"] == 100.0 and done["progress"]["stage"] == "upload"
        assert done["progress"]["frames_done"] == done["progress"]["frames_total"] == 20
        result = done["result"]
        assert result["video_url"].startswith(f"http://testserver/v1/jobs/{job['id']}/video?exp=")
        assert result["poster_url"].startswith(f"http://testserver/v1/jobs/{job['id']}/poster?exp=")
        assert (result["frames"], result["width"], result["height"]) == (20, 256, 256)
        assert result["duration_s"] == 0.8 and result["storage"] == "local"
        assert done["started_at"] and done["finished_at"] and done["error"] is None

        video = await client.get(f"/v1/jobs/{job['id']}/video")
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert len(video.content) == result["bytes"]
        path = tmp_path / "got.mp4"
        path.write_bytes(video.content)
        probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True)
        assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr


async def test_json_body_with_urls_and_listing(settings, factory, face_png, speech_mp3):
    from tests.support.files import serve_files

    async with serve_files({"face.png": face_png, "speech.mp3": speech_mp3}) as base, \
            running_app(settings, factory) as (_, client):
        ids = []
        fields = {"image_url": f"{base}/face.png", "audio_url": f"{base}/speech.mp3", "pose_style": 3}
        for i in range(3):  # JSON twice, then an urlencoded form
            response = await (client.post("/v1/jobs", json=fields) if i < 2 else client.post("/v1/jobs", data=fields))
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        for job_id in ids:
            assert (await wait_status(client, job_id, ("succeeded", "failed")))["status"] == "succeeded"
        page = (await client.get("/v1/jobs", params={"limit": 2})).json()
        assert [job["id"] for job in page["data"]] == ids[::-1][:2] and page["has_more"]
        rest = (await client.get("/v1/jobs", params={"limit": 2, "after": page["next_after"]})).json()
        assert [job["id"] for job in rest["data"]] == [ids[0]] and not rest["has_more"]
        filtered = (await client.get("/v1/jobs", params={"status": "failed"})).json()
        assert filtered["data"] == []
        bad = await client.get("/v1/jobs", params={"status": "bogus"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


async def test_delete_removes_record_and_files(settings, factory, face_png, speech_wav):
    async with running_app(settings, factory) as (app, client):
        job = (await client.post("/v1/jobs", files=_files(face_png, speech_wav))).json()
        await wait_status(client, job["id"], ("succeeded",))
        services = app.state.services
        video = services.video_path(services.manager.get(job["id"]))
        assert video.is_file()
        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert not video.exists()
        assert not services.manager.input_dir(job["id"]).exists()
        gone = await client.get(f"/v1/jobs/{job['id']}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_the_api_answers_while_a_job_renders(settings, factory, face_jpg, short_speech_wav):
    import asyncio
    import time

    factory.script.batch_s = 0.25  # a blocking sleep per batch in the worker thread: about 2.5 s of "GPU" work
    async with running_app(settings, factory) as (_, client):
        job = (await client.post("/v1/jobs", files={"image": ("a.jpg", face_jpg.read_bytes()),
                                                    "audio": ("a.wav", short_speech_wav.read_bytes())})).json()
        await asyncio.to_thread(factory.wait_started, job["id"])
        latencies = []
        for _ in range(10):
            t0 = time.perf_counter()
            assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "running"
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
        assert max(latencies) < 0.2, latencies
        assert (await wait_status(client, job["id"], ("succeeded",)))["status"] == "succeeded"
