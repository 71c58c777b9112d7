"""Links that work without an API key: a path signed with an expiring HMAC token (`?exp=&sig=`).

The token is HMAC-SHA256 over the path and the expiry (Unix seconds), base64url without padding. Expiries
are rounded up to the next EXP_STEP_S, so a job read twice in a row answers the same link (browsers cache it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path

log = logging.getLogger(__name__)
EXP_STEP_S = 60
SECRET_FILE = "link_secret"  # under the output directory, when no secret is configured


class LinkSigner:
    """Signs and checks `path?exp=&sig=` links with one secret; links live `ttl_s` seconds."""

    def __init__(self, secret: bytes, ttl_s: int):
        if len(secret) < 16:
            raise ValueError("the link secret must be at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s

    def _sig(self, path: str, exp: int) -> str:
        digest = hmac.new(self._secret, f"{path}\n{exp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, path: str, now: float | None = None) -> str:
        """`path` with `exp` and `sig` query parameters."""
        now = time.time() if now is None else now
        exp = -(-int(now + self.ttl_s) // EXP_STEP_S) * EXP_STEP_S
        return f"{path}?exp={exp}&sig={self._sig(path, exp)}"

    def verify(self, path: str, exp: str | None, sig: str | None, now: float | None = None) -> bool:
        """True when `sig` signs `path` and `exp`, and `exp` has not passed."""
        if not exp or not sig or not exp.isdigit():
            return False
        now = time.time() if now is None else now
        return int(exp) > now and hmac.compare_digest(self._sig(path, int(exp)).encode(), sig.encode())


def load_or_create_secret(configured: str | None, output_dir: Path) -> bytes:
    """The configured secret, else the one kept in `<output_dir>/link_secret` (made on first start, 0600),
    so links stay valid across restarts. Replicas behind one address must share a configured secret."""
    if configured:
        return configured.encode()
    path = output_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    secret = secrets.token_bytes(32)
    output_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret.hex())
    log.info("made a new link secret in %s (set SADTALKER_LINK_SECRET to share one between replicas)", path)
    return secret
