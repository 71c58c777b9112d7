"""API keys: refused without a configured key, constant-time checked, and each key sees only its own jobs."""

from __future__ import annotations

from api.deps import authenticate, owner_id
from api.errors import ApiError
from tests.support.app import KEY_A, KEY_B, make_settings, running_app, wait_status


def _files(face_png, speech_wav) -> dict:
    return {"image": ("a.png", face_png.read_bytes()), "audio": ("a.wav", speech_wav.read_bytes())}


async def test_no_key_configured_refuses_every_v1_request(tmp_path, factory):
    settings = make_settings(tmp_path, api_keys="", api_key="")
    async with running_app(settings, factory) as (_, client):
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/job_x"),
                             ("POST", "/generate_talking_video")):
            response = await client.request(method, path)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
            assert "API_KEYS" in response.json()["error"]["message"]
        assert (await client.get("/healthz")).status_code == 200


async def test_missing_and_wrong_keys(settings, factory):
    async with running_app(settings, factory) as (_, client):
        missing = await client.get("/v1/jobs", headers={"X-API-Key": ""})
        assert missing.status_code == 401 and "missing" in missing.json()["error"]["message"]
        wrong = await client.get("/v1/jobs", headers={"X-API-Key": KEY_A + "x"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
        assert (await client.get("/v1/jobs", headers={"X-API-Key": KEY_B})).status_code == 200


async def test_a_key_sees_only_its_own_jobs(settings, factory, face_png, speech_wav):
    async with running_app(settings, factory) as (_, client):
        job = (await client.post("/v1/jobs", files=_files(face_png, speech_wav))).json()
        await wait_status(client, job["id"], ("succeeded",))
        other = {"X-API-Key": KEY_B}
        for method, path in (("GET", f"/v1/jobs/{job['id']}"), ("GET", f"/v1/jobs/{job['id']}/video"),
                             ("POST", f"/v1/jobs/{job['id']}/cancel"), ("DELETE", f"/v1/jobs/{job['id']}")):
            response = await client.request(method, path, headers=other)
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == "not_found"
        assert (await client.get("/v1/jobs", headers=other)).json()["data"] == []
        assert [j["id"] for j in (await client.get("/v1/jobs")).json()["data"]] == [job["id"]]
        assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 200


def test_api_key_and_api_keys_merge_and_records_hold_no_key(tmp_path):
    settings = make_settings(tmp_path, api_keys="k1-aaaaaaaa, k2-bbbbbbbb", api_key="k3-cccccccc")
    assert settings.keys == ["k1-aaaaaaaa", "k2-bbbbbbbb", "k3-cccccccc"]
    assert authenticate(settings.keys, "k3-cccccccc") == owner_id("k3-cccccccc") != "k3-cccccccc"
    try:
        authenticate(settings.keys, "k1-aaaaaaa")
    except ApiError as e:
        assert e.code == "unauthorized"
    else:
        raise AssertionError("a key prefix was accepted")
