"""kill -9 of a real uvicorn process (the fake renderer) and a restart on the same folder: while a job's final
state cannot be saved (full disk), and mid-upload. No job is lost, none runs again, and recovery leaves no file
of the interrupted work behind. (kill -9 mid-render: tests/api/test_restart_range.py; what recovery sweeps and
the `attempts` a re-run shows: tests/jobs/test_recovery.py.)"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support.app import KEY_A, ServerProcess

from .conftest import SmallFs

pytestmark = pytest.mark.slow


def _env(out: Path, batch_s: float, **extra: str) -> dict[str, str]:
    return {"API_KEYS": KEY_A, "API_KEY": "", "SADTALKER_OUTPUT_DIR": str(out), "SADTALKER_DEVICE": "cpu",
            "SADTALKER_WORKERS": "1", "SADTALKER_RETENTION_HOURS": "0", "SADTALKER_MIN_FREE_MB": "1",
            "SADTALKER_SAVE_RETRY_S": "0.2", "FAKE_FRAMES": "60", "FAKE_BATCH_S": str(batch_s), **extra}


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": KEY_A}, timeout=30)


def _submit(client: httpx.Client, face_jpg, speech, **data: str) -> str:
    files = {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", speech.read_bytes())}
    response = client.post("/v1/jobs", files=files, data=data)
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


def _files(out: Path, folder: str) -> list[str]:
    base = out / folder
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


def _left_behind(out: Path) -> dict[str, list[str]]:
    found = {folder: _files(out, folder) for folder in ("inputs", "outcomes", "preflight", "unpublished")}
    found["renders"] = [name for name in _files(out, "renders") if not name.startswith(".template-")]
    return {folder: names for folder, names in found.items() if names}


def test_kill_while_a_final_state_cannot_be_saved(small_fs: SmallFs, servers, face_jpg, short_speech_wav):
    out = small_fs.root / "out"
    server = servers(_env(out, batch_s=0.05))
    with _client(server) as client:
        warm = _submit(client, face_jpg, short_speech_wav, batch_size="32")  # writes the fake's template
        _wait(client, warm, lambda j: j["status"] == "succeeded")
        job_id = _submit(client, face_jpg, short_speech_wav, batch_size="2")
        _wait(client, job_id, lambda j: j["status"] == "running" and j["progress"]["percent"] > 20)
        small_fs.fill()
        failed = _wait(client, job_id, lambda j: j["status"] == "failed")
        assert failed["error"]["code"] == "storage_full", failed
    server.kill()  # before space returns: the database still says "running"
    small_fs.free()

    server = servers(_env(out, batch_s=0))
    with _client(server) as client:
        after = client.get(f"/v1/jobs/{job_id}").json()
        assert after["status"] == "failed" and after["error"]["code"] == "storage_full", after
        assert after["attempts"] == 1, "recovery applied the recorded outcome instead of rendering it again"
        time.sleep(0.5)
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"
        assert client.get(f"/v1/jobs/{warm}").json()["status"] == "succeeded"
    server.terminate()
    assert _left_behind(out) == {}


def test_kill_mid_upload_leaves_no_job_and_no_file(tmp_path, servers, face_jpg):
    out = tmp_path / "out"
    server = servers(_env(out, batch_s=0))
    boundary = "killboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + face_jpg.read_bytes() + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n").encode() + b"\0" * 2**20
    request = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY_A}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               f"Content-Length: {len(head) + 4 * 2**20}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + head)
        deadline = time.monotonic() + 10
        while not any(name.endswith("audio.upload") for name in _files(out, "inputs")):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.02)
        server.kill()  # dies with half a body written

    server = servers(_env(out, batch_s=0))
    with _client(server) as client:
        assert client.get("/v1/jobs").json()["data"] == [], "a request that never completed queued nothing"
    server.terminate()
    assert _left_behind(out) == {}
