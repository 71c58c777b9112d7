"""Storage through the real API: jobs publish to S3 (moto's server) and Supabase (the local Storage API server),
the job JSON points at the stored video (a URL signed when the job is read), the video endpoint redirects to it,
DELETE removes it, and a failed upload keeps the video until `retry-upload` stores it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import httpx
from supabase_server import FakeSupabase, new_s3_bucket, new_supabase_bucket

from tests.support.app import make_settings, running_app, wait_status
from tests.support.fake_renderer import FakeFactory, Script
from webhooks import generate_secret


def _files(face_png: Path, speech_wav: Path) -> dict:
    return {"image": ("portrait.png", face_png.read_bytes(), "image/png"),
            "audio": ("speech.wav", speech_wav.read_bytes(), "audio/wav")}


async def _run_job(client: httpx.AsyncClient, face_png: Path, speech_wav: Path) -> dict:
    response = await client.post("/v1/jobs", files=_files(face_png, speech_wav))
    assert response.status_code == 202, response.text
    return await wait_status(client, response.json()["id"], ("succeeded", "failed", "canceled"))


async def _download(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as outside:
        return await outside.get(url)


async def test_s3_video_is_stored_served_and_deleted(tmp_path, s3_endpoint, s3_admin, face_png, speech_wav):
    bucket = new_s3_bucket(s3_admin)
    settings = make_settings(tmp_path / "out", storage_provider="s3", s3_bucket=bucket,
                             s3_endpoint_url=s3_endpoint, s3_region="us-east-1", s3_prefix="renders",
                             s3_access_key_id="AKIDSERVICE", s3_secret_access_key="service-secret")
    async with running_app(settings, FakeFactory()) as (_, client):
        ready = (await client.get("/readyz")).json()
        assert ready["storage"] == {"name": "s3", "ok": True, "problem": None}
        job = await _run_job(client, face_png, speech_wav)
        assert job["status"] == "succeeded", job
        result, key = job["result"], f"renders/{job['id']}.mp4"
        assert result["storage"] == "s3" and "X-Amz-Signature=" in result["video_url"]
        head = s3_admin.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == result["bytes"] and head["ContentType"] == "video/mp4"
        video = await _download(result["video_url"])
        assert video.status_code == 200 and len(video.content) == result["bytes"]
        assert video.content[4:8] == b"ftyp"  # an MP4
        redirect = await client.get(f"/v1/jobs/{job['id']}/video")
        assert redirect.status_code == 307 and redirect.headers["location"] == result["video_url"]
        poster_head = s3_admin.head_object(Bucket=bucket, Key=f"renders/{job['id']}.jpg")
        assert poster_head["ContentType"] == "image/jpeg" and "X-Amz-Signature=" in result["poster_url"]
        poster = await _download(result["poster_url"])
        assert poster.status_code == 200 and poster.content[:3] == b"\xff\xd8\xff"  # a JPEG
        redirect = await client.get(f"/v1/jobs/{job['id']}/poster")
        assert redirect.status_code == 307 and redirect.headers["location"] == result["poster_url"]

        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert s3_admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # the video and its poster


async def test_supabase_video_is_stored_served_and_deleted(tmp_path, supabase_server: FakeSupabase, face_png,
                                                           speech_wav):
    bucket = new_supabase_bucket(supabase_server)
    settings = make_settings(tmp_path / "out", storage_provider="supabase", supabase_url=supabase_server.url,
                             supabase_service_role_key=supabase_server.service_key, supabase_bucket=bucket)
    async with running_app(settings, FakeFactory()) as (_, client):
        job = await _run_job(client, face_png, speech_wav)
        assert job["status"] == "succeeded", job
        result = job["result"]
        assert result["storage"] == "supabase" and "/storage/v1/object/sign/" in result["video_url"]
        stored = supabase_server.buckets[bucket].objects[f"{job['id']}.mp4"]
        assert len(stored.data) == result["bytes"] and stored.content_type == "video/mp4"
        video = await _download(result["video_url"])
        assert video.status_code == 200 and video.content == stored.data
        poster = supabase_server.buckets[bucket].objects[f"{job['id']}.jpg"]
        assert poster.content_type == "image/jpeg" and "/storage/v1/object/sign/" in result["poster_url"]
        assert (await _download(result["poster_url"])).content == poster.data

        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert supabase_server.buckets[bucket].objects == {}


async def test_unusable_bucket_fails_the_job_with_storage_error(tmp_path, s3_endpoint, face_png, speech_wav):
    settings = make_settings(tmp_path / "out", storage_provider="s3", s3_bucket="no-such-bucket",
                             s3_endpoint_url=s3_endpoint, s3_region="us-east-1", sadtalker_upload_retry_delays_s="0.05",
                             s3_access_key_id="AKIDSERVICE", s3_secret_access_key="service-secret")
    async with running_app(settings, FakeFactory()) as (_, client):
        ready = (await client.get("/readyz")).json()
        job = await _run_job(client, face_png, speech_wav)
    assert ready["status"] == "ready", "a cloud store that does not answer is reported, not fatal"
    assert ready["storage"]["ok"] is False and "no-such-bucket" in ready["storage"]["problem"]
    assert job["status"] == "failed" and job["error"]["code"] == "storage_error", job
    assert "no-such-bucket" in job["error"]["message"]


async def test_failed_upload_keeps_the_video_and_retry_upload_stores_it(tmp_path, s3_endpoint, s3_admin, face_png,
                                                                       speech_wav, caplog):
    bucket = f"later-{uuid.uuid4().hex[:12]}"  # created only after the first upload has failed
    settings = make_settings(tmp_path / "out", storage_provider="s3", s3_bucket=bucket, s3_endpoint_url=s3_endpoint,
                             s3_region="us-east-1", s3_access_key_id="AKIDSERVICE",
                             s3_secret_access_key="service-secret", sadtalker_upload_retry_delays_s="0.05,0.05",
                             webhook_secret=generate_secret(), sadtalker_webhook_schedule_s="60")
    caplog.set_level(logging.WARNING, logger="storage.base")
    async with running_app(settings, FakeFactory()) as (_, client):
        response = await client.post("/v1/jobs", files=_files(face_png, speech_wav),
                                     data={"webhook_url": "http://127.0.0.1:9/hooks"})
        job_id = response.json()["id"]
        failed = await wait_status(client, job_id, ("succeeded", "failed"))
        assert failed["error"]["code"] == "storage_error" and "retry-upload" in failed["error"]["message"]
        assert failed["result"] is None
        assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2  # three tries in all
        kept = settings.sadtalker_output_dir / "unpublished" / f"{job_id}.mp4"
        render_dir = settings.sadtalker_output_dir / "renders" / job_id
        for _ in range(100):  # the render folder goes just after the job reads as failed
            if not render_dir.exists():
                break
            await asyncio.sleep(0.02)
        assert not render_dir.exists() and kept.read_bytes()[4:8] == b"ftyp"

        again = await client.post(f"/v1/jobs/{job_id}/retry-upload")  # the bucket is still missing
        assert again.status_code == 202 and again.json()["status"] == "running"
        assert again.json()["progress"]["stage"] == "upload"
        assert (await wait_status(client, job_id, ("succeeded", "failed")))["error"]["code"] == "storage_error"
        assert kept.is_file()

        s3_admin.create_bucket(Bucket=bucket)
        assert (await client.post(f"/v1/jobs/{job_id}/retry-upload")).status_code == 202
        done = await wait_status(client, job_id, ("succeeded", "failed"))
        assert done["status"] == "succeeded", done
        head = s3_admin.head_object(Bucket=bucket, Key=f"{job_id}.mp4")
        assert head["ContentLength"] == done["result"]["bytes"] and not kept.exists()
        refused = await client.post(f"/v1/jobs/{job_id}/retry-upload")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_not_retryable"
        assert (await client.post("/v1/jobs/job_nope/retry-upload")).status_code == 404
        deliveries = (await client.get(f"/v1/jobs/{job_id}/deliveries")).json()["data"]
        assert [d["event"] for d in deliveries] == ["job.started", "job.failed", "job.failed", "job.succeeded"]


async def test_retry_upload_refuses_jobs_without_a_kept_video(tmp_path, face_png, speech_wav):
    factory = FakeFactory(Script(fail_code="render_failed"))
    async with running_app(make_settings(tmp_path / "out"), factory) as (_, client):
        job = await _run_job(client, face_png, speech_wav)
        refused = await client.post(f"/v1/jobs/{job['id']}/retry-upload")
    assert job["error"]["code"] == "render_failed"
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_not_retryable"


async def test_presigned_urls_are_made_when_the_job_is_read(tmp_path, s3_endpoint, s3_admin, face_png, speech_wav):
    bucket = new_s3_bucket(s3_admin)
    settings = make_settings(tmp_path / "out", storage_provider="s3", s3_bucket=bucket, s3_endpoint_url=s3_endpoint,
                             s3_region="us-east-1", s3_access_key_id="AKIDSERVICE",
                             s3_secret_access_key="service-secret", storage_url_expiry_s=2)
    async with running_app(settings, FakeFactory()) as (_, client):
        job = await _run_job(client, face_png, speech_wav)
        first = job["result"]["video_url"]
        await asyncio.sleep(1.1)  # past half the URL's lifetime: the next read signs a new one
        later = (await client.get(f"/v1/jobs/{job['id']}")).json()["result"]["video_url"]
        listed = (await client.get("/v1/jobs")).json()["data"][0]["result"]["video_url"]
        redirect = await client.get(f"/v1/jobs/{job['id']}/video")
    assert later != first and "X-Amz-Signature=" in later and listed == later
    assert redirect.status_code == 307 and redirect.headers["location"] == later
    assert (await _download(later)).status_code == 200
