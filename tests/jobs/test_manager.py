"""The job manager on its own: watch(), progress, durability of records, retention, recovery rules."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from jobs import Job, JobManager, JobStatus, JobStore, ManagerConfig, NewJob, RenderOptions, WorkerPool
from jobs.errors import QueueFull
from jobs.manager import ManagerHooks
from tests.support.fake_renderer import FakeFactory


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


async def _manager(tmp_path: Path, factory: FakeFactory, **config) -> JobManager:
    store = JobStore(tmp_path / "jobs.sqlite3")
    manager = JobManager(store, WorkerPool(factory, ["cpu"]), ManagerConfig(work_dir=tmp_path, **config))
    await manager.start()
    await manager.pool.workers[0].loaded.wait()
    return manager


async def _submit(manager: JobManager, speech: Path, face: Path, owner: str = "o1") -> Job:
    job_id = manager.new_id()
    inputs = manager.input_dir(job_id)
    inputs.mkdir(parents=True)
    (inputs / "image.upload").write_bytes(face.read_bytes())
    (inputs / "audio.upload").write_bytes(speech.read_bytes())
    job, _ = await manager.submit(NewJob(id=job_id, owner=owner, options=RenderOptions(batch_size=2, size=256),
                                         inputs={"image": str(inputs / "image.upload"),
                                                 "audio": str(inputs / "audio.upload")}))
    return job


async def test_watch_yields_every_change_until_terminal(tmp_path, factory, face_jpg, short_speech_wav):
    factory.script.batch_s = 0.01
    manager = await _manager(tmp_path, factory)
    try:
        job = await _submit(manager, short_speech_wav, face_jpg)
        seen = [snapshot async for snapshot in manager.watch(job.id)]
        assert seen[-1]["status"] == "succeeded" and seen[-1]["progress"]["percent"] == 100.0
        percents = [s["progress"]["percent"] for s in seen]
        assert percents == sorted(percents) and len(seen) >= 3
        stages = [s["progress"]["stage"] for s in seen if s["progress"]["stage"]]
        assert stages.index("render") < stages.index("encode") < stages.index("upload")
        # The first job: later stages were never measured, so no ETA is guessed before the last one ends.
        assert all(s["progress"]["eta_s"] is None for s in seen[:-1] if s["progress"]["stage"] != "upload")
        assert [s async for s in manager.watch(job.id)][-1]["status"] == "succeeded"  # already finished: one item
        second = await _submit(manager, short_speech_wav, face_jpg)
        etas = [(s["progress"]["frames_done"], s["progress"]["eta_s"]) async for s in manager.watch(second.id)
                if s["progress"]["stage"] == "render"]
        assert etas and all(eta is not None and eta >= 0 for _, eta in etas), etas  # stage speeds now known
    finally:
        await manager.close()


async def test_records_survive_a_restart_and_retention_removes_old_ones(tmp_path, factory, face_jpg,
                                                                        short_speech_wav):
    manager = await _manager(tmp_path, factory)
    job = await _submit(manager, short_speech_wav, face_jpg)
    async for _ in manager.watch(job.id):
        pass
    video = Path(manager.get(job.id).result["key"])
    assert video.is_file() and not manager.input_dir(job.id).exists()
    await manager.close()

    manager = await _manager(tmp_path, factory, retention_s=3600)
    try:
        again = manager.get(job.id)
        assert again.status is JobStatus.SUCCEEDED and again.result["frames"] == 20
        assert await manager.purge_expired() == 0
        again.finished_at = time.time() - 7200
        manager.store.save(again)
        assert await manager.purge_expired() == 1
        assert manager.store.get(job.id) is None and not video.exists()
    finally:
        await manager.close()


async def test_recovery_rules(tmp_path, factory):
    store = JobStore(tmp_path / "jobs.sqlite3")
    for job_id, status, attempts in (("job_q", JobStatus.QUEUED, 0), ("job_r1", JobStatus.RUNNING, 1),
                                     ("job_r2", JobStatus.RUNNING, 2)):
        store.save(Job(id=job_id, owner="o", options=RenderOptions(), inputs={"image": "/nope", "audio": "/nope"},
                       status=status, attempts=attempts))
    store.close()
    factory.hold.clear()  # nothing runs: the recovered state is what the test reads
    manager = await _manager(tmp_path, factory, max_queue=1)
    try:
        assert manager.get("job_r2").status is JobStatus.FAILED
        assert manager.get("job_r2").error.code == "interrupted"
        assert manager.get("job_r1").attempts == 1 and manager.get("job_r1").status is not JobStatus.FAILED
        with pytest.raises(QueueFull):
            manager.check_accepting()
    finally:
        factory.hold.set()
        await manager.close()


async def test_a_renderer_that_fails_to_load_makes_submissions_fail_fast(tmp_path, factory):
    factory.script.load_error = "no checkpoints"
    manager = await _manager(tmp_path, factory)
    try:
        assert manager.pool.state == "failed"
        with pytest.raises(Exception) as caught:
            manager.check_accepting()
        assert caught.value.code == "models_unavailable" and "no checkpoints" in str(caught.value)
        assert manager.workers_alive(), "the worker loop waits to load the models again (SADTALKER_MODEL_RELOAD_S)"
    finally:
        await manager.close()
    assert not manager.workers_alive()


async def test_without_model_reload_a_failed_worker_loop_ends(tmp_path, factory):
    factory.script.load_error = "no checkpoints"
    manager = await _manager(tmp_path, factory, model_reload_s=0)
    try:
        for _ in range(100):
            if not manager.workers_alive():
                break
            await asyncio.sleep(0.01)
        assert not manager.workers_alive(), "nothing will ever load: the loop must not pretend to run"
    finally:
        await manager.close()


async def test_inputs_are_kept_when_asked_and_removed_with_the_job(tmp_path, factory, face_jpg, short_speech_wav):
    manager = await _manager(tmp_path, factory, keep_inputs=True)
    try:
        job = await _submit(manager, short_speech_wav, face_jpg)
        async for _ in manager.watch(job.id):
            pass
        assert (manager.input_dir(job.id) / "image.upload").is_file()
        await manager.delete(job.id)
        assert not manager.input_dir(job.id).exists()
    finally:
        await manager.close()


async def test_a_retry_upload_cut_short_by_a_crash_can_be_retried(tmp_path, factory):
    store = JobStore(tmp_path / "jobs.sqlite3")
    kept = tmp_path / "unpublished" / "job_up.mp4"
    kept.parent.mkdir()
    kept.write_bytes(b"\0\0\0\x18ftypmp42")
    store.save(Job(id="job_up", owner="o", options=RenderOptions(), inputs={}, status=JobStatus.RUNNING, attempts=1,
                   unpublished=str(kept)))
    store.close()
    manager = await _manager(tmp_path, factory)
    try:
        job = manager.get("job_up")
        assert job.status is JobStatus.FAILED and job.error.code == "storage_error"
        assert manager.can_retry_upload(job) and factory.started == [], "not rendered again"
        await manager.retry_upload("job_up")
        async for _ in manager.watch("job_up"):
            pass
        done = manager.get("job_up")
        assert done.status is JobStatus.SUCCEEDED and Path(done.result["key"]).is_file() and not kept.exists()
    finally:
        await manager.close()


async def test_a_shutdown_during_the_upload_keeps_the_video(tmp_path, factory, face_jpg, short_speech_wav):
    uploading = asyncio.Event()

    async def stalled_upload(job: Job, video: Path) -> dict:  # a store that never answers
        uploading.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    manager = await _manager(tmp_path, factory, shutdown_grace_s=0.2)
    manager.hooks = ManagerHooks(publish=stalled_upload)
    job = await _submit(manager, short_speech_wav, face_jpg)
    await asyncio.wait_for(uploading.wait(), 10)
    await manager.close()

    manager = await _manager(tmp_path, factory)
    try:
        failed = manager.get(job.id)
        assert failed.status is JobStatus.FAILED and failed.error.code == "storage_error"
        assert Path(failed.unpublished).read_bytes()[4:8] == b"ftyp" and manager.can_retry_upload(failed)
        await manager.retry_upload(job.id)
        async for _ in manager.watch(job.id):
            pass
        assert manager.get(job.id).status is JobStatus.SUCCEEDED and factory.started == [job.id], "rendered once"
    finally:
        await manager.close()
