"""The web page: `web/index.html` at `/`, its script and style sheet under `/web/`. No build step, nothing
loaded from elsewhere; the page talks to the same `/v1` API with the key the user enters."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from .errors import ApiError

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ASSETS = {"app.js": "text/javascript", "api.js": "text/javascript", "style.css": "text/css"}  # everything the page loads
# Only our own origin, plus data:/blob: for previews and the downloaded video; media and the video's poster
# image may also come from object storage (S3/Supabase URLs) when videos are kept there.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https: http:; "
    "media-src 'self' blob: https: http:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/web/{name}")
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise ApiError("not_found", f"no web asset {name!r}")
    return FileResponse(WEB_DIR / name, media_type=ASSETS[name], headers=PAGE_HEADERS)
