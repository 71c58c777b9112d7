"""Face checks before queueing run while renders run, many rounds: no model object is ever used by two
threads (the issue's libc crash came from the face check borrowing the rendering worker's detector)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api.renderer import pipeline_renderer_factory
from jobs import JobStatus, RenderRequest, WorkerPool
from jobs.runner import CancelToken, run_render
from tests.support.app import make_settings, running_app, wait_status
from tests.support.fake_renderer import FakeFactory, Script

ROUNDS = 6


async def test_face_checks_during_renders_use_their_own_thread(tmp_path, face_jpg, noface_png, short_speech_wav):
    factory = FakeFactory(Script(frames=20, batch_s=0.002))
    face = {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", short_speech_wav.read_bytes())}
    noface = {**face, "image": ("c.png", noface_png.read_bytes())}
    async with running_app(make_settings(tmp_path / "out"), factory) as (app, client):
        job_ids = []
        for round_no in range(ROUNDS):
            accepted = await client.post("/v1/jobs", files=face)
            assert accepted.status_code == 202, accepted.text
            job_ids.append(accepted.json()["id"])
            checked = await client.post("/v1/preflight", files=face)  # while that job renders
            assert checked.json()["ok"] is True and checked.json()["face"]["detector"] == "dlib", checked.text
            if round_no % 3 == 0:
                refused = await client.post("/v1/jobs", files=noface)
                assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_face_detected"
        for job_id in job_ids:
            assert (await wait_status(client, job_id, ("succeeded", "failed")))["status"] == "succeeded"
        assert app.state.services.manager.queue_depth() == 0
    assert len(factory.started) == ROUNDS, "refused submissions queued nothing"
    used = list(factory.threads.values())
    assert len(used) == 2 and all(len(threads) == 1 for threads in used), factory.threads
    assert used[0] != used[1], "the face checker and the renderer never share a thread"


@pytest.mark.slow
async def test_the_real_pipeline_checks_faces_while_it_renders(tmp_path, reference_dir, face_png, short_speech_wav):
    """The production renderer on small stand-in checkpoints: face checks in a loop on the check thread while
    a render runs on the worker thread (one render: the rounds are the fast test's); the checker holds its own
    face analyzer."""
    from sadtalker.standin import write_standins

    checkpoints = write_standins(tmp_path / "ckpt", reference_dir, small=True)
    pool = WorkerPool(pipeline_renderer_factory(checkpoints, enhancer=False), ["cpu"])
    await pool.start()
    try:
        worker = pool.workers[0]
        assert worker.state == "ready", worker.error
        rendering, checks = True, []

        async def check_while_rendering() -> None:
            while rendering:
                checks.append((await pool.check_face(face_png))["faces"])

        checker = asyncio.create_task(check_while_rendering())
        try:
            for i in range(1):
                request = RenderRequest(f"job_{i}", face_png, short_speech_wav, tmp_path / f"out{i}.mp4")
                outcome = await run_render(worker, request, lambda *report: None, CancelToken(), 600)
                assert outcome.status is JobStatus.SUCCEEDED, outcome.failure
                assert Path(outcome.result.video_path).stat().st_size > 0
        finally:
            rendering = False
            await checker
        assert len(checks) >= 2 and all(faces >= 1 for faces in checks), checks
        assert pool._checker.pipeline.analyzer is not worker.renderer.pipeline.analyzer
    finally:
        pool.close()
