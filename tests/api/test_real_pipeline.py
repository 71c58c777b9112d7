"""The production renderer (api/renderer.py over sadtalker.pipeline) behind the API, on narrow stand-in
checkpoints in the official file formats: load + warm-up before /readyz, face check before queueing, a real
MP4 out, and /readyz naming the missing files when the directory is empty."""

from __future__ import annotations

import shutil
import subprocess

import imageio_ffmpeg
import pytest

from api_app import create_app
from sadtalker.standin import write_standins
from tests.support.app import KEY_A, make_settings, wait_for, wait_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standin_checkpoints(tmp_path_factory, reference_dir):
    return write_standins(tmp_path_factory.mktemp("api_standins"), reference_dir, small=True)


async def _client(app):
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                             headers={"X-API-Key": KEY_A}, timeout=120)


async def test_pipeline_renders_through_the_api(tmp_path, standin_checkpoints, face_png, noface_png,
                                                short_speech_wav, two_faces_png):
    settings = make_settings(tmp_path, sadtalker_checkpoint_dir=standin_checkpoints, sadtalker_enhancer=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        ready = await wait_for(client, "/readyz", lambda r: r.status_code == 200 or "failed" in r.text, 120)
        assert ready.status_code == 200, ready.text
        models = ready.json()["models"]  # what the loaded worker uses, and the fallback flagged
        assert models["loaded"] == {"face_detector": "dlib", "enhancer": "none"} and models["dlib_fallback"] is True
        assert ready.json()["capabilities"] == {"sizes": [256], "enhancers": ["none"],
                                                "preprocess": ["crop", "extcrop", "resize", "full", "extfull"]}
        for option in ({"size": "512"}, {"enhancer": "gfpgan"}):  # not loaded: refused before anything is queued
            for path in ("/v1/jobs", "/v1/preflight"):
                refused = await client.post(path, data=option, files={
                    "image": ("f.png", face_png.read_bytes()), "audio": ("s.wav", short_speech_wav.read_bytes())})
                assert refused.status_code == 422, refused.text
                assert refused.json()["error"]["code"] == "capability_unavailable"
        assert (await client.get("/v1/jobs")).json()["data"] == []
        preflight = (await client.post("/v1/preflight", files={
            "image": ("two.png", two_faces_png.read_bytes()), "audio": ("s.wav", short_speech_wav.read_bytes())})).json()
        assert preflight["ok"] is True and preflight["face"]["faces"] == 2, preflight
        assert [w["code"] for w in preflight["warnings"]] == ["multiple_faces"]
        assert preflight["face"]["detector"] == "dlib" and preflight["face"]["box"][2] < 512
        noface = await client.post("/v1/jobs", files={"image": ("c.png", noface_png.read_bytes()),
                                                      "audio": ("s.wav", short_speech_wav.read_bytes())})
        assert noface.status_code == 422 and noface.json()["error"]["code"] == "no_face_detected"
        job = (await client.post("/v1/jobs", files={"image": ("f.png", face_png.read_bytes()),
                                                    "audio": ("s.wav", short_speech_wav.read_bytes())},
                                 data={"batch_size": "4", "seed": "3"})).json()
        done = await wait_status(client, job["id"], ("succeeded", "failed"), timeout_s=180)
        assert done["status"] == "succeeded", done
        assert done["result"]["frames"] == 15 and done["result"]["face_detector"] == "dlib"
        assert done["progress"]["frames_total"] == 15
        video = await client.get(f"/v1/jobs/{job['id']}/video")
        path = tmp_path / "v.mp4"
        path.write_bytes(video.content)
        probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)], capture_output=True, text=True)
        assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr


async def test_without_checkpoints_the_service_starts_and_says_what_is_missing(tmp_path, standin_checkpoints):
    settings = make_settings(tmp_path, sadtalker_checkpoint_dir=tmp_path / "empty", sadtalker_model_reload_s=0.2,
                             sadtalker_enhancer=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        ready = await wait_for(client, "/readyz", lambda r: "failed" in r.text, 60)
        assert ready.status_code == 503
        message = ready.json()["error"]["message"]
        assert "SadTalker_V0.0.2_256.safetensors" in message and "download_checkpoints.sh" in message
        submit = await client.post("/v1/jobs", json={"image_url": "http://x/a.png", "audio_url": "http://x/a.wav"})
        assert submit.status_code == 503 and submit.json()["error"]["code"] == "models_unavailable"

        # files that appear later (a volume filled after the pod started) are picked up without a restart
        shutil.copytree(standin_checkpoints, tmp_path / "empty", dirs_exist_ok=True)
        ready = await wait_for(client, "/readyz", lambda r: r.status_code == 200, 120)
        assert ready.status_code == 200, ready.text


async def test_split_devices_make_one_worker_spanning_every_device(tmp_path, standin_checkpoints, face_png,
                                                                   short_speech_wav):
    """SADTALKER_SPLIT_DEVICES with two CPU "devices": one worker, the 15-frame clip rendered as 2 segments."""
    settings = make_settings(tmp_path, sadtalker_checkpoint_dir=standin_checkpoints, sadtalker_enhancer=False,
                             sadtalker_device="cpu,cpu", sadtalker_split_devices=True, sadtalker_min_segment_s=0.2)
    app = create_app(settings)
    async with app.router.lifespan_context(app), await _client(app) as client:
        ready = await wait_for(client, "/readyz", lambda r: r.status_code == 200 or "failed" in r.text, 120)
        assert ready.status_code == 200, ready.text
        workers = app.state.services.pool.workers
        assert [w.device for w in workers] == ["cpu,cpu"]
        assert [p.device for p in workers[0].renderer.pipeline.pipelines] == ["cpu", "cpu"]
        job = (await client.post("/v1/jobs", files={"image": ("f.png", face_png.read_bytes()),
                                                    "audio": ("s.wav", short_speech_wav.read_bytes())},
                                 data={"seed": "3"})).json()
        done = await wait_status(client, job["id"], ("succeeded", "failed"), timeout_s=180)
        assert done["status"] == "succeeded", done
        assert done["result"]["frames"] == 15 and done["progress"]["frames_total"] == 15
        assert workers[0].renderer.pipeline.last_segments == [range(0, 8), range(8, 15)]
