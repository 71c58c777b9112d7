"""`python -m sadtalker_client` against the running service: commands, output, exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

from sadtalker_client.cli import main
from sadtalker_client.models import Job
from sadtalker_client.progress import ProgressReporter
from tests.client.live import live_server, serve_in_thread
from tests.support.app import KEY_A, free_port, make_settings
from tests.support.fake_renderer import FakeFactory, Script, write_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory(Script(frames=20, batch_s=0.01, check_faces=False))


@pytest.fixture
def server(tmp_path, factory):
    with live_server(make_settings(tmp_path / "out"), factory) as url:
        yield url


def run(server: str, *argv: str, key: str = KEY_A) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), env={"SADTALKER_API_URL": server, "SADTALKER_API_KEY": key}, out=out)
    return code, out.getvalue()


def test_submit_wait_out_as_a_process(server, face_png, speech_wav, tmp_path):
    env = {**os.environ, "SADTALKER_API_URL": server, "SADTALKER_API_KEY": KEY_A, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "sadtalker_client", "submit", str(face_png), str(speech_wav), "--still",
         "--preprocess", "full", "--pose-style", "4", "--metadata", '{"user": 7}', "--wait", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[0]
    assert job_id.startswith("job_") and " succeeded" in proc.stdout.splitlines()[0]
    assert (tmp_path / f"{job_id}.mp4").stat().st_size > 1000
    assert str(tmp_path / f"{job_id}.mp4") in proc.stdout
    # without a terminal, progress is one line per stage / 10 %
    assert "render" in proc.stderr and "100.0%" in proc.stderr

    code, out = run(server, "status", job_id, "--json")
    job = json.loads(out)
    assert code == 0 and job["status"] == "succeeded" and job["options"]["pose_style"] == 4
    assert job["metadata"] == {"user": 7} and job["options"]["still"] is True


def test_status_list_download_cancel(server, factory, face_png, speech_wav, tmp_path):
    code, out = run(server, "submit", str(face_png), str(speech_wav))
    job_id = out.split()[0]
    assert code == 0 and out.split()[1] in ("queued", "running")
    assert run(server, "wait", job_id)[0] == 0
    code, out = run(server, "download", job_id, "--out", str(tmp_path / "v.mp4"))
    assert code == 0 and out.strip() == str(tmp_path / "v.mp4") and (tmp_path / "v.mp4").stat().st_size > 1000
    code, out = run(server, "list")
    assert code == 0 and job_id in out and "succeeded" in out

    factory.hold.clear()
    held = run(server, "submit", str(face_png), str(speech_wav))[1].split()[0]
    assert run(server, "wait", held, "--timeout", "0.3")[0] == 5
    code, _ = run(server, "cancel", held)
    assert code == 0
    code, out = run(server, "wait", held)
    assert code == 1 and "canceled" in out


def test_refusals_and_exit_codes(server, face_png, speech_wav, tmp_path, capsys):
    assert run(server, "status", "job_missing")[0] == 3
    assert "not_found (HTTP 404)" in capsys.readouterr().err
    assert run(server, "status", "job_missing", key="wrong")[0] == 3
    assert "SADTALKER_API_KEY" in capsys.readouterr().err
    assert run(server, "submit", str(face_png), str(tmp_path / "none.wav"))[0] == 2
    assert "cannot read the audio file" in capsys.readouterr().err
    assert run(f"http://127.0.0.1:{free_port()}", "status", "job_x")[0] == 4
    with pytest.raises(SystemExit) as usage:
        run(server, "submit", str(face_png), str(speech_wav), "--metadata", "{not json")
    assert usage.value.code == 2


def test_failed_job_and_preflight(tmp_path, face_png, noface_png, speech_wav, capsys):
    factory = FakeFactory(Script(fail_code="render_failed"))
    with live_server(make_settings(tmp_path / "out"), factory) as url:
        code, out = run(url, "submit", str(face_png), str(speech_wav), "--wait")
        assert code == 1 and "render_failed" in out
        code, out = run(url, "preflight", str(noface_png), str(speech_wav))
        assert code == 3 and "no_face_detected" in out and "try: " in out
        assert "audio: " in out and "at 22050 Hz" in out
        code, out = run(url, "submit", str(noface_png), str(speech_wav))
        assert code == 3 and "no_face_detected (HTTP 422)" in capsys.readouterr().err


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    base = {"id": "job_1", "created_at": "2026-11-27T16:00:00.000Z", "updated_at": "2026-11-27T16:00:01.000Z"}
    with ProgressReporter(screen) as reporter:
        reporter.update(Job.from_dict({**base, "status": "queued", "queue_position": 2}))
        reporter.update(Job.from_dict({**base, "status": "running", "progress": {
            "stage": "render", "percent": 40.0, "frames_done": 0, "frames_total": 130, "eta_s": None}}))
        reporter.update(Job.from_dict({**base, "status": "running", "progress": {
            "stage": "render", "percent": 44.0, "frames_done": 52, "frames_total": 130, "eta_s": 3.2}}))
        reporter.update(Job.from_dict({**base, "status": "succeeded", "progress": {"stage": "upload",
                                                                                   "percent": 100.0}}))
    text = screen.getvalue()
    assert "queued (position 2)" in text and "render 52/130 frames, ETA 3 s" in text
    assert "render 0/130 frames, ETA unknown" in text
    assert " 44%" in text and "100%" in text


def test_url_inputs_reference_video_and_webhook_events(server, face_png, speech_wav, tmp_path, capsys):
    write_video(speech_wav, tmp_path / "pose.mp4", 64, 10)
    files = {"face.png": face_png, "speech.wav": speech_wav}
    app = Starlette(routes=[Route("/{name}", lambda request: FileResponse(files[request.path_params["name"]]))])
    with serve_in_thread(app) as origin:
        code, out = run(server, "submit", f"{origin}/face.png", f"{origin}/speech.wav", "--ref-pose",
                        str(tmp_path / "pose.mp4"), "--webhook-events", "job.succeeded,job.failed", "--wait")
    assert code == 0 and " succeeded" in out

    not_video = tmp_path / "blinks.mp4"
    not_video.write_text("not a video")
    assert run(server, "submit", str(face_png), str(speech_wav), "--ref-eyeblink", str(not_video))[0] == 3
    assert "unsupported_media_type" in capsys.readouterr().err  # text is no video container
    assert run(server, "submit", str(face_png), str(speech_wav), "--webhook-events", "job.exploded")[0] == 3
    assert "validation_error" in capsys.readouterr().err
