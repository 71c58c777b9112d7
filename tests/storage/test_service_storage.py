"""Storage through the real API: jobs publish to S3 (moto's server) and Supabase (the local Storage API server),
the job JSON points at the stored video, the video endpoint redirects to it, and DELETE removes it."""

from __future__ import annotations

from pathlib import Path

import httpx
from supabase_server import FakeSupabase, new_s3_bucket, new_supabase_bucket

from tests.support.app import make_settings, running_app, wait_status
from tests.support.fake_renderer import FakeFactory


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

        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert s3_admin.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


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

        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert supabase_server.buckets[bucket].objects == {}


async def test_unusable_bucket_fails_the_job_with_storage_error(tmp_path, s3_endpoint, face_png, speech_wav):
    settings = make_settings(tmp_path / "out", storage_provider="s3", s3_bucket="no-such-bucket",
                             s3_endpoint_url=s3_endpoint, s3_region="us-east-1",
                             s3_access_key_id="AKIDSERVICE", s3_secret_access_key="service-secret")
    async with running_app(settings, FakeFactory()) as (_, client):
        job = await _run_job(client, face_png, speech_wav)
        assert job["status"] == "failed" and job["error"]["code"] == "storage_error", job
        assert "no-such-bucket" in job["error"]["message"]
