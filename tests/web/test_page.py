"""The web page end to end in headless Debian Chromium (Playwright): key, files with previews, preflight,
submit, the progress bar fed by the event stream, the finished video, the recent jobs, error messages."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.client.live import live_server
from tests.support.app import KEY_A, make_settings
from tests.support.fake_renderer import FakeFactory, Script

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOT_COPY = Path("/tmp/web_screenshot.png")  # for people to look at

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Records every value the progress bar shows, so the test sees it move (not only its end state).
RECORD_PROGRESS = """() => {
  window.progressSeen = [];
  new MutationObserver(() => {
    window.progressSeen.push(Number(document.getElementById('progress-bar').getAttribute('aria-valuenow')));
  }).observe(document.getElementById('progress-bar'), {attributes: true, attributeFilter: ['aria-valuenow']});
}"""


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until(page, expression: str, timeout_s: float = 30.0) -> None:
    """Polls a JavaScript expression with `page.evaluate` (DevTools evaluation: the page's CSP forbids the
    string eval that `wait_for_function` polls with)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        time.sleep(0.05)


def test_submit_watch_and_play(browser, tmp_path, face_png, speech_wav):
    factory = FakeFactory(Script(frames=50, batch_s=0.06, sizes=(256,), enhancers=("none",)))
    with live_server(make_settings(tmp_path / "out"), factory) as url:
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        elsewhere, console_errors = [], []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith((url, "data:", "blob:"))
                   else (elsewhere.append(route.request.url), route.abort()))
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(url + "/")

        # what the loaded models cannot run is greyed out (from /readyz "capabilities")
        page.wait_for_selector("#size option[value='512']:disabled", state="attached")
        assert page.is_disabled("#enhancer option[value='gfpgan']") and page.is_enabled("#size option[value='256']")
        assert page.is_enabled("#preprocess option[value='full']")

        # a wrong key: the API's error code and message are shown
        page.fill("#api-key", "not-the-key")
        page.press("#api-key", "Tab")
        page.wait_for_selector("#error:not([hidden])")
        assert "unauthorized" in page.inner_text("#error") and "invalid API key" in page.inner_text("#error")

        page.fill("#api-key", KEY_A)
        page.press("#api-key", "Tab")
        page.wait_for_selector("#jobs-list >> text=No jobs yet.")
        assert page.is_hidden("#error")

        page.set_input_files("#image-input", str(face_png))
        page.set_input_files("#audio-input", str(speech_wav))
        wait_until(page, "document.getElementById('image-preview').naturalWidth === 512")
        assert page.is_visible("#audio-preview") and "speech.wav" in page.inner_text("#audio-name")
        page.wait_for_selector("#preflight-verdict >> text=Ready")  # checked as soon as both files are there
        wait_until(page, "document.getElementById('face-crop').naturalWidth > 0")
        assert "Audio: " in page.inner_text("#preflight-details")

        page.select_option("#preprocess", "full")
        page.check("#still")
        page.evaluate(RECORD_PROGRESS)
        page.click("#submit-button")
        page.wait_for_selector("#result:not([hidden])", timeout=30_000)
        wait_until(page, "document.getElementById('result-video').readyState >= 1", timeout_s=10)

        seen = page.evaluate("window.progressSeen")
        job_id = page.inner_text("#job-id")
        status = page.inner_text("#job-status")
        cancel_visible = page.is_visible("#cancel-button")
        duration = page.evaluate("document.getElementById('result-video').duration")
        download = page.get_attribute("#download-link", "download")
        href = page.get_attribute("#download-link", "href")
        poster = page.evaluate("document.getElementById('result-video').poster")
        page.wait_for_selector(f"#jobs-list tr[data-job-id='{job_id}'] >> text=Done")
        screenshot = tmp_path / "web.png"
        page.screenshot(path=str(screenshot), full_page=True)
        shutil.copyfile(screenshot, SCREENSHOT_COPY)
        job = page.evaluate("([id, key]) => fetch('/v1/jobs/' + id, {headers: {'X-API-Key': key}})"
                            ".then(r => r.json())", [job_id, KEY_A])

    assert status == "Done" and not cancel_visible
    moving = [v for v in seen if 0 < v < 100]
    assert len(set(moving)) >= 3 and moving == sorted(moving), f"the bar moved: {seen}"
    assert seen[-1] == 100
    assert abs(duration - 50 / 25) < 0.2
    # the signed link streams without the key (no copy in memory); the poster shows until it plays
    assert download == f"{job_id}.mp4" and f"/v1/jobs/{job_id}/video?exp=" in href and "&sig=" in href
    assert f"/v1/jobs/{job_id}/poster?exp=" in poster
    assert job["options"]["preprocess"] == "full" and job["options"]["still"] is True
    assert elsewhere == [], "the page loads nothing from elsewhere"
    assert [e for e in console_errors if "401" not in e] == []
