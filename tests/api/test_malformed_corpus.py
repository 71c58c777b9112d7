"""A corpus of malformed and hostile requests against the real service (uvicorn on loopback, started the way
run.sh starts it, with the scripted renderer): every one answers a 4xx JSON error envelope with a request id,
and nothing is queued (both keys' job lists and the input folders are unchanged)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import imageio_ffmpeg
import pytest

from tests.support.app import KEY_A, KEY_B, ROOT, free_port

CAP_BYTES = 600_000 + 400_000 + 2 * 300_000 + 1024 * 1024  # the part limits below plus the multipart margin
BOUNDARY = "corpus-boundary-7f3a"


@dataclass
class Server:
    url: str
    out: Path
    log: Path
    job_id: str  # a succeeded job of key A, made before the corpus runs


def _start(out: Path, log: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "API_KEYS": f"{KEY_A},{KEY_B}", "SADTALKER_OUTPUT_DIR": str(out),
           "SADTALKER_DEVICE": "cpu", "SADTALKER_RETENTION_HOURS": "0", "SADTALKER_MAX_IMAGE_BYTES": "600000",
           "SADTALKER_MAX_AUDIO_BYTES": "400000", "SADTALKER_MAX_VIDEO_BYTES": "300000",
           "SADTALKER_BODY_IDLE_TIMEOUT_S": "1", "FAKE_SIZES": "256", "FAKE_ENHANCERS": "none", "FAKE_FRAMES": "10"}
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "tests.support.serve:app_factory",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def server(tmp_path_factory, face_jpg, short_speech_wav):
    base = tmp_path_factory.mktemp("corpus")
    port, log = free_port(), base / "server.log"
    proc = _start(base / "out", log, port)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY_A}, timeout=30) as client:
            job = client.post("/v1/jobs", files=_files(face_jpg, short_speech_wav)).json()
            while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "succeeded":
                time.sleep(0.05)
        yield Server(url, base / "out", log, job["id"])
    finally:
        proc.terminate()
        proc.wait(20)


def _files(image: Path, audio: Path, **extra: tuple[str, bytes]) -> dict:
    return {"image": ("face.jpg", image.read_bytes()), "audio": ("speech.wav", audio.read_bytes()), **extra}


def _state(server: Server) -> tuple:
    """What a refused request must leave as it was: both keys' jobs and the input folders."""
    jobs = []
    for key in (KEY_A, KEY_B):
        answer = httpx.get(server.url + "/v1/jobs", headers={"X-API-Key": key}).json()
        jobs.append([(job["id"], job["status"]) for job in answer["data"]])
    inputs = server.out / "inputs"
    return jobs, sorted(p.name for p in inputs.iterdir()) if inputs.exists() else []


def _assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    assert error["request_id"] == response.headers["x-request-id"]


def _multipart(*parts: tuple[str, str | None, bytes], boundary: str = BOUNDARY, close: bool = True) -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + (f"--{boundary}--\r\n".encode() if close else b"")


def _media(face_jpg: Path, audio: Path) -> list[tuple[str, str | None, bytes]]:
    return [("image", "face.jpg", face_jpg.read_bytes()), ("audio", "speech.wav", audio.read_bytes())]


def _with_urls(extra: str) -> bytes:
    """A JSON job body with URL inputs (never fetched: every case is refused first) plus `extra` members."""
    return ('{"image_url": "http://127.0.0.1:9/a.jpg", "audio_url": "http://127.0.0.1:9/a.wav"' + extra + "}").encode()


def _json_cases() -> list[tuple[str, bytes, int, str]]:
    return [
        ("not utf-8", b'{"image_url": "\xff\xfe", "audio_url": "x"}', 422, "validation_error"),
        ("nested deep", b"[" * 5000 + b"]" * 5000, 422, "validation_error"),
        ("nested deep metadata", _with_urls(', "metadata": {"a": ' + "[" * 3000 + "1" + "]" * 3000 + "}"), 422,
         "validation_error"),
        ("huge integer", _with_urls(', "seed": 1' + "0" * 5000), 422, "validation_error"),
        ("NaN metadata", _with_urls(', "metadata": {"x": NaN}'), 422, "validation_error"),
        ("Infinity option", _with_urls(', "expression_scale": Infinity'), 422, "validation_error"),
        ("overflowing float", _with_urls(', "metadata": {"x": 1e999}'), 422, "validation_error"),
        ("-Infinity nested", _with_urls(', "metadata": {"x": [1, {"y": -Infinity}]}'), 422, "validation_error"),
        ("not an object", b"[1, 2, 3]", 422, "validation_error"),
        ("truncated", b'{"image_url": "http://', 422, "validation_error"),
        ("oversize metadata", _with_urls(', "metadata": {"x": "' + "a" * 20_000 + '"}'), 422, "validation_error"),
        ("over the JSON cap", b'{"x": "' + b"a" * 300_000 + b'"}', 413, "payload_too_large"),
        ("unknown field", _with_urls(', "colour": "blue"'), 422, "unknown_field"),
        ("size not loaded", _with_urls(', "size": 512'), 422, "capability_unavailable"),
        ("enhancer not loaded", _with_urls(', "enhancer": "gfpgan"'), 422, "capability_unavailable"),
    ]


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/preflight"])
def test_malformed_json_bodies(server, path):
    before = _state(server)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY_A}, timeout=30) as client:
        for name, body, status, code in _json_cases():
            response = client.post(path, content=body, headers={"content-type": "application/json"})
            assert response.status_code == status, (name, response.text[:300])
            _assert_envelope(response, status, code)
    assert _state(server) == before


def test_malformed_multipart_and_headers(server, face_jpg, short_speech_wav):
    media = _media(face_jpg, short_speech_wav)
    multipart = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    cases = [
        ("metadata NaN", _multipart(*media, ("metadata", None, b'{"x": NaN}')), multipart, 422, "validation_error"),
        ("metadata Infinity", _multipart(*media, ("metadata", None, b'{"x": [Infinity]}')), multipart, 422,
         "validation_error"),
        ("metadata deep", _multipart(*media, ("metadata", None, b"[" * 5000 + b"]" * 5000)), multipart, 422,
         "validation_error"),
        ("metadata huge int", _multipart(*media, ("metadata", None, b'{"n": ' + b"9" * 5000 + b"}")), multipart,
         422, "validation_error"),
        ("metadata not utf-8", _multipart(*media, ("metadata", None, b'{"x": "\xff"}')), multipart, 422,
         "validation_error"),
        ("metadata over 16 KiB", _multipart(*media, ("metadata", None, b'{"x": "' + b"a" * 20_000 + b'"}')),
         multipart, 422, "validation_error"),
        ("text field over 64 KiB", _multipart(*media, ("metadata", None, b"a" * 70_000)), multipart, 413,
         "payload_too_large"),
        ("expression_scale nan", _multipart(*media, ("expression_scale", None, b"nan")), multipart, 422,
         "validation_error"),
        ("seed of 5000 digits", _multipart(*media, ("seed", None, b"9" * 5000)), multipart, 422, "validation_error"),
        ("size 512 not loaded", _multipart(*media, ("size", None, b"512")), multipart, 422, "capability_unavailable"),
        ("duplicate field", _multipart(*media, ("size", None, b"256"), ("size", None, b"256")), multipart, 422,
         "validation_error"),
        ("duplicate file", _multipart(*media, media[0]), multipart, 422, "validation_error"),
        ("truncated body", _multipart(*media)[:-300], multipart, 422, "validation_error"),
        ("no closing boundary", _multipart(*media, close=False), multipart, 422, "validation_error"),
        ("other boundary in body", _multipart(*media, boundary="another-one"), multipart, 422, "validation_error"),
        ("no boundary", _multipart(*media), {"content-type": "multipart/form-data"}, 422, "validation_error"),
        ("garbage", b"\x00\x01garbage" * 100, multipart, 422, "validation_error"),
        ("text/plain", b"image=x", {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        ("no content type", b"{}", {}, 415, "unsupported_media_type"),
        ("xml", b"<job/>", {"content-type": "application/xml"}, 415, "unsupported_media_type"),
        ("declared over the cap", b"x", {**multipart, "content-length": str(CAP_BYTES + 10)}, 413,
         "payload_too_large"),
    ]
    before = _state(server)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY_A}, timeout=30) as client:
        for name, body, headers, status, code in cases:
            if "content-length" in headers:  # a lie about the length: only the headers matter
                response = _raw(server, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY_A.encode()
                                + b"\r\nContent-Type: " + headers["content-type"].encode()
                                + f"\r\nContent-Length: {headers['content-length']}\r\n\r\n".encode() + body)
            else:
                response = client.post("/v1/jobs", content=body, headers=headers)
            assert response.status_code == status, (name, response.text[:300])
            _assert_envelope(response, status, code)
    assert _state(server) == before


def test_auth_ids_and_event_headers(server):
    before = _state(server)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        two_keys = client.get("/v1/jobs", headers=[("X-API-Key", KEY_A), ("X-API-Key", KEY_B)])
        _assert_envelope(two_keys, 401, "unauthorized")
        two_keys = client.get("/v1/jobs", headers=[("X-API-Key", "wrong"), ("X-API-Key", KEY_A)])
        _assert_envelope(two_keys, 401, "unauthorized")
        two_keys = client.get(f"/v1/jobs/{server.job_id}/video", headers=[("X-API-Key", KEY_A), ("X-API-Key", KEY_B)])
        _assert_envelope(two_keys, 401, "unauthorized")
        _assert_envelope(client.get("/v1/jobs", headers={"X-API-Key": "k" * 10_000}), 401, "unauthorized")
        key = {"X-API-Key": KEY_A}
        for job_id in ("nope", "job_" + "f" * 5000, "..%2F..%2Fjobs.sqlite3", "%00", "job_%E2%80%AE", "'; drop"):
            _assert_envelope(client.get(f"/v1/jobs/{job_id}", headers=key), 404, "not_found")
            _assert_envelope(client.delete(f"/v1/jobs/{job_id}", headers=key), 404, "not_found")
            _assert_envelope(client.get(f"/v1/jobs/{job_id}/video", headers=key), 404, "not_found")
        _assert_envelope(client.get(f"/v1/jobs/{server.job_id}", headers={"X-API-Key": KEY_B}), 404, "not_found")
        for limit in ("0", "101", "x", "1" * 5000):
            _assert_envelope(client.get(f"/v1/jobs?limit={limit}", headers=key), 422, "validation_error")
        _assert_envelope(client.get("/v1/jobs?status=exploded", headers=key), 422, "validation_error")
        _assert_envelope(client.get("/v1/no-such-route"), 404, "not_found")
        _assert_envelope(client.put("/v1/jobs", headers=key), 405, "method_not_allowed")
        for last_id in ("9" * 5000, "١٢٣", "abc", "-1", "1.5e3"):  # ignored: the stream starts from the state
            with client.stream("GET", f"/v1/jobs/{server.job_id}/events",
                               headers={**key, "Last-Event-ID": last_id.encode()}) as stream:
                assert stream.status_code == 200, last_id
                text = "".join(stream.iter_text())
            assert "event: job.succeeded" in text, (last_id, text[:300])
    assert _state(server) == before


def test_request_id_echoed_accepted_or_made_and_in_logs(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        mine = client.get(f"/v1/jobs/{server.job_id}", headers={"X-API-Key": KEY_A, "X-Request-ID": "trace-42.a:b"})
        assert mine.headers["x-request-id"] == "trace-42.a:b"
        refused = client.get("/v1/jobs/nope", headers={"X-API-Key": KEY_A, "X-Request-ID": "corpus-404"})
        assert refused.json()["error"]["request_id"] == "corpus-404"
        for bad in ("x" * 500, "has space", "quote\"d"):
            made = client.get("/healthz", headers={"X-Request-ID": bad})
            assert made.headers["x-request-id"] != bad and len(made.headers["x-request-id"]) == 32
        metrics = client.get("/metrics").text
    assert 'sadtalker_http_request_duration_seconds_count{method="GET",route="/v1/jobs/{job_id}",status="200"}' \
        in metrics
    assert 'sadtalker_http_requests_in_flight{method="GET",route="/metrics"} 1.0' in metrics
    assert "route=\"/v1/jobs/nope\"" not in metrics  # templates, never raw paths
    time.sleep(0.3)
    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON: uvicorn's plain lines are gone
    access = [r for r in records if r["logger"] == "api.access"]
    [line] = [r for r in access if r.get("request_id") == "trace-42.a:b"]
    assert line["route"] == "/v1/jobs/{job_id}" and line["status"] == 200 and line["method"] == "GET"
    assert line["duration_ms"] >= 0 and line["key_id"] and KEY_A not in json.dumps(records)
    assert [r["status"] for r in access if r.get("request_id") == "corpus-404"] == [404]
    assert not any(r["logger"] == "uvicorn.access" for r in records)


def test_range_and_head_on_video(server):
    key = {"X-API-Key": KEY_A}
    with httpx.Client(base_url=f"{server.url}/v1/jobs/{server.job_id}", headers=key, timeout=30) as client:
        full = client.get("/video")
        size = len(full.content)
        assert full.status_code == 200 and size > 1000
        for ignored in ("bytes=abc", "bytes=5-1", "items=0-10", "bytes=", "bytes=--3", "bytes=1-2-3",
                        "bytes=" + "0-1," * 40 + "0-1", "bytes=" + "9" * 100 + "-"):
            response = client.get("/video", headers={"Range": ignored})
            assert (response.status_code, len(response.content)) == (200, size), ignored
        part = client.get("/video", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == full.content[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{size}"
        tail = client.get("/video", headers={"Range": f"bytes={size - 5}-{size + 100}"})
        assert tail.status_code == 206 and tail.content == full.content[-5:]
        for unsatisfiable in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
            response = client.get("/video", headers={"Range": unsatisfiable})
            assert response.status_code == 416, unsatisfiable
            _assert_envelope(response, 416, "range_not_satisfiable")
            assert response.headers["content-range"] == f"bytes */{size}"
        head = client.head("/video")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == size and head.headers["content-type"] == "video/mp4"
        other = client.head("/video", headers={"X-API-Key": KEY_B})
        assert other.status_code == 404 and other.headers["x-request-id"] and other.content == b""


def _raw(server: Server, request: bytes, *, timeout_s: float = 10) -> httpx.Response:
    """Sends bytes as they are and parses the answer (for what httpx will not send)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(request)
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> httpx.Response:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines]
    length = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body[:length])


def _chunked_head(server: Server) -> bytes:
    return (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY_A}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _send_until_answered(sock: socket.socket, chunks, limit_bytes: int) -> int:
    """Sends chunks until the server answers or stops reading; returns the bytes sent."""
    sent = 0
    sock.setblocking(False)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                try:
                    n = sock.send(view)
                except BlockingIOError:
                    try:
                        if sock.recv(1, socket.MSG_PEEK):
                            return sent  # an answer is waiting
                    except BlockingIOError:
                        time.sleep(0.01)
                        continue
                    return sent
                except (BrokenPipeError, ConnectionResetError):
                    return sent
                sent += n
                view = view[n:]
            if sent > limit_bytes:
                return sent
    finally:
        sock.settimeout(20)  # the answer must come: a server that never answers fails the test, never hangs it
    return sent


def test_chunked_body_over_the_cap_is_cut_off(server, face_jpg, short_speech_wav):
    before = _state(server)
    host, port = server.url.removeprefix("http://").split(":")
    opening = _multipart(*_media(face_jpg, short_speech_wav), close=False)[:-2]  # inside the audio part
    junk = b"\x00" * 256 * 1024
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.sendall(_chunked_head(server) + _chunk(opening))
        sent = _send_until_answered(sock, (_chunk(junk) for _ in range(400)), 100 * 1024 * 1024)
        answer = _read_answer(sock)
    assert sent < CAP_BYTES + 8 * 1024 * 1024, f"{sent} bytes were taken: the cap did not stop the reading"
    _assert_envelope(answer, 413, "payload_too_large")
    assert _state(server) == before


def test_nothing_after_the_closing_boundary_is_read(server, face_jpg, short_speech_wav):
    host, port = server.url.removeprefix("http://").split(":")
    body = _multipart(*_media(face_jpg, short_speech_wav))
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.sendall(_chunked_head(server) + _chunk(body))
        sent = _send_until_answered(sock, (_chunk(b"\x00" * 256 * 1024) for _ in range(400)), 100 * 1024 * 1024)
        answer = _read_answer(sock)
    assert answer.status_code == 202, answer.text
    assert sent < 8 * 1024 * 1024, f"{sent} bytes after the closing boundary were taken"
    httpx.delete(f"{server.url}/v1/jobs/{answer.json()['id']}", headers={"X-API-Key": KEY_A})


def test_slow_sender_gets_408(server):
    before = _state(server)
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY_A}\r\n"
                     f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 100000\r\n\r\n"
                     f"--{BOUNDARY}\r\n".encode())
        started = time.monotonic()
        answer = _read_answer(sock)  # nothing more is sent: the idle timeout (1 s here) answers
    assert time.monotonic() - started < 10
    _assert_envelope(answer, 408, "request_timeout")
    assert _state(server) == before


def _manifests(video: Path) -> dict[str, bytes]:
    """Playlists and manifests that make ffmpeg open another job's stored video (absolute and relative)."""
    relative = os.path.relpath(video, video.parent.parent / "inputs" / "job_x")
    return {
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\nfile://{video}\n#EXT-X-ENDLIST\n".encode(),
        "hls relative": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{relative}\n#EXT-X-ENDLIST\n".encode(),
        "dash": (f'<?xml version="1.0"?>\n<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
                 f'mediaPresentationDuration="PT1S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">'
                 f'<Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="1000">'
                 f'<BaseURL>{relative}</BaseURL><SegmentBase indexRange="0-100"/></Representation></AdaptationSet>'
                 f'</Period></MPD>\n').encode(),
        "ffconcat": f"ffconcat version 1.0\nfile '{video}'\n".encode(),
        "ffconcat relative": f"ffconcat version 1.0\nfile '{relative}'\n".encode(),
    }


def test_manifests_and_playlists_are_refused(server, face_jpg, short_speech_wav):
    video = server.out / "videos" / f"{server.job_id}.mp4"
    assert video.is_file()
    before = _state(server)
    checked = {("hls relative", "audio"), ("dash", "ref_pose"), ("ffconcat", "ref_eyeblink")}  # also preflight
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY_A}, timeout=30) as client:
        for name, manifest in _manifests(video).items():
            for field in ("audio", "ref_pose", "ref_eyeblink"):
                files = {**_files(face_jpg, short_speech_wav), field: (f"x.{name[:4]}", manifest)}
                _assert_envelope(client.post("/v1/jobs", files=files), 415, "unsupported_media_type")
                if (name, field) in checked:
                    report = client.post("/v1/preflight", files=files).json()
                    assert report["ok"] is False, (name, field, report)
                    assert "unsupported_media_type" in [p["code"] for p in report["errors"]], (name, field, report)
    assert _state(server) == before


def test_silent_audio_is_warned_and_refused_unless_allowed(server, face_jpg, tmp_path):
    silence = tmp_path / "silence.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "anullsrc=r=16000:cl=mono", "-t", "3", str(silence)], check=True)
    hiss = tmp_path / "hiss.wav"  # noise at -70 dBFS: near-silent
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "anoisesrc=r=16000:a=0.0003:d=3", str(hiss)], check=True)
    before = _state(server)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": KEY_A}, timeout=30) as client:
        report = client.post("/v1/preflight", files=_files(face_jpg, hiss)).json()
        assert report["ok"] is True and "silent_audio" in [w["code"] for w in report["warnings"]], report
        for audio in (silence, hiss):
            _assert_envelope(client.post("/v1/jobs", files=_files(face_jpg, audio)), 422, "silent_audio")
        assert _state(server) == before
        allowed = client.post("/v1/jobs", files=_files(face_jpg, silence), data={"allow_silent": "true"})
        assert allowed.status_code == 202, allowed.text
        client.delete(f"/v1/jobs/{allowed.json()['id']}")


def test_readyz_lists_capabilities(server):
    ready = httpx.get(server.url + "/readyz").json()
    assert ready["capabilities"] == {"sizes": [256], "enhancers": ["none"],
                                     "preprocess": ["crop", "extcrop", "resize", "full", "extfull"]}
