"""Settings validation at start-up and the URL guard's address rules."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

import urlguard
from settings import Settings
from tests.support.files import serve_files


def test_env_names_of_the_description_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("API_KEYS", "key-one-123456,key-two-123456")
    monkeypatch.setenv("SADTALKER_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("STORAGE_PROVIDER", "S3")
    monkeypatch.setenv("S3_BUCKET", "videos")
    monkeypatch.setenv("SADTALKER_MAX_QUEUE", "7")
    monkeypatch.setenv("API_PUBLIC_BASE_URL", "https://pods.example.com/")
    settings = Settings()
    assert settings.keys == ["key-one-123456", "key-two-123456"]
    assert settings.db_path == tmp_path / "jobs.sqlite3" and settings.sadtalker_max_queue == 7
    assert settings.storage_provider == "s3" and settings.storage_options()["bucket"] == "videos"
    assert settings.api_public_base_url == "https://pods.example.com"
    assert "key-one" not in repr(settings)


def test_retry_schedules_multipart_threshold_and_kept_inputs_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("SADTALKER_WEBHOOK_SCHEDULE_S", "0.5, 2,10")
    monkeypatch.setenv("SADTALKER_WEBHOOK_TIMEOUT_S", "3")
    monkeypatch.setenv("SADTALKER_UPLOAD_RETRY_DELAYS_S", "2,8")
    monkeypatch.setenv("STORAGE_PROVIDER", "s3")
    monkeypatch.setenv("S3_BUCKET", "videos")
    monkeypatch.setenv("S3_MULTIPART_THRESHOLD_BYTES", str(8 * 1024 * 1024))
    monkeypatch.setenv("SADTALKER_KEEP_INPUTS", "true")
    settings = Settings()
    assert settings.webhook_schedule == (0.5, 2.0, 10.0) and settings.sadtalker_webhook_timeout_s == 3
    assert settings.upload_retry_delays == (2.0, 8.0) and settings.sadtalker_keep_inputs is True
    assert settings.storage_options()["multipart_threshold_bytes"] == 8 * 1024 * 1024
    defaults = Settings(_env_file=None, sadtalker_webhook_schedule_s="", sadtalker_upload_retry_delays_s="")
    assert defaults.webhook_schedule is None and defaults.upload_retry_delays == ()


@pytest.mark.parametrize("field, value", [
    ("sadtalker_webhook_schedule_s", "5,soon"), ("sadtalker_upload_retry_delays_s", "-1"),
    ("s3_multipart_threshold_bytes", "0"), ("sadtalker_webhook_timeout_s", "0"),
    ("api_keys", "changeme"), ("storage_provider", "dropbox"), ("api_log_level", "LOUD"),
    ("sadtalker_device", "tpu"), ("api_public_base_url", "ftp://x"), ("sadtalker_max_queue", "0"),
    ("webhook_secret", "plain-secret"), ("sadtalker_preload_sizes", "128"),
])
def test_unsafe_or_invalid_values_are_refused(field, value):
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{field: value})


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "http://localhost/x", "http://10.0.0.1/", "http://[::1]/",
                                 "http://169.254.169.254/latest", "http://[fd00:ec2::254]/", "http://0.0.0.0/",
                                 "http://224.0.0.1/", "http://[::ffff:127.0.0.1]/", "file:///etc/passwd",
                                 "http://user:pw@example.com/"])
def test_check_url_refuses_non_public_targets(url):
    with pytest.raises(urlguard.BlockedURL):
        urlguard.check_url(url)


def test_allow_private_still_refuses_metadata():
    urlguard.check_url("http://127.0.0.1:8080/x", allow_private=True)
    with pytest.raises(urlguard.BlockedURL):
        urlguard.check_url("http://169.254.169.254/", allow_private=True)


async def test_fetch_follows_redirects_with_checks_and_caps(tmp_path, face_jpg):
    async with serve_files({"face.jpg": face_jpg}) as base, httpx.AsyncClient() as client:
        dest = tmp_path / "got"
        size = await urlguard.fetch_to_file(client, f"{base}/redirect-a?to={base}/face.jpg", dest,
                                            max_bytes=10**7, timeout_s=5, allow_private=True)
        assert size == face_jpg.stat().st_size and dest.read_bytes() == face_jpg.read_bytes()
        with pytest.raises(urlguard.FetchFailed, match="redirects"):
            await urlguard.fetch_to_file(client, f"{base}/redirect-a?to={base}/redirect-b", dest, max_bytes=10,
                                         timeout_s=5, allow_private=True, max_redirects=0)
        with pytest.raises(urlguard.TooLarge):
            await urlguard.fetch_to_file(client, f"{base}/endless", dest, max_bytes=10**6, timeout_s=5,
                                         allow_private=True)
        assert not dest.exists()
        with pytest.raises(urlguard.BlockedURL):
            await urlguard.fetch_to_file(client, f"{base}/face.jpg", dest, max_bytes=10**7, timeout_s=5)


def test_devices_per_worker():
    from api.renderer import resolve_devices

    assert resolve_devices("cpu", 0) == ["cpu"]
    assert resolve_devices("cuda:0,cuda:1", 0) == ["cuda:0", "cuda:1"]
    assert resolve_devices("cuda:0,cuda:1", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    import torch

    expected = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    assert resolve_devices("auto", 0) == expected


def test_precision_split_and_compile_settings(monkeypatch, tmp_path):
    from api.renderer import spanning_worker

    monkeypatch.setenv("SADTALKER_OUTPUT_DIR", str(tmp_path))
    assert Settings(_env_file=None).precision == "fp32"   # the conformance-checked default, explicit
    monkeypatch.setenv("SADTALKER_PRECISION", "bf16")
    monkeypatch.setenv("SADTALKER_SPLIT_DEVICES", "true")
    settings = Settings(_env_file=None)
    assert (settings.precision, settings.sadtalker_split_devices, settings.sadtalker_compile) == ("bf16", True, False)
    monkeypatch.setenv("SADTALKER_HALF", "true")   # the older switch means fp16
    assert Settings(_env_file=None).precision == "fp16"
    monkeypatch.setenv("SADTALKER_PRECISION", "int8")
    with pytest.raises(ValidationError, match="sadtalker_precision"):
        Settings(_env_file=None)
    assert spanning_worker(["cuda:0", "cuda:1"]) == ["cuda:0,cuda:1"]
