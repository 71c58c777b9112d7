"""run.sh, the pod start command: from another working directory, with the project's virtualenv, no
checkpoints: the service starts, says what is missing, refuses jobs with 503, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.app import KEY_A, ROOT, free_port

pytestmark = pytest.mark.slow


def test_run_sh_starts_the_service_from_anywhere(tmp_path):
    port = free_port()
    env = {**os.environ, "API_PORT": str(port), "API_HOST": "127.0.0.1", "API_KEYS": KEY_A,
           "SADTALKER_VENV": str(ROOT / ".venv"), "SADTALKER_CHECKPOINT_DIR": str(tmp_path / "none"),
           "SADTALKER_OUTPUT_DIR": str(tmp_path / "out"), "SADTALKER_DEVICE": "cpu",
           "SADTALKER_SHUTDOWN_GRACE_S": "2"}
    proc = subprocess.Popen([str(ROOT / "run.sh")], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a first run installs requirements.txt (a no-op when satisfied)
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(url + "/readyz", timeout=2)
                if "failed" in ready.text:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 503
        assert "SadTalker_V0.0.2_256.safetensors" in ready.json()["error"]["message"]
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        submit = httpx.post(url + "/v1/jobs", headers={"X-API-Key": KEY_A},
                            json={"image_url": "https://example.com/a.png", "audio_url": "https://example.com/a.wav"})
        assert submit.status_code == 503 and submit.json()["error"]["code"] == "models_unavailable"
        assert (tmp_path / "out" / "jobs.sqlite3").is_file()
        # run.sh exec'd uvicorn: open requests (event streams) get the jobs' grace + 5 s on SIGTERM, no more
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--timeout-graceful-shutdown") + 1] == b"7"
    finally:
        proc.terminate()
        code = proc.wait(30)
    assert code in (0, -15)
