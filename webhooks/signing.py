"""Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")).

A secret is `whsec_` + base64 of the key bytes. Several secrets may be active while one is rotated: the sender
signs with each (space-separated signatures in one header) and a receiver accepts any that matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


class WebhookConfigError(ValueError):
    """A webhook secret is malformed."""

    code = "webhook_config_error"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix is optional); WebhookConfigError if malformed."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as e:
        raise WebhookConfigError(
            f"webhook secret {secret[:10]}... is not '{SECRET_PREFIX}' followed by base64; "
            "make one with: python -c \"import webhooks; print(webhooks.generate_secret())\""
        ) from e
    if len(key) < 16:
        raise WebhookConfigError("webhook secret is too short: use at least 16 random bytes (24 recommended)")
    return key


def generate_secret(num_bytes: int = 24) -> str:
    """A new random `whsec_` secret."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(num_bytes)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `msg_id.timestamp.body` with the key of `secret`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def sign_all(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: one signature per active secret, space-separated."""
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes,
           tolerance_s: int = DEFAULT_TOLERANCE_S, *, now: float | None = None) -> bool:
    """True when a `webhook-signature` entry matches one of `secrets` and the timestamp is within tolerance.

    `headers` may use any letter case. Malformed or missing headers give False, never an exception.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    offered = lowered.get("webhook-signature", "").split()
    if not msg_id or not stamp.isdigit() or not offered:
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = {sign(s, msg_id, timestamp, body) for s in secrets}
    return any(hmac.compare_digest(sig.encode(), exp.encode()) for sig in offered for exp in expected)
