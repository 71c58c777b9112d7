"""`POST /v1/preflight`: the real photo and speech through the same checks as a submission, nothing queued."""

from __future__ import annotations

import asyncio
import base64
import io

from PIL import Image

from tests.support.app import running_app
from tests.support.fake_renderer import Script


def _files(image, audio, image_type="image/png") -> dict:
    return {"image": (image.name, image.read_bytes(), image_type),
            "audio": (audio.name, audio.read_bytes(), "audio/wav")}


async def test_face_and_audio_found(settings, factory, face_png, speech_wav):
    async with running_app(settings, factory) as (_, client):
        response = await client.post("/v1/preflight", files=_files(face_png, speech_wav),
                                     data={"preprocess": "full"})
        jobs = (await client.get("/v1/jobs")).json()["data"]
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["image"] == {"format": "PNG", "width": 512, "height": 512}
    x1, y1, x2, y2 = report["face"]["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512 and report["face"]["detector"] == "dlib"
    # the astronaut's face is in the upper middle of the photo
    assert 100 < (x1 + x2) / 2 < 350 and (y1 + y2) / 2 < 250
    header, data = report["face"]["preview"].split(",", 1)
    assert header == "data:image/jpeg;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as preview:
        assert preview.format == "JPEG" and max(preview.size) <= 128
    audio = report["audio"]
    assert 4.0 < audio["duration_s"] < 7.0 and audio["sample_rate"] == 22050 and audio["channels"] == 1
    assert audio["codec"] == "pcm_s16le" and audio["container"] == "wav"
    assert jobs == [], "a preflight queues nothing"


async def test_several_faces_are_counted_and_the_largest_is_used(settings, factory, two_faces_png, speech_wav):
    async with running_app(settings, factory) as (_, client):
        report = (await client.post("/v1/preflight", files=_files(two_faces_png, speech_wav))).json()
    assert report["ok"] is True and report["face"]["faces"] == 2
    assert [w["code"] for w in report["warnings"]] == ["multiple_faces"]
    assert "largest" in report["warnings"][0]["message"]
    x1, _, x2, _ = report["face"]["box"]
    assert x2 < 512 and x2 - x1 > 70  # the face of the full-size copy


async def test_every_problem_is_named_with_a_suggestion(settings, factory, noface_png, tmp_path):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are not sound samples\n" * 50)
    async with running_app(settings, factory) as (_, client):
        response = await client.post("/v1/preflight", files=_files(noface_png, not_audio))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is False
    problems = {p["code"]: p for p in report["errors"]}
    assert set(problems) == {"no_face_detected", "unsupported_media_type"}  # text is no audio container
    assert "preprocess=full" in problems["no_face_detected"]["suggestion"]
    assert problems["unsupported_media_type"]["suggestion"] and problems["unsupported_media_type"]["message"]
    assert (report["image"]["width"], report["image"]["height"]) == (600, 400) and report["face"] is None and report["audio"] is None


async def test_no_face_reports_the_audio_and_a_job_is_refused_before_queueing(settings, factory, noface_png,
                                                                              speech_wav):
    async with running_app(settings, factory) as (_, client):
        preflight = (await client.post("/v1/preflight", files=_files(noface_png, speech_wav))).json()
        submit = await client.post("/v1/jobs", files=_files(noface_png, speech_wav))
        jobs = (await client.get("/v1/jobs")).json()["data"]
    assert [p["code"] for p in preflight["errors"]] == ["no_face_detected"]
    assert preflight["audio"]["sample_rate"] == 22050
    assert submit.status_code == 422 and submit.json()["error"]["code"] == "no_face_detected"
    assert jobs == [] and factory.started == [], "no worker was taken"


async def test_face_not_checked_while_models_load(settings, factory, face_png, speech_wav):
    factory.script = Script(load_s=1.5)
    async with running_app(settings, factory, wait_ready=False) as (_, client):
        response = await client.post("/v1/preflight", files=_files(face_png, speech_wav))
    report = response.json()
    assert report["ok"] is True and report["face"] is None
    assert [w["code"] for w in report["warnings"]] == ["face_not_checked"]


async def test_malformed_requests_answer_error_bodies(settings, factory, face_png, speech_wav):
    async with running_app(settings, factory) as (_, client):
        no_key = await client.post("/v1/preflight", files=_files(face_png, speech_wav), headers={"X-API-Key": ""})
        no_audio = await client.post("/v1/preflight", files={"image": ("a.png", face_png.read_bytes())})
        bad_option = await client.post("/v1/preflight", files=_files(face_png, speech_wav), data={"size": "300"})
        unknown = await client.post("/v1/preflight", files=_files(face_png, speech_wav), data={"colour": "red"})
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "unauthorized"
    assert no_audio.status_code == 422 and no_audio.json()["error"]["code"] == "validation_error"
    assert bad_option.status_code == 422 and "size" in bad_option.json()["error"]["message"]
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_field"


async def test_url_inputs_are_fetched_and_checked(settings, factory, face_png, speech_mp3):
    from tests.support.files import serve_files

    async with serve_files({"face.png": face_png, "speech.mp3": speech_mp3}) as base, \
            running_app(settings, factory) as (_, client):
        good = await client.post("/v1/preflight", json={"image_url": f"{base}/face.png",
                                                        "audio_url": f"{base}/speech.mp3", "still": True})
        gone = await client.post("/v1/preflight", json={"image_url": f"{base}/missing.png",
                                                        "audio_url": f"{base}/speech.mp3"})
    report = good.json()
    assert good.status_code == 200 and report["ok"] is True, report
    assert report["face"]["box"] and report["audio"]["container"].startswith("mp3")
    assert report["audio"]["sample_rate"] == 22050
    failed = gone.json()
    assert gone.status_code == 200 and failed["ok"] is False
    assert [p["code"] for p in failed["errors"]] == ["fetch_failed"] and failed["errors"][0]["suggestion"]


async def test_without_models_no_job_would_run(settings, factory, face_png, speech_wav):
    factory.script = Script(load_error="checkpoints missing in /nowhere: SadTalker_V0.0.2_256.safetensors")
    async with running_app(settings, factory, wait_ready=False) as (app, client):
        while app.state.services.pool.state == "loading":
            await asyncio.sleep(0.01)
        report = (await client.post("/v1/preflight", files=_files(face_png, speech_wav))).json()
    assert report["ok"] is False and report["face"] is None and report["warnings"] == []
    assert [p["code"] for p in report["errors"]] == ["models_unavailable"]
    assert "SadTalker_V0.0.2_256.safetensors" in report["errors"][0]["message"]
    assert report["audio"]["sample_rate"] == 22050, "the inputs are still checked"
