"""The OpenAPI document describes what the API really answers: real responses of every route (success and
error) are validated against it, each error code is listed by its route at its registry status, the committed
docs/openapi.json matches the app, and /docs and /redoc load their assets from the service itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from api.errors import ERROR_STATUS
from tests.support.app import KEY_B, ROOT, make_settings, running_app, wait_status

DOC_PATH = ROOT / "docs" / "openapi.json"


@dataclass
class Seen:
    method: str
    path: str
    status: int
    content_type: str
    body: bytes


class Recorder:
    """Every response the test client gets, with its method and path."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.seen.append(Seen(response.request.method, response.request.url.path, response.status_code,
                              response.headers.get("content-type", ""), response.content))


class Contract:
    """Looks up operations of the document and validates bodies against their schemas."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.registry = Registry().with_resource("urn:doc", DRAFT202012.create_resource(doc))
        self.paths = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in doc["paths"]]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        templates = [template for pattern, template in self.paths if pattern.match(path)]
        assert templates, f"{method} {path} is not in the document"
        template = min(templates, key=lambda t: t.count("{"))  # a literal segment beats a parameter
        operations = self.doc["paths"][template]
        assert method.lower() in operations, f"{method} {template} is not in the document"
        return template, operations[method.lower()]

    def validate(self, schema: dict[str, Any], instance: Any) -> None:
        validator = Draft202012Validator(_rebase(schema), registry=self.registry)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    def check(self, seen: Seen) -> str:
        template, operation = self.operation(seen.method, seen.path)
        where = f"{seen.method} {template} -> {seen.status}"
        answer = operation["responses"].get(str(seen.status))
        assert answer is not None, f"{where}: status not documented ({sorted(operation['responses'])})"
        if seen.status == 307 or seen.status == 204:
            return where
        media_type = seen.content_type.split(";")[0].strip()
        content = answer.get("content", {})
        assert media_type in content, f"{where}: {media_type} not documented ({sorted(content)})"
        if media_type == "application/json":
            body = json.loads(seen.body)
            self.validate(content[media_type]["schema"], body)
            if seen.status >= 400:
                code = body["error"]["code"]
                assert ERROR_STATUS.get(code, 500) == seen.status, f"{where}: {code} is not a {seen.status}"
                assert code in content[media_type]["examples"], f"{where}: {code} is not listed for this route"
        return where


def _rebase(schema: Any) -> Any:
    """`#/components/...` refs point into the document registered as urn:doc."""
    if isinstance(schema, dict):
        return {k: ("urn:doc#" + v[1:] if k == "$ref" and v.startswith("#/") else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def _files(face_png, speech_wav) -> dict:
    return {"image": ("a.png", face_png.read_bytes()), "audio": ("a.wav", speech_wav.read_bytes())}


async def _drive_every_route(client: httpx.AsyncClient, contract: Contract, face_png, no_face_png, speech_wav,
                             factory) -> None:
    """Success and error answers of every route, as users get them."""
    files = _files(face_png, speech_wav)
    for path in ("/healthz", "/readyz", "/metrics", "/v1/jobs", "/v1/jobs?status=succeeded&limit=1"):
        await client.get(path)
    await client.get("/v1/jobs", params={"limit": 0})
    await client.get("/v1/jobs", headers={"X-API-Key": "wrong"})
    job = (await client.post("/v1/jobs", files=files, data={"webhook_url": "http://127.0.0.1:9/hook"},
                              headers={"Idempotency-Key": "contract-1"})).json()
    await client.post("/v1/jobs", files=files, data={"size": "300"}, headers={"Idempotency-Key": "contract-1"})
    await client.post("/v1/jobs", files=files, data={"size": "300"})
    await client.post("/v1/jobs", files={**files, "face": ("f.png", b"x")})
    await client.post("/v1/jobs", files={"image": ("a.png", b"not an image"), "audio": files["audio"]})
    await client.post("/v1/jobs", content=b"hello", headers={"content-type": "text/plain"})
    await client.post("/v1/jobs", files={"image": ("n.png", no_face_png.read_bytes()), "audio": files["audio"]})
    done = await wait_status(client, job["id"], ("succeeded", "failed"))
    job_path = f"/v1/jobs/{job['id']}"
    async with client.stream("GET", job_path + "/events") as stream:
        events = [line[5:] async for line in stream.aiter_lines() if line.startswith("data:")]
    assert events, "the event stream sent nothing"
    for data in events:  # each event's data is a job
        contract.validate({"$ref": "#/components/schemas/Job"}, json.loads(data))
    for path in (job_path, job_path + "/video", job_path + "/poster", job_path + "/deliveries",
                 "/v1/jobs/job_missing", "/v1/jobs/job_missing/video", "/v1/jobs/job_missing/events",
                 "/v1/jobs/job_missing/deliveries"):
        await client.get(path)
    await client.get(job_path + "/video", headers={"Range": "bytes=0-9"})
    await client.head(job_path + "/video")
    beyond = await client.get(job_path + "/video", headers={"Range": "bytes=999999999-"})
    assert beyond.headers["content-range"].startswith("bytes */")
    await client.get(job_path + "/poster", headers={"Range": "bytes=9-2"})
    bare = {"X-API-Key": ""}
    await client.get(done["result"]["video_url"], headers=bare)
    await client.get(done["result"]["poster_url"], headers=bare)
    await client.get(job_path + "/video?exp=1&sig=forged", headers=bare)
    await client.get(job_path + "/video", headers=bare)
    await client.get(job_path, headers={"X-API-Key": KEY_B})
    deliveries = (await client.get(job_path + "/deliveries")).json()["data"]
    await client.post(f"{job_path}/deliveries/{deliveries[0]['id']}/redeliver")
    await client.post(f"{job_path}/deliveries/dlv_missing/redeliver")
    await client.post(job_path + "/retry-upload")
    await client.post(job_path + "/cancel")
    await client.post("/v1/jobs/job_missing/cancel")
    await client.post("/v1/preflight", files=files)
    await client.post("/v1/preflight", files={"image": ("n.png", no_face_png.read_bytes()), "audio": files["audio"]})
    await client.post("/v1/preflight", files=files, data={"pose_style": "99"})
    await client.post("/generate_talking_video", files=files)
    factory.script.fail_code = "render_failed"
    await client.post("/generate_talking_video", files=files)
    factory.script.fail_code = None
    factory.hold.clear()  # one job runs, one waits: the queue (max 1) is full
    running = (await client.post("/v1/jobs", files=files)).json()
    await wait_status(client, running["id"], ("running",))
    await client.post("/v1/jobs", files=files)
    await client.post("/v1/jobs", files=files)
    await client.get(f"/v1/jobs/{running['id']}/video")
    factory.hold.set()
    await client.delete(job_path)
    await client.delete(job_path)


@pytest.fixture
def no_face_png(tmp_path):
    from PIL import Image

    path = tmp_path / "blank.png"
    Image.new("RGB", (256, 256), (120, 160, 200)).save(path)
    return path


async def test_real_responses_of_every_route_match_the_document(tmp_path, factory, face_png, speech_wav,
                                                                no_face_png):
    settings = make_settings(tmp_path / "out", sadtalker_max_queue=1)
    recorder = Recorder()
    async with running_app(settings, factory) as (app, client):
        contract = Contract(app.openapi())
        client.event_hooks["response"].append(recorder)
        await _drive_every_route(client, contract, face_png, no_face_png, speech_wav, factory)
    covered = {contract.check(seen) for seen in recorder.seen}
    operations = {f"{method.upper()} {path}" for path, ops in contract.doc["paths"].items() for method in ops}
    reached = {where.rsplit(" -> ", 1)[0] for where in covered}
    assert reached == operations, f"routes never called: {sorted(operations - reached)}"
    statuses = {where.rsplit(" -> ", 1)[1] for where in covered}
    for status in ("200", "202", "204", "206", "401", "403", "404", "409", "415", "416", "422", "429", "500"):
        assert status in statuses, f"no response with status {status} was checked"


async def test_not_ready_answers_the_documented_envelope(tmp_path, factory):
    factory.script.load_error = "checkpoints/SadTalker_V0.0.2_256.safetensors is missing"
    async with running_app(make_settings(tmp_path / "out"), factory, wait_ready=False) as (app, client):
        response = await client.get("/readyz")
        for _ in range(100):
            if response.json()["error"]["message"] != "models are loading and warming up":
                break
            response = await client.get("/readyz")
        contract = Contract(app.openapi())
        assert response.status_code == 503
        contract.check(Seen("GET", "/readyz", 503, response.headers["content-type"], response.content))


def test_every_documented_error_code_is_in_the_registry_and_the_envelope_allows_request_id():
    doc = json.loads(DOC_PATH.read_text())
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                examples = answer.get("content", {}).get("application/json", {}).get("examples", {})
                for code, example in examples.items():
                    assert str(ERROR_STATUS.get(code, 500)) == status, (method, path, code)
                    assert example["value"]["error"]["code"] == code
            if path.startswith("/v1"):
                assert "401" in operation["responses"], (method, path)
                assert {"ApiKey": []} in operation["security"]
    envelope = doc["components"]["schemas"]["ErrorDetail"]
    assert "request_id" in envelope["properties"] and envelope.get("additionalProperties", True) is not False
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "one of the service's API_KEYS; a key sees only its own jobs"}
    assert "HTTPValidationError" not in json.dumps(doc)


def test_committed_document_matches_the_app():
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "openapi.py")], capture_output=True,
                          text=True, check=True, cwd="/").stdout
    assert made == DOC_PATH.read_text(), "docs/openapi.json is stale: python scripts/openapi.py > docs/openapi.json"


async def test_docs_pages_load_their_assets_from_the_service(settings, factory):
    async with running_app(settings, factory, wait_ready=False) as (_, client):
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?'([^']+)'""", html)
            assets = [a or b for a, b in urls]
            assert assets and all(not urlsplit(url).netloc for url in assets), assets
            for url in assets:
                response = await client.get(url)
                assert response.status_code == 200 and len(response.content) > 1000 or url == "/openapi.json", url
        swagger = (await client.get("/docs-assets/swagger-ui-bundle.js")).text
        assert "SwaggerUIBundle" in swagger
