"""`/docs` (Swagger UI) and `/redoc` with their scripts and styles served by the service itself, from the
`fastapi-offline` package: the pages work on a pod without internet access (no CDN)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
ASSETS_DIR = files("fastapi_offline") / "static"

router = APIRouter(include_in_schema=False)


def _prefix(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    base = _prefix(request)
    return get_swagger_ui_html(
        openapi_url=base + request.app.openapi_url, title=request.app.title + " - Swagger UI",
        swagger_js_url=f"{base}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{base}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{base}{ASSETS_PATH}/favicon.png",
        oauth2_redirect_url=base + "/docs/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": True})


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    base = _prefix(request)
    return get_redoc_html(openapi_url=base + request.app.openapi_url, title=request.app.title + " - ReDoc",
                          redoc_js_url=f"{base}{ASSETS_PATH}/redoc.standalone.js",
                          redoc_favicon_url=f"{base}{ASSETS_PATH}/favicon.png", with_google_fonts=False)


def install_docs(app: FastAPI) -> None:
    """The two pages and their assets (the app must be made with docs_url=None, redoc_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(ASSETS_DIR)), name="docs-assets")
    app.include_router(router)
