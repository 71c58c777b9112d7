"""Recovery at start-up: recorded outcomes applied instead of a re-run, interrupted work swept, a re-run shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jobs import Failure, Job, JobManager, JobStatus, JobStore, ManagerConfig, RenderOptions, WorkerPool
from jobs.workdir import WorkDir
from tests.support.fake_renderer import FakeFactory


def _job(job_id: str, status: JobStatus, attempts: int, inputs: dict[str, str] | None = None) -> Job:
    return Job(id=job_id, owner="o", options=RenderOptions(), inputs=inputs or {"image": "/nope", "audio": "/nope"},
               status=status, attempts=attempts)


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


async def test_recovery_applies_recorded_outcomes_and_sweeps_interrupted_work(tmp_path, face_jpg, short_speech_wav):
    work = WorkDir(tmp_path)
    store = JobStore(tmp_path / "jobs.sqlite3")
    queued_inputs = {"image": str(_touch(work.input_dir("job_q") / "image.upload", face_jpg.read_bytes())),
                     "audio": str(_touch(work.input_dir("job_q") / "audio.upload", short_speech_wav.read_bytes()))}
    store.save(_job("job_q", JobStatus.QUEUED, 0, queued_inputs))
    store.save(_job("job_r", JobStatus.RUNNING, 2))  # ran twice already: fails as interrupted
    store.save(_job("job_s", JobStatus.RUNNING, 1))  # ended while its final save failed (disk full)
    work.open_slot("job_s")
    assert work.write_slot("job_s", {"status": "failed", "finished_at": 1.0, "updated_at": 1.0, "result": None,
                                     "unpublished": None,
                                     "error": {"code": "storage_full", "message": "the disk is full"}})
    store.close()
    leftovers = [
        _touch(work.render_dir("job_r") / ".output.mp4.partial"),  # the encoder's file of a killed render
        _touch(work.input_dir("job_orphan") / "audio.upload"),  # killed mid-upload: never recorded
        _touch(tmp_path / "preflight" / "abc" / "image.upload"),
        _touch(tmp_path / "videos" / ".job_x.mp4.k2j3.part"),  # a local store's half copy
    ]
    factory = FakeFactory()
    factory.hold.clear()  # job_q starts and waits at its first batch boundary
    manager = JobManager(JobStore(tmp_path / "jobs.sqlite3"), WorkerPool(factory, ["cpu"]),
                         ManagerConfig(work_dir=tmp_path))
    await manager.start()
    try:
        recovered = manager.get("job_s")
        assert recovered.status is JobStatus.FAILED and recovered.error == Failure("storage_full", "the disk is full")
        assert manager.store.get("job_s").status is JobStatus.FAILED and not work.slot_path("job_s").exists()
        assert manager.get("job_r").error.code == "interrupted"
        assert [path for path in leftovers if path.exists()] == []
        assert Path(queued_inputs["image"]).is_file(), "a queued job keeps its inputs"
        await asyncio.to_thread(factory.wait_started, "job_q")
        assert factory.started == ["job_q"], "only the queued job runs"
    finally:
        factory.hold.set()
        await manager.close()


async def test_a_job_run_again_after_a_crash_says_so(tmp_path, face_jpg, short_speech_wav):
    work = WorkDir(tmp_path)
    inputs = {"image": str(_touch(work.input_dir("job_c") / "image.upload", face_jpg.read_bytes())),
              "audio": str(_touch(work.input_dir("job_c") / "audio.upload", short_speech_wav.read_bytes()))}
    store = JobStore(tmp_path / "jobs.sqlite3")
    store.save(_job("job_c", JobStatus.RUNNING, 1, inputs))
    store.close()
    manager = JobManager(JobStore(tmp_path / "jobs.sqlite3"), WorkerPool(FakeFactory(), ["cpu"]),
                         ManagerConfig(work_dir=tmp_path))
    await manager.start()
    try:
        final = [snapshot async for snapshot in manager.watch("job_c")][-1]
        assert final["status"] == "succeeded" and final["attempts"] == 2
        for _ in range(200):  # the render folder goes right after the terminal event
            if not work.render_dir("job_c").exists():
                break
            await asyncio.sleep(0.01)
        assert not work.input_dir("job_c").exists() and not work.render_dir("job_c").exists()
    finally:
        await manager.close()
