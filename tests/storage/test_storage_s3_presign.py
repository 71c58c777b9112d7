"""Presigned URLs of the S3 backend checked against the SigV4 algorithm itself (tests/storage/sigv4.py), for AWS
and for S3-compatible endpoints: right key, region scope, path style, expiry; tampering and other keys fail."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sigv4 import presigned_url_problem

from storage import create_storage

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def s3(**options):
    return create_storage("s3", {"bucket": "videos", "access_key_id": "AKIDEXAMPLE", "secret_access_key": SECRET,
                                 **options}, local_root=Path("/nonexistent"))


@pytest.mark.parametrize(("options", "host", "path"), [
    ({"region": "eu-west-1"}, "videos.s3.eu-west-1.amazonaws.com", "/renders/job_1.mp4"),
    ({"region": "auto", "endpoint_url": "https://acct.r2.cloudflarestorage.com"},
     "acct.r2.cloudflarestorage.com", "/videos/renders/job_1.mp4"),
    ({"region": "us-east-1", "endpoint_url": "http://minio.internal:9000"},
     "minio.internal:9000", "/videos/renders/job_1.mp4"),
])
def test_presigned_urls_are_valid_sigv4(options, host, path) -> None:
    url = s3(prefix="renders", **options).url("job_1.mp4", expires_s=600)
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == (host, path)
    assert presigned_url_problem(url, SECRET) is None
    assert f"%2F{options['region']}%2Fs3%2Faws4_request" in url


def test_dotted_bucket_names_use_path_style_on_aws() -> None:
    storage = create_storage("s3", {"bucket": "videos.example.com", "region": "eu-west-1", "access_key_id": "AKID",
                                    "secret_access_key": SECRET}, local_root=Path("/nonexistent"))
    url = storage.url("job_1.mp4")
    assert urlsplit(url).netloc == "s3.eu-west-1.amazonaws.com" and presigned_url_problem(url, SECRET) is None


def test_tampered_or_foreign_urls_fail() -> None:
    url = s3(region="eu-west-1").url("job_1.mp4", expires_s=600)
    assert presigned_url_problem(url.replace("job_1.mp4", "job_2.mp4"), SECRET) == "signature does not match"
    assert presigned_url_problem(url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000"), SECRET) is not None
    assert presigned_url_problem(url, "another-secret") == "signature does not match"


def test_expiry_is_what_was_asked() -> None:
    url = s3(region="eu-west-1", url_expiry_s=900).url("job_1.mp4")
    now = datetime.now(timezone.utc)
    assert presigned_url_problem(url, SECRET, now=now + timedelta(seconds=880)) is None
    assert presigned_url_problem(url, SECRET, now=now + timedelta(seconds=920)) == "expired"


def test_keys_with_unusual_characters_sign_correctly() -> None:
    url = s3(region="eu-west-1", prefix="a b/ü").url("jobs/job_1-final.v2.mp4", expires_s=60)
    assert presigned_url_problem(url, SECRET) is None
