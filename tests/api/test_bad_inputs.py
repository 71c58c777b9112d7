"""Every bad input answers a 4xx with a stable code, and nothing is queued or left on disk."""

from __future__ import annotations

import io
import subprocess

import imageio_ffmpeg
import pytest
from PIL import Image

from tests.support.app import make_settings, running_app
from tests.support.files import serve_files


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, "GIF")
    return buf.getvalue()


def _ffmpeg_audio(tmp_path, name: str, *args: str) -> bytes:
    out = tmp_path / name
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *args, str(out)], check=True)
    return out.read_bytes()


async def _assert_nothing_queued(app, client) -> None:
    assert (await client.get("/v1/jobs")).json()["data"] == []
    inputs = app.state.services.manager.config.work_dir / "inputs"
    assert not inputs.exists() or list(inputs.iterdir()) == []


@pytest.fixture
def limited_settings(tmp_path):
    return make_settings(tmp_path / "out", sadtalker_max_image_bytes=300_000, sadtalker_max_audio_seconds=3,
                         sadtalker_max_image_pixels=1_000_000)


async def test_upload_codes(limited_settings, factory, face_png, face_jpg, noface_png, speech_wav,
                            short_speech_wav, tmp_path):
    face, speech, short = face_jpg.read_bytes(), speech_wav.read_bytes(), short_speech_wav.read_bytes()
    empty_wav = _ffmpeg_audio(tmp_path, "empty.wav", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0")
    sun_au = _ffmpeg_audio(tmp_path, "speech.au", "-i", str(short_speech_wav), "-f", "au")
    truncated_png = face_png.read_bytes()[:20_000]
    cases = [
        ({"image": face_png.read_bytes(), "audio": short}, {}, 413, "payload_too_large"),  # 473 kB > 300 kB
        ({"image": _gif(), "audio": short}, {}, 415, "unsupported_media_type"),
        ({"image": b"not an image at all", "audio": short}, {}, 415, "unsupported_media_type"),
        ({"image": truncated_png[:200_000], "audio": short}, {}, 422, "invalid_image"),
        ({"image": _png((2000, 2000), "L"), "audio": short}, {}, 422, "invalid_image"),  # 4 Mpx > 1 Mpx
        ({"image": face, "audio": b"RIFF....WAVEfmt garbage"}, {}, 422, "invalid_audio"),
        ({"image": face, "audio": empty_wav}, {}, 422, "invalid_audio"),
        ({"image": face, "audio": sun_au}, {}, 415, "unsupported_media_type"),
        ({"image": face, "audio": speech}, {}, 422, "audio_too_long"),  # 5 s > 3 s
        ({"image": _jpeg(noface_png), "audio": short}, {}, 422, "no_face_detected"),
        ({"image": face, "audio": short}, {"size": "300"}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"pose_style": "46"}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"preprocess": "zoom"}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"expression_scale": "3.5"}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"metadata": "[1, 2"}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"metadata": "[1, 2]"}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"webhook_events": "job.exploded"}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"colour": "blue"}, 422, "unknown_field"),
        ({"image": face, "audio": short, "video": b"x"}, {}, 422, "unknown_field"),
        ({"image": face}, {}, 422, "validation_error"),
        ({"image": face, "audio": short}, {"audio_url": "https://example.com/a.wav"}, 422, "validation_error"),
    ]
    async with running_app(limited_settings, factory) as (app, client):
        for files, data, status, code in cases:
            response = await client.post("/v1/jobs", files={k: ("upload", v) for k, v in files.items()}, data=data)
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), (data, response.text)
            assert response.json()["error"]["message"]
        await _assert_nothing_queued(app, client)


async def test_json_body_codes(settings, factory):
    async with running_app(settings, factory) as (app, client):
        unknown = await client.post("/v1/jobs", json={"image_url": "http://x/a.png", "audio_url": "http://x/a.wav",
                                                      "speed": 2})
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_field"
        assert "speed" in unknown.json()["error"]["message"]
        not_object = await client.post("/v1/jobs", json=[1, 2])
        assert not_object.json()["error"]["code"] == "validation_error"
        text = await client.post("/v1/jobs", content=b"image=1", headers={"content-type": "text/plain"})
        assert text.status_code == 415 and text.json()["error"]["code"] == "unsupported_media_type"
        await _assert_nothing_queued(app, client)


async def test_upload_limit_is_enforced_while_streaming(limited_settings, factory):
    sent = 0

    async def body():
        nonlocal sent
        yield (b"--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
               b"Content-Type: image/png\r\n\r\n")
        for _ in range(10_000):  # 640 MB if it were all read
            sent += 1
            yield b"\0" * 65536

    async with running_app(limited_settings, factory) as (app, client):
        response = await client.post("/v1/jobs", content=body(),
                                     headers={"content-type": "multipart/form-data; boundary=B"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
        assert sent < 20  # stopped just past the 300 kB limit
        await _assert_nothing_queued(app, client)


async def test_url_input_codes(tmp_path, factory, face_png, short_speech_wav):
    private = make_settings(tmp_path / "a", sadtalker_allow_private_urls=False)
    async with running_app(private, factory) as (app, client):
        for url in ("http://127.0.0.1:9/face.png", "http://169.254.169.254/latest", "http://10.1.2.3/x.png",
                    "file:///etc/passwd", "ftp://example.com/x.png"):
            response = await client.post("/v1/jobs", json={"image_url": url, "audio_url": url})
            assert response.json()["error"]["code"] == "url_not_allowed", (url, response.text)
        await _assert_nothing_queued(app, client)

    capped = make_settings(tmp_path / "b", sadtalker_fetch_timeout_s=0.5, sadtalker_max_image_bytes=100_000)
    files = {"face.png": face_png, "speech.wav": short_speech_wav}
    async with serve_files(files) as base, running_app(capped, factory) as (app, client):
        audio = f"{base}/speech.wav"
        for image_url, code in ((f"{base}/missing.png", "fetch_failed"), (f"{base}/slow", "fetch_failed"),
                                (f"{base}/face.png", "payload_too_large"), (f"{base}/endless", "payload_too_large"),
                                ("http://no-such-host.invalid/x.png", "fetch_failed")):
            response = await client.post("/v1/jobs", json={"image_url": image_url, "audio_url": audio})
            assert response.json()["error"]["code"] == code, (image_url, response.text)
        redirected = await client.post("/v1/jobs", json={
            "image_url": f"{base}/redirect-1?to=http://169.254.169.254/latest/meta-data", "audio_url": audio})
        assert redirected.json()["error"]["code"] == "url_not_allowed"
        webhook = await client.post("/v1/jobs", json={"image_url": f"{base}/face.png", "audio_url": audio,
                                                      "webhook_url": "gopher://x"})
        assert webhook.json()["error"]["code"] == "url_not_allowed"
        await _assert_nothing_queued(app, client)
