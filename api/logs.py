"""Structured (one JSON object per line) logs; records logged with `extra={"job_id": ...}` carry it, and
every record logged while a request is handled carries that request's id (a context variable + filter)."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import datetime, timezone

HANDLER_NAME = "sadtalker-json"
# The X-Request-ID of the request being handled in this context ("" outside requests).
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
# uvicorn's own loggers: their lines go through our JSON handler; its plain access lines are replaced by
# api.middleware's one JSON line per request.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")
UVICORN_ACCESS_LOGGER = "uvicorn.access"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (records made outside a request get none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("job_id", "request_id"):
            value = getattr(record, name, None)
            if value:
                entry[name] = value
        entry.update(getattr(record, "fields", None) or {})  # extra={"fields": {...}}: structured values
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Installs the JSON handler on the root logger once (create_app may run many times in one process) and
    routes uvicorn's loggers through it; uvicorn's plain access log is switched off."""
    root = logging.getLogger()
    if not any(handler.get_name() == HANDLER_NAME for handler in root.handlers):
        handler = logging.StreamHandler()
        handler.set_name(HANDLER_NAME)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger(UVICORN_ACCESS_LOGGER)
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
