"""The serverless building blocks without a model: input checking with the API's option model and codes,
data: URIs, guarded URL fetches over loopback HTTP, the API's content checks, delivery inline or to S3 (moto's
server over real HTTP), and the model runner's refusal while checkpoints are missing."""

from __future__ import annotations

import base64
from pathlib import Path

import boto3
import httpx
import imageio_ffmpeg
import pytest
from moto.server import ThreadedMotoServer

from api.errors import ApiError
from serving.delivery import deliver, storage_key
from serving.inputs import INPUT_NAMES, check_media, decode_data_uri, fetch_media, input_limits, split_input
from serving.model import ModelRunner, error_of, progress_update
from storage import create_storage
from tests.serving.helpers import data_uri
from tests.support.app import make_settings
from tests.support.files import serve_files


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path / "out", sadtalker_max_image_bytes=2_000_000, sadtalker_max_audio_seconds=2)


def code_of(call) -> tuple[str, str]:
    with pytest.raises(ApiError) as info:
        call()
    return info.value.code, info.value.message


def test_split_input_fills_the_api_defaults():
    sources, options = split_input({"image": "https://x/a.png", "audio": " data:audio/wav;base64,AAAA ",
                                    "size": "512", "still": "true"})
    assert sources == {"image": "https://x/a.png", "audio": "data:audio/wav;base64,AAAA"}
    assert options == {"preprocess": "crop", "still": True, "enhancer": "none", "size": 512, "pose_style": 0,
                       "expression_scale": 1.0, "batch_size": None, "seed": None}


@pytest.mark.parametrize(("raw", "code", "words"), [
    ("not an object", "validation_error", "JSON object"),
    ({"image": "https://x/a.png"}, "validation_error", "audio is required"),
    ({"image": "", "audio": "https://x/a.wav"}, "validation_error", "image must be"),
    ({"image": "https://x/a.png", "audio": "https://x/a.wav", "size": 300}, "validation_error", "size"),
    ({"image": "https://x/a.png", "audio": "https://x/a.wav", "seed": -1}, "validation_error", "seed"),
    ({"image": "https://x/a.png", "audio": "https://x/a.wav", "enhancer": "codeformer"}, "validation_error",
     "enhancer"),
    ({"image": "https://x/a.png", "audio": "https://x/a.wav", "metadata": {}}, "unknown_field", "metadata"),
])
def test_split_input_refuses_with_the_api_codes(raw, code, words):
    got_code, message = code_of(lambda: split_input(raw))
    assert got_code == code and words in message, message
    if code == "unknown_field":
        assert ", ".join(INPUT_NAMES) in message


def test_data_uris_decode_with_a_cap(tmp_path):
    dest = tmp_path / "x"
    assert decode_data_uri("data:audio/wav;base64," + base64.b64encode(b"abc").decode(), dest, 10, "audio") == 3
    assert dest.read_bytes() == b"abc"
    assert decode_data_uri("data:,a%20b", dest, 10, "audio") == 3 and dest.read_bytes() == b"a b"
    big = "data:;base64," + base64.b64encode(b"x" * 100).decode()
    assert code_of(lambda: decode_data_uri(big, dest, 50, "image"))[0] == "payload_too_large"
    assert code_of(lambda: decode_data_uri("data:;base64,@@@@", dest, 50, "image"))[0] == "validation_error"
    assert code_of(lambda: decode_data_uri("data:image/png;base64", dest, 50, "image"))[0] == "validation_error"
    assert code_of(lambda: decode_data_uri("data:;base64,", dest, 50, "image"))[0] == "validation_error"


async def test_fetch_media_reads_urls_and_data_uris_with_the_api_guards(settings, tmp_path, face_png,
                                                                        speech_wav):
    limits = input_limits(settings)
    async with serve_files({"face.png": face_png, "speech.wav": speech_wav}) as base, httpx.AsyncClient() as client:
        files = await fetch_media(client, {"image": data_uri(face_png, "image/png"),
                                           "audio": f"{base}/speech.wav"}, tmp_path, limits)
        assert files["image"].read_bytes() == face_png.read_bytes()
        assert files["audio"].read_bytes() == speech_wav.read_bytes()

        async def refused(sources, **overrides):
            with pytest.raises(ApiError) as info:
                await fetch_media(client, sources, tmp_path, limits.__class__(**{**limits.__dict__, **overrides}))
            return info.value.code

        assert await refused({"image": f"{base}/missing.png"}) == "fetch_failed"
        assert await refused({"image": f"{base}/face.png"}, max_image_bytes=1000) == "payload_too_large"
        assert await refused({"image": f"{base}/face.png"}, allow_private_urls=False) == "url_not_allowed"
        assert await refused({"image": "file:///etc/passwd"}) == "url_not_allowed"


async def test_check_media_uses_the_api_content_checks(settings, tmp_path, face_png, noface_png, speech_wav,
                                                       short_speech_wav):
    limits, ffmpeg = input_limits(settings), imageio_ffmpeg.get_ffmpeg_exe()
    await check_media({"image": noface_png, "audio": short_speech_wav}, limits, ffmpeg)  # the face: at render
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")

    async def refused(files):
        with pytest.raises(ApiError) as info:
            await check_media(files, limits, ffmpeg)
        return info.value.code

    # a text file is no allowed container: refused by content before any decoder sees it
    assert await refused({"image": text, "audio": short_speech_wav}) == "unsupported_media_type"
    assert await refused({"image": face_png, "audio": text}) == "unsupported_media_type"
    assert await refused({"image": face_png, "audio": speech_wav}) == "audio_too_long"  # ~5 s > 2 s
    assert await refused({"image": face_png, "audio": short_speech_wav, "ref_pose": text}) == "unsupported_media_type"
    small = input_limits(make_settings(tmp_path / "o", sadtalker_max_audio_bytes=1000))
    with pytest.raises(ApiError) as info:  # Cog hands over files it fetched itself: their size is checked here
        await check_media({"image": face_png, "audio": short_speech_wav}, small, ffmpeg)
    assert info.value.code == "payload_too_large" and "audio" in info.value.message


def test_inline_delivery_under_the_limit_only(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0\0\0\x20ftypisom" + bytes(range(256)) * 4)
    out = deliver(video, "job-1", None, inline_max_bytes=video.stat().st_size)
    assert out["storage"] == "inline" and out["bytes"] == video.stat().st_size
    assert base64.b64decode(out["video_url"].removeprefix("data:video/mp4;base64,")) == video.read_bytes()
    code, message = code_of(lambda: deliver(video, "job-1", None, inline_max_bytes=100))
    assert code == "video_too_large" and "STORAGE_PROVIDER" in message


def test_s3_delivery_uploads_and_hands_out_a_working_url(tmp_path):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                     aws_secret_access_key="y").create_bucket(Bucket="videos")
        storage = create_storage("s3", {"bucket": "videos", "endpoint_url": endpoint, "region": "us-east-1",
                                        "access_key_id": "x", "secret_access_key": "y"}, local_root=tmp_path)
        video = tmp_path / "v.mp4"
        video.write_bytes(b"mp4 bytes" * 1000)
        out = deliver(video, "sync-3f/../x", storage, inline_max_bytes=0)
        assert out["storage"] == "s3" and out["bytes"] == 9000
        assert "serverless/sync-3f-..-x.mp4" in out["video_url"]
        assert httpx.get(out["video_url"]).content == video.read_bytes()
    finally:
        server.stop()


def test_storage_keys_are_safe():
    assert storage_key("a1b2-c3d4-e5") == "serverless/a1b2-c3d4-e5.mp4"
    assert storage_key("../../etc/passwd") == "serverless/etc-passwd.mp4"
    assert storage_key("...") == "serverless/job.mp4"


def test_progress_updates_use_the_job_shape():
    assert progress_update("preprocess", 0, 1) == {"stage": "preprocess", "percent": 0.0}
    assert progress_update("render", 5, 10) == {"stage": "render", "percent": 50.0, "frames_done": 5,
                                                "frames_total": 10}


def test_errors_keep_their_code():
    assert error_of(ApiError("no_face_detected", "none")) == {"code": "no_face_detected", "message": "none"}
    assert error_of(RuntimeError("boom")) == {"code": "render_failed", "message": "RuntimeError: boom"}


def test_the_runner_refuses_while_checkpoints_are_missing_and_looks_again(tmp_path):
    runner = ModelRunner(tmp_path / "empty", device="cpu", enhancer=False)
    try:
        failed = runner.render({"image": Path("a.png"), "audio": Path("a.wav")}, {}, tmp_path / "o.mp4")
        error = error_of(failed.exception(timeout=30))
        assert error["code"] == "models_unavailable" and "SadTalker_V0.0.2_256.safetensors" in error["message"]
        first = runner.load()
        assert first.exception(timeout=30) is not None
        assert runner.load() is not first  # a failed load is tried again: files may have arrived since
    finally:
        runner.close()
