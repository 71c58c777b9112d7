"""The pure parts of the hardening: strict JSON, Range parsing, container sniffing, audio levels, the ffmpeg
input arguments, and the error envelope of an unexpected exception (in process)."""

from __future__ import annotations

import math
import subprocess

import httpx
import imageio_ffmpeg
import numpy as np
import pytest

from api import strict_json
from api.errors import ERROR_STATUS, ApiError
from api.media import SILENT_PEAK_DBFS, SILENT_RMS_DBFS, AudioInfo, levels_dbfs
from api.ranges import parse_range
from api_app import create_app
from sadtalker.containers import AUDIO_DEMUXERS, VIDEO_DEMUXERS, ffmpeg_input, sniff
from tests.support.app import make_settings
from tests.support.fake_renderer import FakeFactory


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", '{"a": -Infinity}', "1e999", "-1e400",
                                  "1" + "0" * 100, "[" * 100 + "]" * 100, '{"a": ' * 40 + "1" + "}" * 40])
def test_strict_json_refuses(text):
    with pytest.raises(ValueError):
        strict_json.loads(text)


def test_strict_json_refuses_non_utf8_and_accepts_normal_json():
    with pytest.raises(ValueError, match="UTF-8"):
        strict_json.loads(b'{"a": "\xff"}')
    value = strict_json.loads('{"a": [1, 2.5, -3e2, "x", null, true], "b": {"c": 12345678901234567890}}')
    assert value == {"a": [1, 2.5, -300.0, "x", None, True], "b": {"c": 12345678901234567890}}
    assert strict_json.depth(value) == 2 and strict_json.depth(1) == 0


@pytest.mark.parametrize("header, expected", [
    (None, None), ("", None), ("bytes=abc", None), ("bytes=5-1", None), ("items=0-1", None), ("bytes=", None),
    ("bytes=1-2-3", None), ("bytes=--1", None), ("bytes=٠-1", None), ("bytes=" + "0-1," * 16 + "0-1", None),
    ("bytes=0-9", [(0, 9)]), ("bytes=90-", [(90, 99)]), ("bytes=-10", [(90, 99)]), ("bytes=-500", [(0, 99)]),
    ("BYTES = 0-0 , 5-200", [(0, 0), (5, 99)]), ("bytes=0-1,200-300", [(0, 1)]),
])
def test_range_parsing(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-200", "bytes=-0", "bytes=100-,200-"])
def test_unsatisfiable_range(header):
    with pytest.raises(ApiError) as caught:
        parse_range(header, 100)
    assert caught.value.code == "range_not_satisfiable" and ERROR_STATUS["range_not_satisfiable"] == 416
    assert caught.value.headers == {"Content-Range": "bytes */100"}


@pytest.mark.parametrize("head, demuxer", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"), (b"RIFF\x24\x00\x00\x00AVI LIST", "avi"), (b"ID3\x04\x00" + b"\0" * 11, "mp3"),
    (b"\xff\xfb\x90\x00" + b"\0" * 12, "mp3"), (b"\xff\xf1\x50\x80" + b"\0" * 12, "aac"),
    (b"\x00\x00\x00\x18ftypM4A \x00\x00", "mov"), (b"\x00\x00\x00\x08wide\x00\x00\x00\x00", "mov"),
    (b"OggS\x00\x02" + b"\0" * 10, "ogg"), (b"fLaC\x00\x00\x00\x22" + b"\0" * 8, "flac"),
    (b"\x1a\x45\xdf\xa3\x01\x00" + b"\0" * 10, "matroska"),
    (b"#EXTM3U\n#EXT-X-VERSION:3\n", None), (b'<?xml version="1.0"?><MPD', None), (b"ffconcat version 1.0\n", None),
    (b"v=0\r\no=- 0 0 IN IP4 1", None), (b"file '/etc/passwd'\n", None), (b"", None),
])
def test_containers_are_recognised_by_their_first_bytes(head, demuxer):
    assert sniff(head) == demuxer


def test_ffmpeg_input_forces_the_container_and_the_file_protocol(tmp_path):
    args = ffmpeg_input(tmp_path / "-i x.wav", "wav")
    assert args == ["-protocol_whitelist", "file", "-f", "wav", "-i", f"file:{tmp_path / '-i x.wav'}"]
    assert set(VIDEO_DEMUXERS) <= {"mov", "matroska", "avi"} and "hls" not in AUDIO_DEMUXERS


def test_forced_container_does_not_follow_a_playlist(tmp_path):
    """A playlist (ffconcat) naming another local file: ffmpeg left to probe follows it; opened with ffmpeg_input (the
    container forced) it is only undecodable data."""
    target = tmp_path / "secret.ts"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-f", "mpegts",
                    str(target)], check=True)
    playlist = tmp_path / "upload.wav"
    playlist.write_text("ffconcat version 1.0\nfile 'secret.ts'\n")
    run = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin"]
    probed = subprocess.run([*run, "-i", str(playlist), "-f", "null", "-"], capture_output=True, text=True)
    forced = subprocess.run([*run, *ffmpeg_input(playlist, "wav"), "-f", "null", "-"], capture_output=True, text=True)
    assert probed.returncode == 0, probed.stderr  # ffmpeg on its own opens the other file
    assert forced.returncode != 0 and sniff(playlist.read_bytes()[:16]) is None


def test_audio_levels():
    loud = (np.sin(np.linspace(0, 200, 16000)) * 16000).astype("<i2").tobytes()
    rms, peak = levels_dbfs(loud)
    assert -10 < rms < -5 and -7 < peak < -6
    assert levels_dbfs(b"\x00\x00" * 1000) == (-math.inf, -math.inf)
    hiss = (np.random.default_rng(0).normal(0, 8, 16000)).astype("<i2").tobytes()  # about -72 dBFS
    assert AudioInfo("wav", 1.0, rms_dbfs=levels_dbfs(hiss)[0], peak_dbfs=levels_dbfs(hiss)[1]).silent
    assert not AudioInfo("wav", 1.0, rms_dbfs=rms, peak_dbfs=peak).silent
    assert SILENT_RMS_DBFS < SILENT_PEAK_DBFS < 0


async def test_an_unexpected_exception_answers_the_envelope_with_the_request_id(tmp_path):
    app = create_app(make_settings(tmp_path / "out"), renderer_factory=FakeFactory())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "bug-1"
    error = response.json()["error"]
    assert error["code"] == "internal_error" and error["request_id"] == "bug-1" and "a bug" not in error["message"]
