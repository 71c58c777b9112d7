"""`POST /v1/preflight`: would a job with these inputs run? Same body as `POST /v1/jobs`, nothing queued.

The inputs go through the same reader and checks as a submission (`InputReader.parse` + `complete`: content
decode, limits, URL fetches, the renderer's face check). When one fails, each input is also checked on its
own so the answer lists every problem, each with its stable code and a suggestion.
"""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
import shutil
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from PIL import Image
from pydantic import BaseModel, Field

from .capabilities import check_options
from .contract import AUTH_CODES, answers
from .deps import Owner, Services, ServicesDep
from .errors import ApiError
from .inputs import MediaReport, ParsedRequest, request_body_doc
from .media import AudioInfo, check_audio, check_image, silence
from .submission import storage_faults

PREVIEW_PX = 128  # longest side of the face crop preview
PREVIEW_MARGIN = 0.25  # of the box size, added on every side
# What to try, per error code (the code and message come from the check itself).
SUGGESTIONS = {
    "no_face_detected": "Try preprocess=full, or a sharper, front-facing portrait where the face is clearly visible.",
    "multiple_faces": "The largest face is animated; crop the photo to one person to choose another.",
    "invalid_image": "Send a JPEG, PNG or WebP photo of at least 32x32 pixels.",
    "invalid_audio": "Send a WAV, MP3, M4A, OGG or FLAC recording with speech in it.",
    "audio_too_long": "Cut the audio shorter, or split it into several jobs.",
    "unsupported_media_type": "Send a JPEG/PNG/WebP/BMP image, WAV/MP3/AAC/M4A/OGG/FLAC/WebM audio and MP4/MOV/WebM/MKV/AVI reference videos (no playlists or manifests).",
    "invalid_video": "Send an MP4/MOV, WebM/MKV or AVI reference video that plays.",
    "payload_too_large": "Send a smaller file (see the service's SADTALKER_MAX_*_BYTES limits).",
    "fetch_failed": "Check that the URL is public and answers with the file.",
    "url_not_allowed": "Use a public http(s) URL; private, loopback and metadata addresses are refused.",
    "face_not_checked": "The face is checked when the job starts.",
    "models_unavailable": "The service cannot run jobs until its model files are in place; ask its operator.",
    "silent_audio": "Send a recording with audible speech; a submission refuses it unless allow_silent=true.",
}
AUDIO_CODES = ("invalid_audio", "audio_too_long")

router = APIRouter(prefix="/v1", tags=["jobs"])


class Problem(BaseModel):
    code: str = Field(description="stable error code, as a job would fail with (e.g. no_face_detected)")
    message: str
    suggestion: str | None = Field(None, description="what to try")


class ImageFound(BaseModel):
    format: str = Field(description="JPEG, PNG or WEBP")
    width: int
    height: int


class FaceFound(BaseModel):
    box: list[float] | None = Field(None, description="[x1, y1, x2, y2] in image pixels")
    score: float | None = Field(None, description="detector confidence, 0..1")
    detector: str | None = Field(None, description="retinaface+fan (official weights) or dlib (fallback)")
    faces: int | None = Field(None, description="faces found, when the detector reports it; the largest is used")
    preview: str | None = Field(None, description="data: URL of a small JPEG crop around the face")


class AudioFound(BaseModel):
    duration_s: float
    container: str = Field(description="ffmpeg's name of the file format")
    codec: str | None = None
    sample_rate: int | None = Field(None, description="Hz, of the file (the model resamples to 16 kHz)")
    channels: int | None = None


class PreflightAnswer(BaseModel):
    object: Literal["preflight"] = "preflight"
    ok: bool = Field(description="a job with these inputs would run")
    image: ImageFound | None
    face: FaceFound | None
    audio: AudioFound | None
    errors: list[Problem] = Field(description="why the job would fail (empty when ok)")
    warnings: list[Problem] = Field(description="the job would run, but note these (multiple_faces, face_not_checked, "
                                                "silent_audio: a submission refuses it unless allow_silent=true)")


def problem(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "suggestion": SUGGESTIONS.get(code)}


def refuse_without_models(services: Services, answer: dict[str, Any]) -> dict[str, Any]:
    """No job can run while no worker could load its models: say so (a submission answers 503)."""
    failure = services.pool.failure()
    if failure is None:
        return answer
    warnings = [w for w in answer["warnings"] if w["code"] != "face_not_checked"]
    return {**answer, "ok": False, "errors": [*answer["errors"], problem("models_unavailable", failure["message"])],
            "warnings": warnings}


def audio_answer(info: AudioInfo) -> dict[str, Any]:
    return {"duration_s": round(info.duration_s, 3), "container": info.container, "codec": info.codec,
            "sample_rate": info.sample_rate, "channels": info.channels}


def face_preview(image_path: Path, box: list[float]) -> str:
    """A small JPEG of the face with some margin, as a data: URL (blocking)."""
    with Image.open(image_path) as img:
        rgb = img.convert("RGB")
    x1, y1, x2, y2 = box
    margin = PREVIEW_MARGIN * max(x2 - x1, y2 - y1)
    crop = rgb.crop((max(0, x1 - margin), max(0, y1 - margin), min(rgb.width, x2 + margin),
                     min(rgb.height, y2 + margin)))
    crop.thumbnail((PREVIEW_PX, PREVIEW_PX))
    buffer = io.BytesIO()
    crop.save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


async def describe_face(face: dict[str, Any] | None, image_path: Path) -> tuple[dict | None, list[dict]]:
    """The face part of the answer and its warnings (not checked yet, several faces)."""
    if face is None:
        return None, [problem("face_not_checked", "no face detector is ready yet (models loading), so the face was not checked")]
    warnings = []
    answer = {"box": face.get("box"), "score": face.get("score"), "detector": face.get("detector"),
              "faces": face.get("faces"), "preview": None}
    if answer["box"]:
        answer["preview"] = await asyncio.to_thread(face_preview, image_path, [float(v) for v in answer["box"]])
    if (face.get("faces") or 1) > 1:
        warnings.append(problem("multiple_faces", f"{face['faces']} faces were found; the largest is used"))
    return answer, warnings


async def answer_for(services: Services, report: MediaReport) -> dict[str, Any]:
    face, warnings = await describe_face(report.face, report.files["image"])
    if report.audio.silent:
        warnings.append(problem("silent_audio", f"the audio is silent or nearly so ({silence(report.audio)})"))
    audio = audio_answer(report.audio)
    image = {"format": report.image.format, "width": report.image.width, "height": report.image.height}
    return {"object": "preflight", "ok": True, "image": image, "face": face, "audio": audio,
            "errors": [], "warnings": warnings}


async def diagnose(services: Services, parsed: ParsedRequest, first: ApiError) -> dict[str, Any]:
    """After a failed check: check each uploaded input on its own, so the answer names every problem."""
    reader, errors = services.reader, [problem(first.code, first.message)]
    answer: dict[str, Any] = {"image": None, "face": None, "audio": None}
    image, audio = parsed.uploads.get("image"), parsed.uploads.get("audio")
    try:
        if image is not None and first.code != "invalid_image":
            info = await asyncio.to_thread(check_image, image.path, reader.limits.max_image_pixels)
            answer["image"] = {"format": info.format, "width": info.width, "height": info.height}
            if first.code != "no_face_detected":
                answer["face"], _ = await describe_face(await reader.check_face(image.path), image.path)
    except ApiError as e:
        errors.append(problem(e.code, e.message))
    try:
        if audio is not None and first.code not in AUDIO_CODES:
            info = await check_audio(reader.ffmpeg, audio.path, reader.limits.max_audio_seconds)
            answer["audio"] = audio_answer(info)
    except ApiError as e:
        errors.append(problem(e.code, e.message))
    unique = list({p["code"]: p for p in errors}.values())
    return {"object": "preflight", "ok": False, **answer, "errors": unique, "warnings": []}


@router.post("/preflight", response_model=None, openapi_extra=request_body_doc(),
             responses=answers(*AUTH_CODES, "validation_error", "unknown_field", "payload_too_large",
                               "unsupported_media_type", "storage_unavailable", "request_timeout",
                               "capability_unavailable", model=PreflightAnswer))
async def preflight(request: Request, services: ServicesDep, _owner: Owner) -> dict[str, Any]:
    """Checks a job's inputs (same body as `POST /v1/jobs`) without queueing: the face found (box, score,
    a small crop preview), the image and audio (duration, sample rate), and every problem with its error code
    and a suggestion. `ok` says whether the job would run. A malformed request answers an error body."""
    services.manager.check_storage()  # 503 storage_unavailable before a byte of the body is read
    dest = services.settings.sadtalker_output_dir / "preflight" / secrets.token_hex(8)
    try:
        with storage_faults(services.manager):
            parsed = await services.reader.parse(request, dest)
        check_options(services.pool, parsed.body.options())  # an option that cannot run here: 422, as at submit
        try:
            report = await services.reader.complete(parsed, dest)
        except ApiError as e:
            if e.code in ("validation_error", "unknown_field"):
                raise  # the request itself is malformed: an error body, as for a submission
            return refuse_without_models(services, await diagnose(services, parsed, e))
        return refuse_without_models(services, await answer_for(services, report))
    finally:
        await asyncio.to_thread(shutil.rmtree, dest, True)
