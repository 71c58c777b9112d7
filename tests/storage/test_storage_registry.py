"""The registry: provider names, option checking, install hints, and the upload retry helper."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from storage import (
    Storage,
    StorageConfigError,
    StorageError,
    StoredObject,
    create_storage,
    put_file_retrying,
    put_file_retrying_async,
)
from storage.local import LocalStorage


@pytest.mark.parametrize("provider", [None, "", "local", " LOCAL "])
def test_local_is_the_default(tmp_path: Path, provider: str | None) -> None:
    storage = create_storage(provider, {}, local_root=tmp_path)
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path.resolve()


def test_unknown_provider_is_refused_with_the_valid_values(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match=r"unknown storage provider 'gcs'.*local, s3, supabase") as info:
        create_storage("gcs", {}, local_root=tmp_path)
    assert info.value.code == "storage_config_error"


def test_unknown_options_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match=r"unknown s3 storage option\(s\) buckett: valid options are"):
        create_storage("s3", {"bucket": "b", "buckett": "b"}, local_root=tmp_path)
    with pytest.raises(StorageConfigError, match="unknown local storage option"):
        create_storage("local", {"bucket": "b"}, local_root=tmp_path)


def test_none_options_count_as_unset(tmp_path: Path) -> None:
    assert isinstance(create_storage(None, {"bucket": None}, local_root=tmp_path), LocalStorage)


def test_required_options_name_their_variables(tmp_path: Path) -> None:
    with pytest.raises(StorageConfigError, match=r"s3 storage needs bucket \(S3_BUCKET\)"):
        create_storage("s3", {"region": "eu-west-1"}, local_root=tmp_path)
    with pytest.raises(StorageConfigError, match=r"key \(SUPABASE_SERVICE_ROLE_KEY or SUPABASE_KEY\)"):
        create_storage("supabase", {"url": "http://x", "bucket": "b"}, local_root=tmp_path)


@pytest.mark.parametrize(("provider", "options", "package", "hint"), [
    ("s3", {"bucket": "b"}, "boto3", "pip install 'boto3"),
    ("supabase", {"url": "http://127.0.0.1:1", "key": "k", "bucket": "b"}, "supabase", "pip install 'supabase"),
])
def test_missing_package_gives_the_install_hint(tmp_path, monkeypatch, provider, options, package, hint) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` raise ImportError
    with pytest.raises(StorageConfigError, match=hint):
        create_storage(provider, options, local_root=tmp_path)


class FlakyStorage(LocalStorage):
    """A local store whose first `failures` uploads fail, as a network store does when it is down."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.tries = 0

    def put_file(self, path: Path, key: str, content_type: str = "video/mp4") -> StoredObject:
        self.tries += 1
        if self.tries <= self.failures:
            raise StorageError("store unavailable")
        return super().put_file(path, key, content_type)


def test_retry_helper_retries_then_succeeds(tmp_path: Path, video_file: Path) -> None:
    store, sleeps = FlakyStorage(tmp_path / "o", failures=2), []
    stored = put_file_retrying(store, video_file, "v.mp4", delays_s=(1, 4, 15), sleep=sleeps.append)
    assert stored.size == video_file.stat().st_size and store.tries == 3 and sleeps == [1, 4]


def test_retry_helper_raises_the_last_error_when_exhausted(tmp_path: Path, video_file: Path) -> None:
    store, sleeps = FlakyStorage(tmp_path / "o", failures=9), []
    with pytest.raises(StorageError, match="store unavailable"):
        put_file_retrying(store, video_file, "v.mp4", delays_s=(0.5, 2), sleep=sleeps.append)
    assert store.tries == 3 and sleeps == [0.5, 2]


def test_retry_helper_does_not_retry_config_errors(tmp_path: Path, video_file: Path) -> None:
    class Misconfigured(LocalStorage):
        def put_file(self, path, key, content_type="video/mp4") -> StoredObject:
            raise StorageConfigError("bucket does not exist")

    sleeps: list[float] = []
    with pytest.raises(StorageConfigError):
        put_file_retrying(Misconfigured(tmp_path), video_file, "v.mp4", sleep=sleeps.append)
    assert sleeps == []


def test_base_class_defaults(tmp_path: Path) -> None:
    """A backend that implements only the abstract methods inherits: no local file, a passing check, a no-op
    close (and it cannot be built without them)."""

    class Minimal(Storage):
        name = "minimal"

        def put_file(self, path, key, content_type="video/mp4") -> StoredObject:
            raise StorageError("not used")

        def url(self, key, expires_s=None) -> str | None:
            return None

        def exists(self, key) -> bool:
            return False

        def delete(self, key) -> None:
            return None

    storage = Minimal()
    assert storage.local_path("v.mp4") is None
    assert storage.check() is None and storage.close() is None
    assert LocalStorage(tmp_path).local_path("v.mp4") is not None, "LocalStorage overrides local_path"

    class Incomplete(Storage):
        name = "incomplete"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


async def test_async_retry_helper_retries_and_can_be_cancelled(tmp_path: Path, video_file: Path) -> None:
    store = FlakyStorage(tmp_path / "o", failures=1)
    stored = await put_file_retrying_async(store, video_file, "v.mp4", delays_s=(0.01,))
    assert stored.size == video_file.stat().st_size and store.tries == 2
    stuck = FlakyStorage(tmp_path / "p", failures=9)
    task = asyncio.create_task(put_file_retrying_async(stuck, video_file, "v.mp4", delays_s=(30.0,)))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stuck.tries == 1
    with pytest.raises(StorageError, match="store unavailable"):
        await put_file_retrying_async(FlakyStorage(tmp_path / "q", failures=9), video_file, "v.mp4", delays_s=(0.01,))


def test_retry_helpers_do_not_retry_a_missing_source(tmp_path: Path) -> None:
    store, sleeps = FlakyStorage(tmp_path / "o", failures=0), []
    with pytest.raises(StorageError, match="cannot read"):
        put_file_retrying(store, tmp_path / "gone.mp4", "v.mp4", sleep=sleeps.append)
    assert store.tries == 0 and sleeps == []


async def test_async_retry_helper_does_not_retry_a_missing_source(tmp_path: Path) -> None:
    store = FlakyStorage(tmp_path / "o", failures=0)
    with pytest.raises(StorageError, match="cannot read"):
        await put_file_retrying_async(store, tmp_path / "gone.mp4", "v.mp4", delays_s=(30.0,))
    assert store.tries == 0
