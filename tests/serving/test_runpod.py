"""The RunPod worker (handler.py) through the SDK's local API server (`--rp_serve_api`) on stand-in
checkpoints: /runsync renders a real MP4, progress updates reach the SDK's job-output URL over HTTP, /run +
/status/{id} follow a job, and bad inputs answer FAILED with the SDK's error shape carrying the API's error code."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.serving.helpers import child_process, data_uri, decode_data_url, probe, serving_env
from tests.support.app import free_port
from tests.support.files import serve_files

pytestmark = pytest.mark.slow


class ProgressReceiver:
    """Stands in for RunPod's job-output endpoint (RUNPOD_WEBHOOK_POST_OUTPUT), where the SDK posts
    progress updates: records each {"status": "IN_PROGRESS", "output": ...} body by job id."""

    def __init__(self):
        self.updates: dict[str, list[dict]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                query = parse_qs(urlparse(self.path).query)
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                receiver.updates.setdefault(query["id"][0], []).append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url_template = f"http://127.0.0.1:{self.server.server_port}/job-output?id=$ID"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def progress_receiver():
    receiver = ProgressReceiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def runpod_api(serving_checkpoints, progress_receiver, tmp_path_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = serving_env(serving_checkpoints, RUNPOD_WEBHOOK_POST_OUTPUT=progress_receiver.url_template,
                      RUNPOD_LOG_LEVEL="INFO")
    log = tmp_path_factory.mktemp("runpod") / "worker.log"
    args = [sys.executable, "handler.py", "--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)]
    with child_process(args, env, lambda: httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200, log):
        yield url


def post(url: str, path: str, body: dict | None = None) -> dict:
    response = httpx.post(f"{url}{path}", json=body, timeout=180)
    assert response.status_code == 200, response.text
    return response.json()


def check_output(output: dict, tmp_path, frames: int) -> None:
    assert output["storage"] == "inline" and output["frames"] == frames, {k: output[k] for k in output if k != "video_url"}
    video = decode_data_url(output["video_url"])
    assert output["bytes"] == len(video) and output["face_detector"] == "dlib"
    description = probe(video, tmp_path)
    assert "Video: h264" in description and "Audio: aac" in description, description


async def test_runsync_renders_from_a_url_and_a_data_uri_and_reports_progress(runpod_api, progress_receiver,
                                                                             face_jpg, tiny_speech_wav, tmp_path):
    async with serve_files({"face.jpg": face_jpg}) as base:
        body = await asyncio.to_thread(post, runpod_api, "/runsync", {"input": {
            "image": f"{base}/face.jpg", "audio": data_uri(tiny_speech_wav, "audio/wav"), "seed": 11,
            "batch_size": 8}})
    assert body["status"] == "COMPLETED", body.get("error")
    check_output(body["output"], tmp_path, frames=5)
    assert body["output"]["seed"] == 11 and body["output"]["duration_s"] == 0.2
    updates = progress_receiver.updates.get(body["id"], [])
    assert all(update["status"] == "IN_PROGRESS" for update in updates)
    stages = [update["output"]["stage"] for update in updates]
    assert stages[0] == "preprocess" and "render" in stages and stages[-1] == "encode", updates
    percents = [update["output"]["percent"] for update in updates]
    assert percents == sorted(percents) and percents[-1] > 90
    render = [update["output"] for update in updates if update["output"]["stage"] == "render"]
    assert render[-1]["frames_done"] == render[-1]["frames_total"] == 5


def error_of(body: dict) -> dict:
    assert body["status"] == "FAILED" and "output" not in body, body
    return json.loads(body["error"])


@pytest.mark.parametrize(("inputs", "code", "words"), [
    ({"size": 300}, "validation_error", "size"),
    ({"expression_scale": 9}, "validation_error", "expression_scale"),
    ({"webhook_url": "https://example.com"}, "unknown_field", "accepted: image, audio"),
    ({"image": None}, "validation_error", "image is required"),
    ({"image": "ftp://example.com/face.png"}, "url_not_allowed", "http and https"),
    ({"image": "http://169.254.169.254/latest/meta-data"}, "url_not_allowed", "metadata"),
    ({"audio": "data:audio/wav;base64,@@@"}, "validation_error", "base64"),
    ({"audio": "PLACEHOLDER_IMAGE"}, "unsupported_media_type", "not audio"),  # a PNG sent as audio
])
def test_bad_inputs_fail_with_a_code(runpod_api, face_png, tiny_speech_wav, inputs, code, words):
    values = {"image": data_uri(face_png, "image/png"), "audio": data_uri(tiny_speech_wav, "audio/wav"), **inputs}
    values = {name: data_uri(face_png, "audio/wav") if value == "PLACEHOLDER_IMAGE" else value
              for name, value in values.items() if value is not None}
    error = error_of(post(runpod_api, "/runsync", {"input": values}))
    assert error["code"] == code and words in error["message"], error


def test_run_then_status_of_a_photo_without_a_face(runpod_api, noface_png, tiny_speech_wav):
    queued = post(runpod_api, "/run", {"input": {"image": data_uri(noface_png, "image/png"),
                                                 "audio": data_uri(tiny_speech_wav, "audio/wav")}})
    assert queued["status"] == "IN_PROGRESS" and queued["id"]
    # the SDK's local /status runs the queued job and answers when it is done
    error = error_of(post(runpod_api, f"/status/{queued['id']}"))
    assert error["code"] == "no_face_detected", error


def test_an_input_that_is_not_an_object_is_refused(runpod_api):
    error = error_of(post(runpod_api, "/runsync", {"input": {"image": ["a", "b"], "audio": 3}}))
    assert error["code"] == "validation_error" and "image must be an http(s) URL or a data: URI" in error["message"]
