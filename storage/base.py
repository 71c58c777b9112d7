"""The storage interface every backend implements, its errors, and the upload retry helper.

All methods are blocking: the service calls them through `asyncio.to_thread`, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Keys are relative POSIX paths made of these characters; no empty, "." or ".." segments.
_KEY_CHARS = re.compile(r"^[A-Za-z0-9._\-/]+$")
DEFAULT_RETRY_DELAYS_S: tuple[float, ...] = (1.0, 4.0, 15.0)


class StorageError(Exception):
    """An object could not be stored, listed, signed or deleted."""

    code = "storage_error"


class StorageConfigError(StorageError):
    """The storage settings are wrong or an optional package is missing; raised at start-up."""

    code = "storage_config_error"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int  # bytes, as checked in the store after the upload
    url: str | None  # None: the API serves the file itself (local backend)


class Storage(ABC):
    """Where finished videos go: put a file under a key, hand out a URL, check, delete."""

    name: str

    @abstractmethod
    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        """Store `path` under `key` and check the stored size; StorageError on any failure."""

    @abstractmethod
    def url(self, key: str, expires_s: int | None = None) -> str | None:
        """A download URL valid for `expires_s` seconds (backend default when None); None for local."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""

    def local_path(self, key: str) -> Path | None:
        """The file on this machine holding `key`, for backends that keep one (local)."""
        return None

    def check(self) -> None:
        """Cheap reachability check for readiness probes; StorageError when the store cannot be used."""
        return None

    def close(self) -> None:
        """Release network clients; the storage is not used afterwards."""
        return None


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise StorageError naming it."""
    segments = key.split("/")
    if not key or not _KEY_CHARS.match(key) or any(s in ("", ".", "..") for s in segments):
        raise StorageError(
            f"invalid storage key {key!r}: use a relative path of letters, digits, '.', '_', '-' and '/' "
            "without empty, '.' or '..' segments"
        )
    return key


def file_size(path: Path) -> int:
    """Size of the file to upload in bytes; StorageError when it is missing."""
    try:
        return Path(path).stat().st_size
    except OSError as e:
        raise StorageError(f"cannot read {path} for upload: {e}") from e


def put_file_retrying(
    storage: Storage,
    path: Path,
    key: str,
    content_type: str = "video/mp4",
    *,
    delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
    sleep: Callable[[float], None] = time.sleep,
) -> StoredObject:
    """`storage.put_file` retried after each delay in `delays_s` (so len+1 tries); the last error is raised.

    Blocking (it sleeps between tries): run it off the event loop. Configuration errors and a missing source
    file are not retried.
    """
    file_size(path)
    for attempt, delay in enumerate([*delays_s, None], start=1):
        try:
            return storage.put_file(path, key, content_type)
        except StorageConfigError:
            raise
        except StorageError as e:
            if delay is None:
                raise
            logger.warning("upload of %s to %s failed (try %d), retrying in %.1fs: %s",
                           key, storage.name, attempt, delay, e)
            sleep(delay)
    raise AssertionError("unreachable")


async def put_file_retrying_async(
    storage: Storage,
    path: Path,
    key: str,
    content_type: str = "video/mp4",
    *,
    delays_s: Sequence[float] = DEFAULT_RETRY_DELAYS_S,
) -> StoredObject:
    """`put_file_retrying` for the event loop: each try runs in a worker thread and the waits are
    `asyncio.sleep`, so a shutdown can cancel it between tries instead of waiting for the whole schedule."""
    file_size(path)
    for attempt, delay in enumerate([*delays_s, None], start=1):
        try:
            return await asyncio.to_thread(storage.put_file, path, key, content_type)
        except StorageConfigError:
            raise
        except StorageError as e:
            if delay is None:
                raise
            logger.warning("upload of %s to %s failed (try %d), retrying in %.1fs: %s",
                           key, storage.name, attempt, delay, e)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
