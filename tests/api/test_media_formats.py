"""Accepted formats by content (WebP, OGG, FLAC, M4A, MP3) and reference-video inputs reaching the renderer."""

from __future__ import annotations

import io
import subprocess

import imageio_ffmpeg
import pytest
from PIL import Image

from api.errors import ApiError
from api.media import check_audio, check_image
from tests.support.app import running_app, wait_status

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _convert(src, dest, *args: str):
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(src), *args, str(dest)], check=True)
    return dest


@pytest.mark.parametrize("ext, args", [("ogg", ("-c:a", "libvorbis")), ("flac", ()), ("m4a", ("-c:a", "aac")),
                                       ("mp3", ()), ("wav", ())])
async def test_audio_formats_are_accepted_by_content(tmp_path, short_speech_wav, ext, args):
    if ext == "ogg" and "libvorbis" not in subprocess.run([FFMPEG, "-hide_banner", "-encoders"],
                                                          capture_output=True, text=True).stdout:
        args = ("-c:a", "flac", "-f", "ogg")
    path = _convert(short_speech_wav, tmp_path / f"speech.{ext}", *args)
    renamed = path.rename(tmp_path / "upload.bin")  # the name carries nothing
    info = await check_audio(FFMPEG, renamed, 10)
    assert 0.5 < info.duration_s < 0.7


def test_webp_is_accepted_and_gif_is_not(tmp_path, face_png):
    webp = tmp_path / "x.bin"
    Image.open(face_png).save(webp, "WEBP")
    assert check_image(webp, 10**7).format == "WEBP"
    gif = io.BytesIO()
    Image.open(face_png).save(gif, "GIF")
    (tmp_path / "g.png").write_bytes(gif.getvalue())
    with pytest.raises(ApiError) as caught:
        check_image(tmp_path / "g.png", 10**7)
    assert caught.value.code == "unsupported_media_type"


async def test_reference_videos_reach_the_renderer(settings, factory, face_jpg, short_speech_wav, tmp_path):
    video = tmp_path / "ref.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=128x128:rate=25", "-t", "1",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    async with running_app(settings, factory) as (_, client):
        files = {"image": ("a.jpg", face_jpg.read_bytes()), "audio": ("a.wav", short_speech_wav.read_bytes()),
                 "ref_pose": ("pose.mp4", video.read_bytes())}
        job = (await client.post("/v1/jobs", files=files)).json()
        assert (await wait_status(client, job["id"], ("succeeded", "failed")))["status"] == "succeeded"
        request = factory.requests[0]
        assert request.ref_pose.name == "ref_pose.upload" and request.ref_eyeblink is None
        bad = await client.post("/v1/jobs", files={**files, "ref_pose": ("pose.mp4", b"not a video")})
        assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media_type"
        broken_mp4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 200  # an MP4's first box, then nothing that plays
        bad = await client.post("/v1/jobs", files={**files, "ref_pose": ("pose.mp4", broken_mp4)})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_video"
