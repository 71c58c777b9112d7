"""The Cog predictor (predict.py) through Cog's own HTTP server (`python -m cog.server.http`, coglet) on
stand-in checkpoints: READY after setup, a real render from data: URIs and loopback URLs, and bad inputs
answered with Cog's failed status and the API's error code."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from tests.serving.helpers import child_process, data_uri, decode_data_url, probe, serving_env
from tests.support.app import free_port
from tests.support.files import serve_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cog_server(serving_checkpoints, tmp_path_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = serving_env(serving_checkpoints, PORT=str(port), COG_PREDICT_TYPE_STUB="predict.py:Predictor")
    log = tmp_path_factory.mktemp("cog") / "server.log"

    def ready() -> bool:
        status = httpx.get(f"{url}/health-check", timeout=2).json().get("status")
        if status == "SETUP_FAILED":
            raise RuntimeError(f"Cog setup failed:\n{log.read_text()[-3000:]}")
        return status == "READY"

    with child_process([sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"], env, ready, log):
        yield url


def predict(url: str, inputs: dict) -> dict:
    response = httpx.post(f"{url}/predictions", json={"input": inputs}, timeout=180)
    assert response.status_code == 200, response.text
    return response.json()


async def test_predicts_an_mp4_from_a_loopback_url_and_a_data_uri(cog_server, face_jpg, tiny_speech_wav, tmp_path):
    async with serve_files({"face.jpg": face_jpg}) as base:
        body = await asyncio.to_thread(predict, cog_server, {
            "image": f"{base}/face.jpg", "audio": data_uri(tiny_speech_wav, "audio/wav"), "seed": 7,
            "batch_size": 8})
    assert body["status"] == "succeeded", body
    description = probe(decode_data_url(body["output"]), tmp_path)
    assert "Video: h264" in description and "Audio: aac" in description, description
    assert "progress: render 5/5 frames" in body["logs"] and "seed 7" in body["logs"], body["logs"]


@pytest.mark.parametrize(("inputs", "expected"), [
    ({"size": 300}, "validation_error: size"),
    ({"pose_style": 46}, "validation_error: pose_style"),
    ({"preprocess": "zoom"}, "validation_error: preprocess"),
])
def test_bad_options_fail_with_the_api_code(cog_server, face_png, tiny_speech_wav, inputs, expected):
    body = predict(cog_server, {"image": data_uri(face_png, "image/png"),
                                "audio": data_uri(tiny_speech_wav, "audio/wav"), **inputs})
    assert body["status"] == "failed" and expected in body["error"], body


def test_bad_media_fail_with_the_api_code(cog_server, noface_png, face_png, tiny_speech_wav):
    noface = predict(cog_server, {"image": data_uri(noface_png, "image/png"),
                                  "audio": data_uri(tiny_speech_wav, "audio/wav")})
    assert noface["status"] == "failed" and "no_face_detected:" in noface["error"], noface
    not_audio = predict(cog_server, {"image": data_uri(face_png, "image/png"),
                                     "audio": data_uri(face_png, "audio/wav")})
    assert not_audio["status"] == "failed" and "unsupported_media_type:" in not_audio["error"], not_audio
