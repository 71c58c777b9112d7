"""A really full or read-only disk under the service (a small tmpfs holding the output folder and the job
database): during a render, during a submission, and at rest.

Each case checks the promises of docs/service.md ("Job states"): a 503 JSON answer with Retry-After for what
is refused, nothing queued by a refused request, no job lost, none run twice, no file left behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from jobs import JobStatus
from tests.support.app import make_settings, running_app, wait_for, wait_status
from tests.support.fake_renderer import FakeFactory, Script

from .conftest import SmallFs

BOUNDARY = "chaosboundary"


def _settings(fs: SmallFs, **overrides):
    return make_settings(fs.root / "out", sadtalker_min_free_mb=1, sadtalker_save_retry_s=0.2, **overrides)


def _files(face_jpg, speech) -> dict:
    return {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", speech.read_bytes())}


def _assert_refused(response, code: str = "storage_unavailable") -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert int(response.headers["retry-after"]) > 0


async def _assert_every_submission_refused(client, files) -> None:
    """POST /v1/jobs, preflight and the legacy endpoint all answer 503 storage_unavailable."""
    for path in ("/v1/jobs", "/v1/preflight", "/generate_talking_video"):
        _assert_refused(await client.post(path, files=files))


async def _wait_until(check, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _left_behind(fs: SmallFs) -> dict[str, list[str]]:
    """Work files that should be gone once nothing runs (the fake renderer's template MP4s excepted)."""
    found = {folder: fs.files(f"out/{folder}") for folder in ("inputs", "outcomes", "preflight", "unpublished")}
    found["renders"] = [name for name in fs.files("out/renders") if not name.startswith(".template-")]
    return {folder: names for folder, names in found.items() if names}


async def test_a_full_disk_during_a_render(small_fs, face_jpg, short_speech_wav, caplog):
    factory = FakeFactory(Script(frames=20, check_faces=False))
    files = _files(face_jpg, short_speech_wav)
    async with running_app(_settings(small_fs), factory) as (app, client):
        manager = app.state.services.manager
        warm = (await client.post("/v1/jobs", files=files)).json()  # also writes the fake's template video
        assert (await wait_status(client, warm["id"], ("succeeded", "failed")))["status"] == "succeeded"
        factory.hold.clear()
        job_id = (await client.post("/v1/jobs", files=files)).json()["id"]
        await asyncio.to_thread(factory.wait_started, job_id)
        ready = await client.get("/readyz", headers={"X-API-Key": ""})
        assert ready.status_code == 200 and job_id not in ready.text, "no job ids without a key"
        assert [worker["busy"] for worker in ready.json()["workers"]] == [True]
        small_fs.fill()
        factory.hold.set()

        failed = await wait_status(client, job_id, ("succeeded", "failed"))
        assert failed["status"] == "failed" and failed["error"]["code"] == "storage_full", failed
        refused_saves = [r for r in caplog.records if job_id in r.getMessage() and "could not be saved" in
                         r.getMessage()]
        assert refused_saves, "premise: the database refused the final save"
        small_fs.fill()  # the failed render's files were removed meanwhile: take that space too
        listed = {status: [j["id"] for j in (await client.get(f"/v1/jobs?status={status}")).json()["data"]]
                  for status in ("running", "failed")}
        assert job_id in listed["failed"] and job_id not in listed["running"], listed
        ready = await wait_for(client, "/readyz", lambda r: r.status_code == 503)
        assert ready.json()["error"]["code"] == "not_ready"
        await _assert_every_submission_refused(client, files)
        assert manager.queue_depth() == 0 and small_fs.files("out/inputs") == []

        small_fs.free()  # space returns: the kept state is saved, the service takes jobs again
        await _wait_until(lambda: manager.store.get(job_id).status is JobStatus.FAILED)
        stored = manager.store.get(job_id)
        assert stored.error.code == "storage_full" and stored.attempts == 1
        assert job_id not in manager._jobs, "once saved, the finished job is no longer held in memory"
        await wait_for(client, "/readyz", lambda r: r.status_code == 200)
        again = await client.post("/v1/jobs", files=files)
        assert again.status_code == 202, again.text
        assert (await wait_status(client, again.json()["id"], ("succeeded", "failed")))["status"] == "succeeded"
    assert factory.started.count(job_id) == 1, "the failed job never ran again"
    assert _left_behind(small_fs) == {}


async def _multipart(face_jpg, filler_bytes: int, chunks_sent: list[int], fill_after: int | None,
                     fs: SmallFs) -> AsyncIterator[bytes]:
    """A multipart body streamed in 64 KiB chunks; the disk is filled after `fill_after` chunks."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + face_jpg.read_bytes() + (
        f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n"
        "Content-Type: audio/wav\r\n\r\n").encode()
    body = head + b"\0" * filler_bytes + f"\r\n--{BOUNDARY}--\r\n".encode()
    for start in range(0, len(body), 65536):
        if fill_after is not None and len(chunks_sent) == fill_after:
            fs.fill()
        chunks_sent.append(start)
        yield body[start:start + 65536]


async def test_a_full_disk_during_a_submission(small_fs, face_jpg, short_speech_wav):
    factory = FakeFactory(Script(frames=20, check_faces=False))
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with running_app(_settings(small_fs), factory) as (app, client):
        manager = app.state.services.manager
        sent: list[int] = []
        response = await client.post("/v1/jobs", headers=headers,
                                     content=_multipart(face_jpg, 4 * 2**20, sent, 2, small_fs))
        _assert_refused(response)
        assert len(sent) > 2, "the disk filled while the upload was being written"
        assert manager.queue_depth() == 0 and (await client.get("/v1/jobs")).json()["data"] == []
        assert small_fs.files("out/inputs") == [] and factory.started == []

        sent.clear()  # still full: refused before the body is read
        response = await client.post("/v1/jobs", headers=headers,
                                     content=_multipart(face_jpg, 4 * 2**20, sent, None, small_fs))
        _assert_refused(response)
        assert len(sent) <= 1, f"{len(sent)} chunks of the body were read before the refusal"
        await _assert_every_submission_refused(client, _files(face_jpg, short_speech_wav))

        small_fs.free()
        await wait_for(client, "/readyz", lambda r: r.status_code == 200)
        accepted = await client.post("/v1/jobs", files=_files(face_jpg, short_speech_wav))
        assert accepted.status_code == 202, accepted.text
        assert (await wait_status(client, accepted.json()["id"], ("succeeded", "failed")))["status"] == "succeeded"
    assert _left_behind(small_fs) == {}


async def test_a_read_only_output_folder(small_fs, face_jpg, short_speech_wav, tmp_path):
    """The output folder's filesystem turns read-only (the database lives elsewhere: a filesystem with a file
    open for writing cannot be remounted read-only)."""
    factory = FakeFactory(Script(frames=20, check_faces=False))
    files = _files(face_jpg, short_speech_wav)
    settings = _settings(small_fs, sadtalker_db_path=tmp_path / "db" / "jobs.sqlite3")
    async with running_app(settings, factory) as (app, client):
        done = (await client.post("/v1/jobs", files=files)).json()
        assert (await wait_status(client, done["id"], ("succeeded", "failed")))["status"] == "succeeded"
        small_fs.remount("ro")
        try:
            ready = await wait_for(client, "/readyz", lambda r: r.status_code == 503)
            assert "cannot be written" in ready.json()["error"]["message"], ready.text
            await _assert_every_submission_refused(client, files)
            assert (await client.get(f"/v1/jobs/{done['id']}")).json()["status"] == "succeeded", "reads still work"
            assert app.state.services.manager.queue_depth() == 0
        finally:
            small_fs.remount("rw")
        await wait_for(client, "/readyz", lambda r: r.status_code == 200)
        accepted = await client.post("/v1/jobs", files=files)
        assert accepted.status_code == 202, accepted.text
        assert (await wait_status(client, accepted.json()["id"], ("succeeded", "failed")))["status"] == "succeeded"
    assert _left_behind(small_fs) == {}


async def test_a_full_disk_under_the_job_database(small_fs, face_jpg, short_speech_wav, tmp_path):
    """The database on its own filesystem, which fills up: the output folder is fine, submissions are not."""
    factory = FakeFactory(Script(frames=20, check_faces=False))
    files = _files(face_jpg, short_speech_wav)
    settings = make_settings(tmp_path / "out", sadtalker_db_path=small_fs.root / "jobs.sqlite3",
                             sadtalker_min_free_mb=1, sadtalker_save_retry_s=0.2)
    async with running_app(settings, factory) as (app, client):
        small_fs.fill()
        ready = await wait_for(client, "/readyz", lambda r: r.status_code == 503)
        assert "job database" in ready.json()["error"]["message"], ready.text
        await _assert_every_submission_refused(client, files)
        assert app.state.services.manager.queue_depth() == 0 and factory.started == []
        small_fs.free()
        await wait_for(client, "/readyz", lambda r: r.status_code == 200)
        accepted = await client.post("/v1/jobs", files=files)
        assert accepted.status_code == 202, accepted.text
        assert (await wait_status(client, accepted.json()["id"], ("succeeded", "failed")))["status"] == "succeeded"
    out = tmp_path / "out"
    assert [p for folder in ("inputs", "preflight", "outcomes") for p in (out / folder).rglob("*") if p.is_file()] == []
