"""A real uvicorn process on loopback: crash and graceful-shutdown recovery on the same database, and HTTP Range
downloads."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.app import KEY_A, ServerProcess

pytestmark = pytest.mark.slow


def _env(tmp_path, batch_s: float, **extra: str) -> dict[str, str]:
    return {"API_KEYS": KEY_A, "API_KEY": "", "SADTALKER_OUTPUT_DIR": str(tmp_path / "out"),
            "SADTALKER_DEVICE": "cpu", "SADTALKER_WORKERS": "1", "SADTALKER_ALLOW_PRIVATE_URLS": "true",
            "SADTALKER_RETENTION_HOURS": "0", "FAKE_FRAMES": "60", "FAKE_BATCH_S": str(batch_s), **extra}


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": KEY_A}, timeout=30)


def _submit(client: httpx.Client, face_jpg, speech) -> str:
    files = {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", speech.read_bytes())}
    response = client.post("/v1/jobs", files=files)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _wait(client: httpx.Client, job_id: str, check, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if check(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def _running(job: dict) -> bool:
    return job["status"] == "running" and job["progress"]["percent"] > 20


def test_crash_reruns_once_then_interrupted_and_range(tmp_path, servers, face_jpg, short_speech_wav):
    slow = servers(_env(tmp_path, batch_s=0.2))
    with _client(slow) as client:
        a = _submit(client, face_jpg, short_speech_wav)
        b = _submit(client, face_jpg, short_speech_wav)
        created = _wait(client, a, _running)["created_at"]
    slow.kill()  # dies mid-job: a was running, b queued

    fast = servers(_env(tmp_path, batch_s=0))
    with _client(fast) as client:
        job_a = _wait(client, a, lambda j: j["status"] == "succeeded")
        assert job_a["created_at"] == created and job_a["result"]["frames"] == 60
        assert _wait(client, b, lambda j: j["status"] == "succeeded")["result"] is not None
        size = job_a["result"]["bytes"]
        full = client.get(f"/v1/jobs/{a}/video")
        assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes" and len(full.content) == size
        part = client.get(f"/v1/jobs/{a}/video", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == full.content[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{size}"
        tail = client.get(f"/v1/jobs/{a}/video", headers={"Range": "bytes=-50"})
        assert tail.status_code == 206 and tail.content == full.content[-50:]
        beyond = client.get(f"/v1/jobs/{a}/video", headers={"Range": f"bytes={size + 10}-"})
        assert beyond.status_code == 416
    fast.terminate()

    c = None
    for _attempt in (1, 2):  # c is killed mid-run twice: it runs again once, then fails as interrupted
        server = servers(_env(tmp_path, batch_s=0.2))
        with _client(server) as client:
            c = c or _submit(client, face_jpg, short_speech_wav)
            _wait(client, c, _running)
        server.kill()
    server = servers(_env(tmp_path, batch_s=0))
    with _client(server) as client:
        job_c = client.get(f"/v1/jobs/{c}").json()
        assert job_c["status"] == "failed" and job_c["error"]["code"] == "interrupted", job_c
    server.terminate()


def test_sigterm_lets_a_short_job_finish_and_records_a_long_one_interrupted(tmp_path, servers, face_jpg,
                                                                          short_speech_wav):
    server = servers(_env(tmp_path, batch_s=0.02, SADTALKER_SHUTDOWN_GRACE_S="5"))
    with _client(server) as client:
        short = _submit(client, face_jpg, short_speech_wav)
        _wait(client, short, lambda j: j["status"] == "running")
    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown

    server = servers(_env(tmp_path, batch_s=1.0, SADTALKER_SHUTDOWN_GRACE_S="0.5"))
    with _client(server) as client:
        assert client.get(f"/v1/jobs/{short}").json()["status"] == "succeeded"
        long = _submit(client, face_jpg, short_speech_wav)
        queued = _submit(client, face_jpg, short_speech_wav)
        _wait(client, long, lambda j: j["status"] == "running")
    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown

    server = servers(_env(tmp_path, batch_s=0))
    with _client(server) as client:
        job = client.get(f"/v1/jobs/{long}").json()
        assert job["status"] == "failed" and job["error"]["code"] == "interrupted"
        assert _wait(client, queued, lambda j: j["status"] == "succeeded")["result"]["frames"] == 60
    server.terminate()
