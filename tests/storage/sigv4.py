"""An independent check of AWS Signature Version 4 query-string (presigned) URLs, written from the published
algorithm: canonical request -> string to sign -> HMAC chain of date, region, service. moto does not verify
signatures, so the presigned URLs of the S3 backend are verified here instead."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def presigned_url_problem(url: str, secret_key: str, *, method: str = "GET", now: datetime | None = None) -> str | None:
    """None when `url` is a valid, unexpired SigV4 presigned URL for `secret_key`, else what is wrong."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = dict(pairs)
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        return f"algorithm is {query.get('X-Amz-Algorithm')!r}, not {ALGORITHM}"
    signature = query.get("X-Amz-Signature", "")
    stamp = query["X-Amz-Date"]
    _, date, region, service, terminator = query["X-Amz-Credential"].split("/")
    signed_headers = query["X-Amz-SignedHeaders"].split(";")
    if signed_headers != ["host"]:
        return f"signed headers are {signed_headers}, a browser GET sends only host"
    canonical = "\n".join([
        method, parts.path or "/", _canonical_query([(k, v) for k, v in pairs if k != "X-Amz-Signature"]),
        f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD",
    ])
    to_sign = "\n".join([ALGORITHM, stamp, f"{date}/{region}/{service}/{terminator}",
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), region), service), terminator)
    if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature):
        return "signature does not match"
    signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    age_s = ((now or datetime.now(timezone.utc)) - signed_at).total_seconds()
    if age_s > int(query["X-Amz-Expires"]):
        return "expired"
    return None
