"""Idempotency-Key replay and conflict; the legacy synchronous endpoint; OpenAPI."""

from __future__ import annotations

from tests.support.app import KEY_B, running_app, wait_status


def _files(face_jpg, speech_wav) -> dict:
    return {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", speech_wav.read_bytes())}


async def test_same_key_same_request_returns_the_same_job(settings, factory, face_jpg, short_speech_wav, speech_wav):
    async with running_app(settings, factory) as (_, client):
        files = _files(face_jpg, short_speech_wav)
        headers = {"Idempotency-Key": "order-42"}
        first = await client.post("/v1/jobs", files=files, data={"pose_style": "4"}, headers=headers)
        again = await client.post("/v1/jobs", files=files, data={"pose_style": "4"}, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"

        other_options = await client.post("/v1/jobs", files=files, data={"pose_style": "5"}, headers=headers)
        assert other_options.status_code == 409 and other_options.json()["error"]["code"] == "idempotency_conflict"
        other_audio = await client.post("/v1/jobs", files=_files(face_jpg, speech_wav), data={"pose_style": "4"},
                                        headers=headers)
        assert other_audio.status_code == 409

        other_key = await client.post("/v1/jobs", files=files, data={"pose_style": "4"},
                                      headers={**headers, "X-API-Key": KEY_B})
        assert other_key.status_code == 202 and other_key.json()["id"] != first.json()["id"]
        await wait_status(client, first.json()["id"], ("succeeded",))
        listed = (await client.get("/v1/jobs")).json()["data"]
        assert [job["id"] for job in listed] == [first.json()["id"]]


async def test_legacy_endpoint_waits_for_the_video(settings, factory, face_jpg, short_speech_wav, noface_png):
    async with running_app(settings, factory) as (_, client):
        response = await client.post("/generate_talking_video", files=_files(face_jpg, short_speech_wav),
                                     data={"still": "true"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "succeeded" and body["video_url"] == body["result"]["video_url"]
        assert (await client.get(body["video_url"])).status_code == 200

        factory.script.fail_code = "render_failed"
        failed = await client.post("/generate_talking_video", files=_files(face_jpg, short_speech_wav))
        assert failed.status_code == 500 and failed.json()["error"]["code"] == "render_failed"


async def test_openapi_documents_the_api(settings, factory):
    async with running_app(settings, factory) as (_, client):
        spec = (await client.get("/openapi.json")).json()
        create = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
        assert create["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"
        assert "image_url" in create["application/json"]["schema"]["properties"]
        for path in ("/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/jobs/{job_id}/video",
                     "/generate_talking_video", "/healthz", "/readyz", "/metrics"):
            assert path in spec["paths"]
        assert (await client.get("/docs")).status_code == 200
