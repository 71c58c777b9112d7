"""Fixtures of the webhook tests: a loopback receiver, secrets, and senders closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from webhook_receiver import Receiver, Reply

from webhooks import WebhookSender, generate_secret


@pytest.fixture
def secret() -> str:
    return generate_secret()


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "jobs.sqlite3"


@pytest.fixture
def receiver_factory() -> Callable[..., Receiver]:
    started: list[Receiver] = []

    def make(*replies: Reply) -> Receiver:
        receiver = Receiver(list(replies) or None).__enter__()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.__exit__(None, None, None)


@pytest.fixture
async def sender_factory(db_path, secret) -> AsyncIterator[Callable[..., WebhookSender]]:
    senders: list[WebhookSender] = []

    async def make(**kwargs) -> WebhookSender:
        kwargs.setdefault("secrets", [secret])
        kwargs.setdefault("schedule_s", (0.05, 0.05, 0.05))
        kwargs.setdefault("timeout_s", 2.0)
        sender = WebhookSender(kwargs.pop("db_path", db_path), kwargs.pop("secrets"), **kwargs)
        await sender.start()
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.close()
