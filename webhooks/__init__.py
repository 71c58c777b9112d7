"""Signed, durable, retried webhooks for job events (Standard Webhooks signatures, SQLite outbox)."""

from __future__ import annotations

from .outbox import DELIVERED, FAILED, PENDING, SKIPPED, SUPERSEDED
from .sender import DEFAULT_SCHEDULE_S, EVENTS, DeliveryNotFound, WebhookSender
from .signing import WebhookConfigError, generate_secret, sign, sign_all, verify

__all__ = [
    "DEFAULT_SCHEDULE_S",
    "DELIVERED",
    "EVENTS",
    "FAILED",
    "PENDING",
    "SKIPPED",
    "SUPERSEDED",
    "DeliveryNotFound",
    "WebhookConfigError",
    "WebhookSender",
    "generate_secret",
    "sign",
    "sign_all",
    "verify",
]
