"""Links that work without a key (signed, expiring video and poster URLs) and the poster beside every video."""

from __future__ import annotations

import io
import os
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from api.links import SECRET_FILE, LinkSigner
from tests.support.app import make_settings, running_app, wait_status


def _files(face_png, speech_wav) -> dict:
    return {"image": ("a.png", face_png.read_bytes()), "audio": ("a.wav", speech_wav.read_bytes())}


async def _finished_job(client: httpx.AsyncClient, face_png, speech_wav) -> dict:
    response = await client.post("/v1/jobs", files=_files(face_png, speech_wav))
    assert response.status_code == 202, response.text
    done = await wait_status(client, response.json()["id"], ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    return done


async def test_signed_links_play_without_a_key_with_range(settings, factory, face_png, speech_wav):
    async with running_app(settings, factory) as (_, client):
        job = await _finished_job(client, face_png, speech_wav)
        result = job["result"]
        bare = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
        async with bare:
            video = await bare.get(result["video_url"])
            assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
            assert len(video.content) == result["bytes"]
            part = await bare.get(result["video_url"], headers={"Range": "bytes=10-19"})
            assert part.status_code == 206 and part.content == video.content[10:20]
            poster = await bare.get(result["poster_url"])
            assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
            with Image.open(io.BytesIO(poster.content)) as image:
                assert image.format == "JPEG" and image.size == (result["width"], result["height"])
            # without a link, the key is still needed
            plain = await bare.get(job["links"]["video"])
            assert plain.status_code == 401 and plain.json()["error"]["code"] == "unauthorized"
        # the same link on a second read (stable for a minute at least), and with the key as well
        again = (await client.get(f"/v1/jobs/{job['id']}")).json()["result"]
        assert again["video_url"] == result["video_url"]
        assert (await client.get(f"/v1/jobs/{job['id']}/poster")).status_code == 200


async def test_tampered_expired_and_foreign_links_are_refused(settings, factory, face_png, speech_wav):
    async with running_app(settings, factory) as (app, client):
        job = await _finished_job(client, face_png, speech_wav)
        url = urlsplit(job["result"]["video_url"])
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        signer: LinkSigner = app.state.services.urls.signer
        path = f"/v1/jobs/{job['id']}/video"
        old = signer.sign(path, now=time.time() - signer.ttl_s - 120)
        cases = {
            "tampered sig": f"{url.path}?exp={query['exp']}&sig={query['sig'][:-2]}xx",
            "longer exp": f"{url.path}?exp={int(query['exp']) + 60}&sig={query['sig']}",
            "expired": old,
            "poster sig on the video": f"{url.path}?" + urlsplit(job["result"]["poster_url"]).query,
            "sig only": f"{url.path}?sig={query['sig']}",
            "exp not a number": f"{url.path}?exp=soon&sig={query['sig']}",
        }
        for name, link in cases.items():
            response = await client.get(link, headers={"X-API-Key": ""})
            assert response.status_code == 403, (name, response.text)
            assert response.json()["error"]["code"] == "forbidden", name
        other = await client.post("/v1/jobs", files=_files(face_png, speech_wav))
        swapped = f"/v1/jobs/{other.json()['id']}/video?exp={query['exp']}&sig={query['sig']}"
        assert (await client.get(swapped, headers={"X-API-Key": ""})).status_code == 403


async def test_secret_is_kept_across_restarts_and_posters_go_with_the_job(tmp_path, factory, face_png, speech_wav):
    settings = make_settings(tmp_path / "out")
    async with running_app(settings, factory) as (_, client):
        job = await _finished_job(client, face_png, speech_wav)
    secret_file = tmp_path / "out" / SECRET_FILE
    assert secret_file.is_file() and (os.stat(secret_file).st_mode & 0o777) == 0o600
    posters = list((tmp_path / "out").rglob(f"{job['id']}.jpg"))
    assert len(posters) == 1
    async with running_app(make_settings(tmp_path / "out"), factory) as (_, client):
        link = urlsplit(job["result"]["poster_url"])
        assert (await client.get(f"{link.path}?{link.query}", headers={"X-API-Key": ""})).status_code == 200
        assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
        assert not posters[0].exists()
        gone = await client.get(f"{link.path}?{link.query}", headers={"X-API-Key": ""})
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_configured_secret_signs_links_and_a_short_one_is_refused(tmp_path, factory, face_png, speech_wav):
    with pytest.raises(ValueError, match="SADTALKER_LINK_SECRET"):
        make_settings(tmp_path / "out", sadtalker_link_secret="short")
    secret = "a-shared-secret-of-32-characters"
    settings = make_settings(tmp_path / "out", sadtalker_link_secret=secret, sadtalker_link_ttl_s=600)
    async with running_app(settings, factory) as (_, client):
        job = await _finished_job(client, face_png, speech_wav)
    expected = LinkSigner(secret.encode(), 600).sign(f"/v1/jobs/{job['id']}/video")
    assert job["result"]["video_url"] == "http://testserver" + expected
    assert not (tmp_path / "out" / SECRET_FILE).exists()


async def test_job_still_running_has_no_media(settings, factory, face_png, speech_wav):
    factory.hold.clear()  # the render waits at its first batch boundary
    async with running_app(settings, factory) as (_, client):
        job = (await client.post("/v1/jobs", files=_files(face_png, speech_wav))).json()
        response = await client.get(f"/v1/jobs/{job['id']}/poster")
        assert response.status_code == 409 and response.json()["error"]["code"] == "job_not_finished"
        await client.post(f"/v1/jobs/{job['id']}/cancel")
        factory.hold.set()
