"""Standard Webhooks signatures: the spec's example vector, verification, tampering, rotation, tolerance."""

from __future__ import annotations

import time

import pytest

from webhooks import WebhookConfigError, generate_secret, sign, sign_all, verify

# The example of the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers_for(secrets: list[str], body: bytes, msg_id: str = "msg_1", ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign_all(secrets, msg_id, ts, body)}


def test_matches_the_specification_example() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    headers = {"Webhook-Id": SPEC_ID, "Webhook-Timestamp": str(SPEC_TS), "Webhook-Signature": SPEC_SIGNATURE}
    assert verify([SPEC_SECRET], headers, SPEC_BODY, now=SPEC_TS + 10)


def test_verifies_and_fails_when_anything_is_tampered() -> None:
    secret, body = generate_secret(), b'{"id":"job_1","type":"job.succeeded"}'
    headers = headers_for([secret], body)
    assert verify([secret], headers, body)
    assert not verify([secret], headers, body.replace(b"succeeded", b"failed"))
    assert not verify([secret], {**headers, "webhook-id": "msg_2"}, body)
    assert not verify([secret], {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) + 1)}, body)
    assert not verify([generate_secret()], headers, body)


def test_timestamps_outside_the_tolerance_are_refused() -> None:
    secret, body = generate_secret(), b"{}"
    old = headers_for([secret], body, ts=int(time.time()) - 600)
    assert not verify([secret], old, body)
    assert verify([secret], old, body, tolerance_s=900)


def test_rotation_either_secret_verifies() -> None:
    old, new, body = generate_secret(), generate_secret(), b'{"a":1}'
    headers = headers_for([old, new], body)
    assert len(headers["webhook-signature"].split()) == 2
    assert verify([new], headers, body) and verify([old], headers, body)
    assert verify([generate_secret(), new], headers, body)
    assert not verify([generate_secret()], headers, body)


@pytest.mark.parametrize("headers", [
    {}, {"webhook-id": "m", "webhook-timestamp": "soon", "webhook-signature": "v1,xx"},
    {"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": ""},
    {"webhook-id": "m", "webhook-timestamp": str(int(time.time())), "webhook-signature": "v1,ünïcode"},
])
def test_malformed_headers_give_false(headers: dict[str, str]) -> None:
    assert verify([generate_secret()], headers, b"{}") is False


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_c2hvcnQ=", ""])
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(WebhookConfigError):
        sign(secret, "m", 1, b"")


def test_generated_secrets_are_distinct_and_prefixed() -> None:
    a, b = generate_secret(), generate_secret()
    assert a != b and a.startswith("whsec_") and sign(a, "m", 1, b"x").startswith("v1,")


def test_the_receiver_snippet_in_the_docs_verifies() -> None:
    """The Python snippet of docs/webhooks.md, run as a receiver would run it."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    snippet = doc.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), namespace)
    verify_webhook = namespace["verify_webhook"]
    old, new, body = generate_secret(), generate_secret(), b'{"id":"job_1","type":"job.succeeded"}'
    headers = headers_for([old, new], body)
    assert verify_webhook(new, headers, body) and verify_webhook(old, headers, body)
    assert not verify_webhook(new, headers, body + b" ")
    assert not verify_webhook(generate_secret(), headers, body)
    assert not verify_webhook(new, headers_for([new], body, ts=int(time.time()) - 301), body)
    assert verify_webhook(SPEC_SECRET, {"webhook-id": SPEC_ID, "webhook-timestamp": str(int(time.time())),
                                        "webhook-signature": sign(SPEC_SECRET, SPEC_ID, int(time.time()), SPEC_BODY)},
                          SPEC_BODY)
