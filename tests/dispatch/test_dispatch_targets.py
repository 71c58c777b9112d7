"""The dispatcher's other targets, end to end over real Redis and loopback HTTP: a stand-in legacy app that
has only `/generate_talking_video` (JSON or MP4 answers, no /readyz), and a stand-in RunPod serverless
endpoint (`/run` + `/status/{id}` with the endpoint's API key)."""

from __future__ import annotations

import subprocess

import httpx
import imageio_ffmpeg
import pytest
from dispatch_platform import create, platform_api, wait_finished
from dispatch_servers import FakeServerless, LegacyApp, serve

pytestmark = pytest.mark.redis

LEGACY = "/generate_talking_video"


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    """A real 1 s MP4 (what a legacy app or a serverless worker would produce)."""
    out = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x64:rate=25", "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
                   check=True)
    return out.read_bytes()


async def test_legacy_app_with_only_its_route_works_with_one_setting(media, mp4, make_settings, start_dispatcher):
    app = LegacyApp(mp4, answer="json")
    with serve(app.handler()) as url:
        settings = make_settings(runpod_endpoints=url, remote_create_path=LEGACY)  # nothing else set
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            status = await wait_finished(client, await create(client, media, poseStyle=4))
        assert status["state"] == "completed", status
        assert status["result"]["videoUrl"] == f"{url}/results/talk.mp4"
        assert httpx.get(status["result"]["videoUrl"], timeout=5).content == mp4
    assert app.requests[:2] == [f"GET {LEGACY}", f"POST {LEGACY}"]  # the probe is one the app answers
    assert not any("/readyz" in r for r in app.requests)
    assert {"image", "audio", "pose_style"} <= set(app.fields[0])


async def test_legacy_mp4_answer_is_stored_and_served(media, mp4, make_settings, start_dispatcher, tmp_path):
    app = LegacyApp(mp4, answer="mp4")
    with serve(app.handler()) as url:
        settings = make_settings(runpod_endpoints=url, remote_create_path=LEGACY, dispatch_output_dir=tmp_path,
                                 dispatch_public_base_url="http://platform")
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            status = await wait_finished(client, await create(client, media))
            assert status["state"] == "completed", status
            result = status["result"]
            assert result["videoUrl"].startswith("http://platform/api/sadtalker/videos/")
            assert result["storage"] == "local" and result["bytes"] == len(mp4)
            video = await client.get(result["videoUrl"])
            missing = await client.get("/api/sadtalker/videos/nope.mp4")
    assert video.status_code == 200 and video.content == mp4
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert [p.name for p in tmp_path.iterdir()] == [result["videoUrl"].rsplit("/", 1)[1]]


async def test_legacy_mp4_without_a_video_url_base_fails_clearly(media, mp4, make_settings, start_dispatcher):
    app = LegacyApp(mp4, answer="mp4")
    with serve(app.handler()) as url:
        settings = make_settings(runpod_endpoints=url, remote_create_path=LEGACY)
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            status = await wait_finished(client, await create(client, media))
    assert status["state"] == "failed" and status["attemptsMade"] == 1
    assert status["error"].startswith("storage_error:") and "SADTALKER_DISPATCH_PUBLIC_BASE_URL" in status["error"]


async def test_serverless_endpoint_runs_the_job_with_progress(media, mp4, make_settings, start_dispatcher):
    endpoint = FakeServerless("sls-key", mp4)
    with serve(endpoint.handler()) as url:
        settings = make_settings(runpod_endpoints=f"{url}/v2/ep1||sls-key|serverless")
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            job_id = await create(client, media, poseStyle=5, still=True)
            seen = []
            while not seen or seen[-1]["state"] not in ("completed", "failed"):
                seen.append((await client.get("/api/sadtalker/status", params={"id": job_id})).json())
    status = seen[-1]
    assert status["state"] == "completed", status
    result = status["result"]
    assert result["target"] == "serverless" and result["pod"] == f"{url}/v2/ep1"
    assert result["videoUrl"] == f"{url}/files/{result['remoteJobId']}.mp4" and result["frames"] == 25
    (job,) = endpoint.jobs.values()
    assert job["input"] == {"image": media.image_url, "audio": media.audio_url, "pose_style": 5, "still": True}
    assert any(5 < s["progress"] < 100 for s in seen), seen  # the worker's progress reached BullMQ


async def test_serverless_bad_input_fails_at_once_and_inline_video_is_stored(media, mp4, make_settings,
                                                                            start_dispatcher, tmp_path):
    endpoint = FakeServerless("sls-key", mp4, inline=True)
    with serve(endpoint.handler()) as url:
        settings = make_settings(runpod_endpoints=f"{url}/v2/ep1||sls-key|serverless", dispatch_output_dir=tmp_path,
                                 dispatch_public_base_url="http://platform")
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            bad = await wait_finished(client, await create(client, media, imageUrl=media.audio_url))
            good = await wait_finished(client, await create(client, media))
            video = await client.get(good["result"]["videoUrl"])
    assert bad["state"] == "failed" and bad["attemptsMade"] == 1
    assert bad["error"] == "invalid_image: the image does not decode"
    assert good["state"] == "completed" and good["result"]["storage"] == "local"
    assert video.content == mp4


async def test_serverless_endpoint_with_a_wrong_key_is_skipped(media, mp4, make_settings, start_dispatcher):
    endpoint = FakeServerless("sls-key", mp4)
    with serve(endpoint.handler()) as url:
        settings = make_settings(runpod_endpoints=f"{url}/v2/ep1||wrong-key|serverless", job_attempts=1)
        await start_dispatcher(settings)
        async with platform_api(settings) as client:
            status = await wait_finished(client, await create(client, media))
    assert status["state"] == "failed" and status["error"].startswith("no_healthy_pod:")
    assert "401" in status["error"] and endpoint.jobs == {}
