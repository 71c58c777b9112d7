"""The client as a package: pip-installed with its `sadtalker` command, `run()` (sync and async), and 429/503
retried by itself honouring Retry-After, with one Idempotency-Key so a retry never makes a second job."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest

from sadtalker_client import ApiError, AsyncClient, Client, RetryPolicy, RunResult
from tests.client.live import live_server
from tests.support.app import KEY_A, ROOT, make_settings
from tests.support.fake_renderer import FakeFactory, Script


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory(Script(frames=10, batch_s=0.01, check_faces=False))


class Recording(httpx.HTTPTransport):
    """The real transport, keeping (time, method, path, status, Idempotency-Key) of every exchange; with
    `lose_first_submit`, the first submission reaches the service but its answer is replaced by a 503, as a
    gateway that timed out would answer."""

    def __init__(self, lose_first_submit: bool = False) -> None:
        super().__init__()
        self.log: list[tuple[float, str, str, int, str | None]] = []
        self.lose_first_submit = lose_first_submit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        submit = request.method == "POST" and request.url.path == "/v1/jobs"
        if submit and self.lose_first_submit:
            self.lose_first_submit = False
            response.read()
            response = httpx.Response(503, json={"error": {"code": "bad_gateway", "message": "upstream timed out"}})
        self.log.append((time.monotonic(), request.method, request.url.path, response.status_code,
                         request.headers.get("idempotency-key")))
        return response

    def submits(self) -> list[tuple[float, str, str, int, str | None]]:
        return [entry for entry in self.log if entry[1] == "POST" and entry[2] == "/v1/jobs"]


def _is_mp4(path) -> bool:
    return path.read_bytes()[4:8] == b"ftyp"


def test_run_submits_follows_and_downloads(tmp_path, factory, face_png, speech_wav):
    with live_server(make_settings(tmp_path / "out"), factory) as url, Client(url, KEY_A) as api:
        seen = []
        run = api.run(face_png, speech_wav, tmp_path / "talk.mp4", on_progress=seen.append, still=True)
        assert isinstance(run, RunResult) and run.video == tmp_path / "talk.mp4" and _is_mp4(run.video)
        assert run.job.status == "succeeded" and seen and seen[-1].status == "succeeded"
        assert run.job.result.poster_url and "/poster?exp=" in run.job.result.poster_url
        assert httpx.get(run.job.result.poster_url).headers["content-type"] == "image/jpeg"  # no key needed


async def test_async_run(tmp_path, factory, face_png, speech_wav):
    with live_server(make_settings(tmp_path / "out"), factory) as url:
        async with AsyncClient(url, KEY_A) as api:
            run = await api.run(face_png, speech_wav, tmp_path)
        assert run.video == tmp_path / f"{run.job.id}.mp4" and _is_mp4(run.video)


def test_queue_full_is_retried_after_retry_after_and_makes_one_job(tmp_path, factory, face_png, speech_wav):
    factory.hold.clear()  # the first job holds the worker, the second fills the queue (max 1)
    with live_server(make_settings(tmp_path / "out", sadtalker_max_queue=1), factory) as url, \
            Client(url, KEY_A) as other:
        running = other.submit(face_png, speech_wav)
        queued = other.submit(face_png, speech_wav)
        transport = Recording()
        with Client(url, KEY_A, transport=transport, retry=RetryPolicy(retries=8, max_wait_s=0.3)) as api:
            freer = threading.Timer(0.8, lambda: other.cancel(queued.id))  # a slot frees up after a while
            freer.start()
            try:
                job = api.submit(face_png, speech_wav)
            finally:
                freer.join()
        tries = transport.submits()
        assert [t[3] for t in tries[:-1]] == [429] * (len(tries) - 1) and tries[-1][3] == 202 and len(tries) >= 3
        assert len({t[4] for t in tries}) == 1 and tries[0][4]  # one Idempotency-Key for every try
        gaps = [b[0] - a[0] for a, b in zip(tries, tries[1:], strict=False)]
        assert all(gap >= 0.28 for gap in gaps), gaps  # Retry-After (capped at 0.3 s) was waited for
        assert {j.id for j in other.list(10)} == {running.id, queued.id, job.id}
        factory.hold.set()


def test_retries_are_bounded(tmp_path, factory, face_png, speech_wav):
    factory.hold.clear()
    with live_server(make_settings(tmp_path / "out", sadtalker_max_queue=1), factory) as url, \
            Client(url, KEY_A) as other:
        other.submit(face_png, speech_wav)
        other.submit(face_png, speech_wav)
        transport = Recording()
        with Client(url, KEY_A, transport=transport, retry=RetryPolicy(retries=2, max_wait_s=0.05)) as api, \
                pytest.raises(ApiError) as refused:
            api.submit(face_png, speech_wav)
        assert refused.value.code == "queue_full" and refused.value.status == 429
        assert refused.value.retry_after_s and refused.value.retry_after_s >= 1
        assert [t[3] for t in transport.submits()] == [429, 429, 429]
        assert len(other.list(10)) == 2
        factory.hold.set()


def test_a_lost_answer_retried_returns_the_job_it_made(tmp_path, factory, face_png, speech_wav):
    with live_server(make_settings(tmp_path / "out"), factory) as url:
        transport = Recording(lose_first_submit=True)
        with Client(url, KEY_A, transport=transport, retry=RetryPolicy(max_wait_s=0.05)) as api:
            job = api.submit(face_png, speech_wav)
            assert [t[3] for t in transport.submits()] == [503, 202]
            assert [j.id for j in api.list(10)] == [job.id]  # the retry answered the job the first try made


def test_pip_install_gives_the_sadtalker_command(tmp_path, factory, face_png, speech_wav):
    """A real `pip install` of the package directory (offline: no deps, no build isolation) into a prefix;
    the installed `sadtalker` command runs a job end to end from a directory outside the repository."""
    source = tmp_path / "src" / "sadtalker_client"
    shutil.copytree(ROOT / "sadtalker_client", source, ignore=shutil.ignore_patterns("__pycache__"))
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--prefix", str(prefix), str(source)], check=True, capture_output=True)
    [site] = list(prefix.glob("lib/python*/site-packages"))
    command = prefix / "bin" / "sadtalker"
    work = tmp_path / "work"
    work.mkdir()
    with live_server(make_settings(tmp_path / "out"), factory) as url:
        env = {**os.environ, "PYTHONPATH": str(site), "SADTALKER_API_URL": url, "SADTALKER_API_KEY": KEY_A}
        done = subprocess.run([str(command), "run", str(face_png), str(speech_wav), "--out", "talk.mp4"],
                              cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _is_mp4(work / "talk.mp4")
    shown = subprocess.run([str(command), "--help"], cwd=work, env=env, capture_output=True, text=True)
    assert shown.stdout.startswith("usage: sadtalker ")
    where = subprocess.run([sys.executable, "-c", "import sadtalker_client; print(sadtalker_client.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(site))
