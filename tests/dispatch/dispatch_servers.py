"""Small real HTTP servers on loopback for the dispatcher tests: input files, RunPod's REST API, a recorder.

The fake RunPod API answers `GET /v1/endpoints/{endpointId}?includeWorkers=true` (Bearer API key) the way
RunPod's REST API v1 documents it: the endpoint object with a `workers` array of Pod objects
(`id`, `desiredStatus`, `ports` as "port/protocol", ...).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


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
