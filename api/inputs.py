"""Job inputs: the request model, reading multipart or JSON bodies, fetching URL inputs, content checks.

`InputReader.parse` reads a body into the job's input folder (size limits enforced while streaming);
`InputReader.complete` fetches URL inputs and checks every file's content. `InputReader.check_media` is the
validation alone (image + audio [+ reference videos], nothing queued), reusable by a preflight endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request

import urlguard
from jobs import RenderOptions

from . import strict_json
from .errors import ApiError
from .media import AudioInfo, ImageInfo, check_audio, check_image, check_video
from .upload import MultipartReader, UploadedFile

log = logging.getLogger(__name__)
JSON_BODY_LIMIT_BYTES = 256 * 1024
MULTIPART_OVERHEAD_BYTES = 1024 * 1024  # text fields and part headers on top of the file limits
MEDIA_FIELDS = ("image", "audio", "ref_eyeblink", "ref_pose")
WEBHOOK_EVENTS = ("job.started", "job.progress", "job.succeeded", "job.failed", "job.canceled")
FaceCheck = Callable[[Path], Awaitable[dict[str, Any] | None]]


class JobOptions(BaseModel):
    """Generation options (the `options` of a job)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    preprocess: Literal["crop", "extcrop", "resize", "full", "extfull"] = "crop"
    still: bool = False
    enhancer: Literal["none", "gfpgan"] = "none"
    size: int = 256
    pose_style: int = Field(0, ge=0, le=45)
    expression_scale: float = Field(1.0, ge=0.0, le=3.0)
    batch_size: int | None = Field(None, ge=1, le=32, description="frames per render call; null: 2 on the CPU, "
                                   "as many as the free GPU memory holds on a GPU")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value not in (256, 512):
            raise ValueError("must be 256 or 512")
        return value


class JobRequest(JobOptions):
    """Everything a submission may carry besides uploaded files (the JSON body of `POST /v1/jobs`)."""

    image_url: str | None = None
    audio_url: str | None = None
    ref_eyeblink_url: str | None = None
    ref_pose_url: str | None = None
    webhook_url: str | None = None
    webhook_events: list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    allow_silent: bool = Field(False, description="queue the job even if the audio is silent or nearly so")

    @field_validator("webhook_events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        for event in value or []:
            if event not in WEBHOOK_EVENTS:
                raise ValueError(f"unknown event {event!r} (events: {', '.join(WEBHOOK_EVENTS)})")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > 16 * 1024:
            raise ValueError("must be at most 16 KiB of JSON")
        return value

    def options(self) -> RenderOptions:
        """The validated options as the typed record the job stores and the renderer receives."""
        return RenderOptions(**self.model_dump(include=set(JobOptions.model_fields)))


def request_body_doc() -> dict[str, Any]:
    """OpenAPI for the hand-read body of POST /v1/jobs, /v1/preflight and the legacy endpoint: the JSON model,
    or the same fields as a form with file parts."""
    schema = {**JobRequest.model_json_schema(), "required": ["image_url", "audio_url"]}
    files = {name: {"type": "string", "format": "binary"} for name in MEDIA_FIELDS}
    # each medium as a file part or a URL field
    either = [{"anyOf": [{"required": [name]}, {"required": [f"{name}_url"]}]} for name in ("image", "audio")]
    form = {**schema, "properties": {**schema["properties"], **files}, "required": [], "allOf": either}
    json_example = {"image_url": "https://example.com/face.png", "audio_url": "https://example.com/speech.mp3",
                    "preprocess": "crop", "still": True, "size": 256, "metadata": {"user": 42}}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": form},
        "application/json": {"schema": schema, "example": json_example}}}}


@dataclass(frozen=True)
class InputLimits:
    max_image_bytes: int
    max_audio_bytes: int
    max_video_bytes: int
    max_audio_seconds: float
    max_image_pixels: int
    fetch_timeout_s: float
    allow_private_urls: bool

    def bytes_for(self, name: str) -> int:
        return {"image": self.max_image_bytes, "audio": self.max_audio_bytes}.get(name, self.max_video_bytes)


@dataclass
class ParsedRequest:
    body: JobRequest
    uploads: dict[str, UploadedFile]
    request_hash: str  # same request (options, file contents, URLs) -> same hash, for Idempotency-Key


@dataclass
class MediaReport:
    files: dict[str, Path]
    image: ImageInfo
    audio: AudioInfo
    face: dict[str, Any] | None = field(default=None)


def _validation_error(e: ValidationError) -> ApiError:
    unknown = [str(err["loc"][0]) for err in e.errors() if err["type"] == "extra_forbidden"]
    if unknown:
        accepted = ", ".join([*JobRequest.model_fields, *MEDIA_FIELDS])
        return ApiError("unknown_field", f"unknown field(s): {', '.join(unknown)} (accepted: {accepted})")
    problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors())
    return ApiError("validation_error", problems)


def _form_values(fields: dict[str, str]) -> dict[str, Any]:
    """Multipart text fields -> the JSON shapes of JobRequest (metadata is JSON, webhook_events a list)."""
    values: dict[str, Any] = {}
    for name, text in fields.items():
        if name in MEDIA_FIELDS:
            raise ApiError("validation_error", f"{name} must be a file upload; send a URL as {name}_url")
        if name == "metadata":
            try:
                values[name] = strict_json.loads(text) if text.strip() else {}
            except ValueError as e:
                raise ApiError("validation_error", f"metadata must be a JSON object: {e}") from e
        elif name == "webhook_events":
            values[name] = [event.strip() for event in text.split(",") if event.strip()]
        else:
            values[name] = text
    return values


def _request_hash(body: JobRequest, uploads: dict[str, UploadedFile]) -> str:
    canonical = {"body": body.model_dump(mode="json"), "files": {k: v.sha256 for k, v in sorted(uploads.items())}}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class InputReader:
    def __init__(self, limits: InputLimits, ffmpeg: str, client: httpx.AsyncClient, face_check: FaceCheck | None):
        self.limits, self.ffmpeg, self.client, self.face_check = limits, ffmpeg, client, face_check

    async def parse(self, request: Request, dest_dir: Path) -> ParsedRequest:
        """Reads a multipart or JSON body; uploaded files land in `dest_dir` as <field>.upload."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        declared = int(request.headers.get("content-length") or 0)
        if content_type == "multipart/form-data":
            limits = {name: self.limits.bytes_for(name) for name in MEDIA_FIELDS}
            if declared > sum(limits.values()) + MULTIPART_OVERHEAD_BYTES:
                raise ApiError("payload_too_large", f"the request body is {declared} bytes, over the limits")
            fields, uploads = await MultipartReader(dest_dir, limits).read(request)
            values = _form_values(fields)
        elif content_type == "application/json":
            values, uploads = self._json_object(await self._small_body(request, declared)), {}
        elif content_type == "application/x-www-form-urlencoded":  # URL inputs from plain HTML forms
            pairs = parse_qsl((await self._small_body(request, declared)).decode("utf-8", "replace"))
            values, uploads = _form_values(dict(pairs)), {}
        else:
            raise ApiError("unsupported_media_type", "send multipart/form-data, application/json or "
                           f"application/x-www-form-urlencoded, not {content_type or 'no content type'}")
        try:
            body = JobRequest.model_validate(values)
        except ValidationError as e:
            raise _validation_error(e) from e
        self._check_sources(body, uploads)
        return ParsedRequest(body, uploads, _request_hash(body, uploads))

    @staticmethod
    async def _small_body(request: Request, declared: int) -> bytes:
        """A body without files, read with a cap."""
        message = f"bodies without files are limited to {JSON_BODY_LIMIT_BYTES} bytes"
        if declared > JSON_BODY_LIMIT_BYTES:
            raise ApiError("payload_too_large", message)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > JSON_BODY_LIMIT_BYTES:
                raise ApiError("payload_too_large", message)
        return bytes(raw)

    @staticmethod
    def _json_object(raw: bytes) -> dict[str, Any]:
        try:
            values = strict_json.loads(raw or b"{}")
        except ValueError as e:
            raise ApiError("validation_error", f"the body is not valid JSON: {e}") from e
        if not isinstance(values, dict):
            raise ApiError("validation_error", "the JSON body must be an object")
        return values

    @staticmethod
    def _check_sources(body: JobRequest, uploads: dict[str, UploadedFile]) -> None:
        for name in MEDIA_FIELDS:
            url = getattr(body, f"{name}_url")
            if name in uploads and url:
                raise ApiError("validation_error", f"send either {name} or {name}_url, not both")
            if name in ("image", "audio") and name not in uploads and not url:
                raise ApiError("validation_error", f"{name} is required (a file field {name} or {name}_url)")

    async def complete(self, parsed: ParsedRequest, dest_dir: Path) -> MediaReport:
        """Fetches URL inputs into `dest_dir`, checks every file's content and the face; nothing is queued."""
        if parsed.body.webhook_url:
            await self._check_webhook(parsed.body.webhook_url)
        files = {name: upload.path for name, upload in parsed.uploads.items()}
        fetches = {name: getattr(parsed.body, f"{name}_url") for name in MEDIA_FIELDS}
        tasks = [asyncio.create_task(self._fetch(url, dest_dir / f"{name}.download", name))
                 for name, url in fetches.items() if url]
        try:
            fetched = await asyncio.gather(*tasks)
        except BaseException:  # one fetch failed: stop the others before the caller removes dest_dir
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        files.update({path.stem: path for path in fetched})
        return await self.check_media(files)

    async def _fetch(self, url: str, dest: Path, name: str) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            await urlguard.fetch_to_file(self.client, url, dest, max_bytes=self.limits.bytes_for(name),
                                         timeout_s=self.limits.fetch_timeout_s,
                                         allow_private=self.limits.allow_private_urls)
        except (urlguard.BlockedURL, urlguard.FetchFailed) as e:
            raise ApiError(e.code, f"{name}_url: {e}") from e
        return dest

    async def _check_webhook(self, url: str) -> None:
        try:
            await asyncio.to_thread(urlguard.check_url, url, allow_private=self.limits.allow_private_urls)
        except (urlguard.BlockedURL, urlguard.FetchFailed) as e:
            raise ApiError("url_not_allowed", f"webhook_url: {e}") from e

    async def check_media(self, files: dict[str, Path]) -> MediaReport:
        """Checks image, audio and optional reference videos by content; raises ApiError with a stable code."""
        image = await asyncio.to_thread(check_image, files["image"], self.limits.max_image_pixels)
        audio = await check_audio(self.ffmpeg, files["audio"], self.limits.max_audio_seconds)
        for name in ("ref_eyeblink", "ref_pose"):
            if name in files:
                await check_video(self.ffmpeg, files[name], name)
        return MediaReport(files, image, audio, await self.check_face(files["image"]))

    async def check_face(self, image_path: Path) -> dict[str, Any] | None:
        """The renderer's face check on a decodable image: ApiError (no_face_detected, invalid_image), the face
        found, or None when no detector is ready yet or the check itself broke (logged; the render checks)."""
        if self.face_check is None:
            return None
        try:
            return await self.face_check(image_path)
        except Exception as e:
            code = getattr(e, "code", None)
            if isinstance(code, str) and code in ("no_face_detected", "invalid_image"):
                raise ApiError(code, str(e) or code) from e
            log.warning("face check failed (%s: %s); the render will check again", type(e).__name__, e)
            return None
