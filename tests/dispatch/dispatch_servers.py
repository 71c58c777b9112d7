"""Small real HTTP servers on loopback for the dispatcher tests: input files, RunPod's REST API, a recorder.

The fake RunPod API answers `GET /v1/endpoints/{endpointId}?includeWorkers=true` (Bearer API key) the way
RunPod's REST API v1 documents it: the endpoint object with a `workers` array of Pod objects
(`id`, `desiredStatus`, `ports` as "port/protocol", ...).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen


@contextlib.contextmanager
def serve(handler) -> Iterator[str]:
    """Run `handler` (a BaseHTTPRequestHandler class) on a free loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def file_server(directory: Path) -> Iterator[str]:
    with serve(partial(_QuietFiles, directory=str(directory))) as url:
        yield url


@dataclass
class RecordingServer:
    """Answers 503 to everything and remembers each request path: proves nobody called it."""

    paths: list[str] = field(default_factory=list)

    def handler(self):
        record = self.paths

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                record.append(self.path)
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        return Handler


@dataclass
class FakeRunPod:
    """RunPod's REST API v1 for endpoint lookups. `workers[endpoint_id]` lists (pod_id, http_port, status)."""

    api_key: str
    workers: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)
    failing: bool = False
    lookups: int = 0

    def endpoint_json(self, endpoint_id: str) -> dict:
        pods = [{
            "id": pod_id, "name": f"sadtalker-{pod_id}", "image": "your-registry/sadtalker-api:latest",
            "desiredStatus": status, "ports": [f"{port}/http", "22/tcp"], "gpuCount": 1,
            "machineId": "m-test", "costPerHr": 0.44, "endpointId": endpoint_id,
        } for pod_id, port, status in self.workers.get(endpoint_id, [])]
        return {"id": endpoint_id, "name": f"endpoint-{endpoint_id}", "computeType": "GPU",
                "workersMin": 0, "workersMax": len(pods), "workers": pods}

    def handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.lookups += 1
                parts = urlsplit(self.path)
                segments = parts.path.strip("/").split("/")
                if self.headers.get("Authorization") != f"Bearer {api.api_key}":
                    return self._json(401, {"error": "invalid api key"})
                if api.failing:
                    return self._json(500, {"error": "internal server error"})
                if len(segments) != 3 or segments[:2] != ["v1", "endpoints"]:
                    return self._json(404, {"error": "not found"})
                if segments[2] not in api.workers:
                    return self._json(404, {"error": f"endpoint {segments[2]} not found"})
                endpoint = api.endpoint_json(segments[2])
                if parse_qs(parts.query).get("includeWorkers") != ["true"]:
                    endpoint.pop("workers")
                self._json(200, endpoint)

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        return Handler


def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _send_json(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    _send(handler, status, json.dumps(body).encode(), "application/json")


@dataclass
class LegacyApp:
    """The legacy synchronous SadTalker app: only `POST /generate_talking_video` (multipart `image`, `audio`),
    answering when the video is done with JSON naming it (`answer="json"`, the video then served under
    /results/) or with the MP4 itself (`answer="mp4"`). A GET of the route answers 405, as web frameworks do
    for a POST-only route; there is no /readyz."""

    video: bytes
    answer: str = "json"
    requests: list[str] = field(default_factory=list)  # "METHOD path"
    fields: list[list[str]] = field(default_factory=list)  # form part names of each upload

    def handler(self):
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.requests.append(f"GET {self.path}")
                if self.path == "/generate_talking_video":
                    return _send_json(self, 405, {"detail": "Method Not Allowed"})
                if self.path.startswith("/results/"):
                    return _send(self, 200, app.video, "video/mp4")
                _send_json(self, 404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                app.requests.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/generate_talking_video":
                    return _send_json(self, 404, {"detail": "Not Found"})
                names = re.findall(rb'name="([^"]+)"', body)
                app.fields.append([n.decode() for n in names])
                if b'name="image"' not in body or b'name="audio"' not in body:
                    return _send_json(self, 422, {"detail": "image and audio are required"})
                if app.answer == "mp4":
                    return _send(self, 200, app.video, "video/mp4")
                host = self.headers.get("Host")
                _send_json(self, 200, {"status": "success", "video_url": f"http://{host}/results/talk.mp4"})

            def log_message(self, *args) -> None:
                pass

        return Handler


@dataclass
class FakeServerless:
    """A RunPod serverless endpoint (`/v2/{endpointId}/run`, `/status/{id}`, `/cancel/{id}`, `/health`, Bearer
    API key) in front of a worker that does what `handler.py` does: fetch `input.image` and `input.audio`, fail
    with `invalid_image: ...` when the image is not one, report progress, and output `video_url` (an http URL,
    or with `inline=True` a data: URI). Each status poll moves a job one step: IN_QUEUE, IN_PROGRESS (twice,
    with progress), COMPLETED."""

    api_key: str
    video: bytes
    inline: bool = False
    jobs: dict[str, dict] = field(default_factory=dict)
    canceled: list[str] = field(default_factory=list)

    def _step(self, job: dict, host: str) -> dict:
        job["polls"] += 1
        if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            pass
        elif job["polls"] == 1:
            job["status"] = "IN_PROGRESS"
            job["output"] = {"percent": 30}
        elif job["polls"] == 2:
            job["output"] = {"percent": 70}
        else:
            image = urlopen(job["input"]["image"], timeout=5).read()  # noqa: S310 (loopback test server)
            urlopen(job["input"]["audio"], timeout=5).read()  # noqa: S310
            if not image.startswith((b"\x89PNG", b"\xff\xd8")):
                job["status"], job["error"] = "FAILED", "invalid_image: the image does not decode"
                job.pop("output", None)
            else:
                url = ("data:video/mp4;base64," + base64.b64encode(self.video).decode() if self.inline
                       else f"http://{host}/files/{job['id']}.mp4")
                job["status"] = "COMPLETED"
                job["output"] = {"video_url": url, "duration_s": 1.0, "frames": 25, "width": 64, "height": 64,
                                 "bytes": len(self.video), "storage": "s3", "face_detector": "retinaface+fan"}
        return {k: v for k, v in job.items() if k not in ("polls", "input")}

    def handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {api.api_key}":
                    _send_json(self, 401, {"error": "Unauthorized"})
                    return False
                return True

            def do_GET(self) -> None:
                parts = self.path.strip("/").split("/")
                if parts[0] == "files":
                    return _send(self, 200, api.video, "video/mp4")
                if not self._authorized():
                    return None
                if len(parts) == 3 and parts[2] == "health":
                    return _send_json(self, 200, {"jobs": {"inQueue": 0}, "workers": {"idle": 1, "running": 0}})
                if len(parts) == 4 and parts[2] == "status" and parts[3] in api.jobs:
                    return _send_json(self, 200, api._step(api.jobs[parts[3]], self.headers.get("Host")))
                _send_json(self, 404, {"error": "not found"})

            def do_POST(self) -> None:
                parts = self.path.strip("/").split("/")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self._authorized():
                    return None
                if len(parts) == 3 and parts[2] == "run":
                    job_input = json.loads(body).get("input")
                    if not isinstance(job_input, dict):
                        return _send_json(self, 400, {"error": "input is required"})
                    job_id = f"sls-{uuid.uuid4().hex[:8]}"
                    api.jobs[job_id] = {"id": job_id, "status": "IN_QUEUE", "input": job_input, "polls": 0}
                    return _send_json(self, 200, {"id": job_id, "status": "IN_QUEUE"})
                if len(parts) == 4 and parts[2] == "cancel" and parts[3] in api.jobs:
                    api.canceled.append(parts[3])
                    api.jobs[parts[3]]["status"] = "CANCELLED"
                    return _send_json(self, 200, {"id": parts[3], "status": "CANCELLED"})
                _send_json(self, 404, {"error": "not found"})

            def log_message(self, *args) -> None:
                pass

        return Handler
