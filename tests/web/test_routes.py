"""The page's routes: served by the service itself, with its security headers, loading nothing from elsewhere."""

from __future__ import annotations

import re

from tests.support.app import make_settings, running_app
from tests.support.fake_renderer import FakeFactory


async def test_page_and_assets(tmp_path):
    async with running_app(make_settings(tmp_path / "out"), FakeFactory(), wait_ready=False) as (_, client):
        page = await client.get("/", headers={"X-API-Key": ""})  # the page itself needs no key
        assets = {name: await client.get(f"/web/{name}") for name in ("app.js", "api.js", "style.css")}
        missing = await client.get("/web/secrets.txt")
        traversal = await client.get("/web/..%2Fapi_app.py")
        openapi = (await client.get("/openapi.json")).json()

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name, response in assets.items():
        assert response.status_code == 200, name
    assert assets["app.js"].headers["content-type"].startswith("text/javascript")
    assert assets["style.css"].headers["content-type"].startswith("text/css")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert traversal.status_code == 404

    # everything the page references is ours: no CDN, no remote font, works offline
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and all(ref.startswith(("/", "data:")) for ref in references), references
    for response in assets.values():
        assert not re.search(r"https?://", response.text), "assets load nothing from elsewhere"
    assert "/" not in openapi["paths"], "the page is not part of the API document"
    assert {"/v1/jobs/{job_id}/events", "/v1/preflight"} <= set(openapi["paths"])
