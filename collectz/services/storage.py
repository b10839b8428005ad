"""Object storage for uploaded images: local disk (default) or any S3-compatible store.

One interface, two backends chosen by STORAGE_PROVIDER. Keys are made by `key_for` from ids and
content hashes, never from user input, and are checked again on every call so that no key can
escape the local root or address an unexpected object. Nothing here is public: the app serves
local files itself after a permission check, and S3 hands out short-lived presigned URLs.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collectz.config import Settings

T = TypeVar("T")

CHUNK = 1024 * 1024
MAX_KEY_LENGTH = 512
MAX_URL_SECONDS = 7 * 24 * 3600  # the longest a SigV4 presigned URL may live
SPOOL_BYTES = 8 * 1024 * 1024  # a streamed upload larger than this is buffered on disk, not in memory
_SEGMENT = r"[a-z0-9_][a-z0-9_.-]*"  # a segment never starts with "." (no "..", no hidden temp files)
_KEY = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_PREFIX = re.compile(rf"(?:{_SEGMENT}/)*[a-z0-9_.-]*")
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,10}")
_EXTENSION_KEY = "collectz_storage"
_BUILD_LOCK = threading.Lock()


class StorageError(Exception):
    """The file store failed; the message is safe to show (it names what failed, never a secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ObjectMissing(StorageError):
    """The key names no stored object."""


class InvalidKey(StorageError, ValueError):
    """A key (or prefix) that is not of our own making: a bug in the caller, refused before any I/O."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str
    sha256: str


class Storage(Protocol):
    """What every backend offers; services and views code against this only."""

    name: str

    def put(self, key: str, data: bytes | BinaryIO, *, content_type: str) -> StoredObject: ...
    def open(self, key: str) -> BinaryIO: ...
    def read(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def url(self, key: str, *, expires: int = 300) -> str | None: ...
    def check(self) -> None: ...


def check_key(key: str) -> str:
    """Refuse anything but our own key shape: lower-case [a-z0-9/_.-], relative, no "..", no empty segment."""
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key) or ".." in key:
        raise InvalidKey(f"Storage key {str(key)[:80]!r} is refused: keys are made by key_for, never typed")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or the start of a valid key."""
    if not isinstance(prefix, str) or len(prefix) > MAX_KEY_LENGTH or not _PREFIX.fullmatch(prefix) \
            or ".." in prefix:
        raise InvalidKey(f"Storage prefix {str(prefix)[:80]!r} is refused")
    return prefix


def key_for(kind: str, media_id: int, data_sha256: str, ext: str) -> str:
    """A content-addressed key such as "covers/12/<sha256>.jpg": the same bytes always get the same key."""
    ext = ext.lower().lstrip(".")
    sha = data_sha256.lower()
    if not _KIND.fullmatch(kind) or not _SHA256.fullmatch(sha) or not _EXT.fullmatch(ext):
        raise InvalidKey(f"Cannot make a storage key from kind={kind!r}, sha256={data_sha256[:80]!r}, ext={ext!r}")
    if isinstance(media_id, bool) or not isinstance(media_id, int) or media_id < 1:
        raise InvalidKey(f"Cannot make a storage key for media id {media_id!r}")
    return check_key(f"{kind}/{media_id}/{sha}.{ext}")


def _chunks(data: bytes | BinaryIO) -> Iterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield bytes(data)
        return
    while chunk := data.read(CHUNK):
        yield chunk


@contextmanager
def atomic_file(dest: Path, prefix: str = ".tmp-") -> Iterator[BinaryIO]:
    """A file written beside `dest` that becomes `dest` (flushed to disk, renamed) only if the block ends well;
    otherwise it is removed and `dest` is left as it was."""
    fd, partial = tempfile.mkstemp(prefix=prefix, dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, dest)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


class LocalStorage:
    """Files under one root folder; every write is a temp file renamed into place, so a reader never sees half."""

    name = "local"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes | BinaryIO, *, content_type: str) -> StoredObject:
        path = self._path(key)
        digest, size = hashlib.sha256(), 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path) as fh:
                for chunk in _chunks(data):
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise StorageError(f"The file store (local disk) could not save {key}: {exc.strerror}") from exc
        return StoredObject(key=key, size=size, content_type=content_type, sha256=digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectMissing(f"The file store (local disk) has no object {key}") from None
        except OSError as exc:
            raise StorageError(f"The file store (local disk) could not read {key}: {exc.strerror}") from exc

    def read(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"The file store (local disk) could not delete {key}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        if not self.root.is_dir():
            return
        for folder, dirs, files in os.walk(self.root):
            dirs.sort()
            rel = Path(folder).relative_to(self.root).as_posix()
            for name in sorted(files):
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and _KEY.fullmatch(key):  # skips temp files of writes under way
                    yield key

    def url(self, key: str, *, expires: int = 300) -> str | None:
        """None: local objects have no address of their own; the app serves them after a permission check."""
        check_key(key)
        return None

    def check(self) -> None:
        """Fail unless the root can be created and written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            raise StorageError(f"The file store (local disk) at {self.root} is not writable: {exc.strerror}") from exc


class S3Storage:
    """Objects in one bucket of an S3-compatible store, with bounded timeouts and retries."""

    name = "s3"

    def __init__(self, *, bucket: str, region: str = "us-east-1", endpoint_url: str = "",
                 access_key_id: str = "", secret_access_key: str = "", force_path_style: bool = False,
                 connect_timeout: float = 3, read_timeout: float = 20, retries: int = 2) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        parts = urlsplit(endpoint_url) if endpoint_url else None
        # Only host and port are ever shown: an endpoint could carry credentials in its user-info.
        self.endpoint = f"{parts.hostname}:{parts.port}" if parts and parts.port else (
            parts.hostname if parts else f"AWS {region}")
        config = Config(
            region_name=region,
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": retries},
            # Path style (endpoint/bucket/key) for MinIO; otherwise virtual-hosted (bucket.endpoint/key), which AWS
            # and B2 use; with no endpoint (AWS itself) botocore picks.
            s3={"addressing_style": "path" if force_path_style else ("virtual" if endpoint_url else "auto")},
            # Checksums only where S3 requires them: MinIO and B2 releases reject the newer default trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # A session of its own: boto3's default session is shared module state and not thread-safe to build.
        session = boto3.session.Session()
        self._client = session.client(
            "s3", endpoint_url=endpoint_url or None, config=config,
            aws_access_key_id=access_key_id or None, aws_secret_access_key=secret_access_key or None,
        )

    def _call(self, action: str, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except Exception as exc:  # every botocore failure becomes a StorageError with a safe message
            raise self._error(action, key, exc) from exc

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        """Translate a botocore failure; only our own words, codes and statuses go into the message."""
        from botocore import exceptions as bx

        what = f"{action} {key}" if key else action
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                            bx.ConnectionClosedError, bx.ConnectionError)):
            return StorageError(f"The file store (S3) is unreachable: could not {what} at {self.endpoint}; "
                                "check S3_ENDPOINT_URL and that the service is up")
        if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
            return StorageError("The file store (S3) has no credentials: set S3_ACCESS_KEY_ID and "
                                "S3_SECRET_ACCESS_KEY")
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or "unknown"
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            if code == "NoSuchBucket":
                return StorageError(f"The file store (S3) has no bucket {self.bucket!r} at {self.endpoint}: "
                                    "create it or fix S3_BUCKET")
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectMissing(f"The file store (S3) has no object {key}")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"):
                return StorageError(f"The file store (S3) refused to {what} ({code}): check S3_ACCESS_KEY_ID, "
                                    "S3_SECRET_ACCESS_KEY and the bucket's permissions")
            return StorageError(f"The file store (S3) could not {what}: {code} (HTTP {status})")
        if isinstance(exc, bx.BotoCoreError):
            return StorageError(f"The file store (S3) could not {what}: {type(exc).__name__}")
        return StorageError(f"The file store (S3) could not {what}: {type(exc).__name__}")

    def put(self, key: str, data: bytes | BinaryIO, *, content_type: str) -> StoredObject:
        check_key(key)
        body, size, sha = _buffer(data)
        try:
            self._call("save", key, lambda: self._client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentLength=size, ContentType=content_type,
                Metadata={"sha256": sha}))
        finally:
            if not isinstance(body, bytes):
                body.close()
        return StoredObject(key=key, size=size, content_type=content_type, sha256=sha)

    def open(self, key: str) -> BinaryIO:
        check_key(key)
        response = self._call("read", key, lambda: self._client.get_object(Bucket=self.bucket, Key=key))
        raw = _S3Reader(response["Body"], lambda exc: self._error("read", key, exc))
        return io.BufferedReader(raw, CHUNK)  # type: ignore[return-value]

    def read(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def delete(self, key: str) -> None:
        check_key(key)
        self._call("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key))

    def exists(self, key: str) -> bool:
        check_key(key)
        try:
            self._call("check", key, lambda: self._client.head_object(Bucket=self.bucket, Key=key))
        except ObjectMissing:
            return False
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        iterator = iter(pages)
        while True:
            page: dict[str, Any] | None = self._call("list", prefix, lambda: next(iterator, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                yield item["Key"]

    def url(self, key: str, *, expires: int = 300) -> str | None:
        """A presigned GET URL that stops working after `expires` seconds (the bucket itself stays private)."""
        check_key(key)
        if not 1 <= expires <= MAX_URL_SECONDS:
            raise ValueError(f"expires must be between 1 and {MAX_URL_SECONDS} seconds, not {expires}")
        return self._call("sign a link to", key, lambda: self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires))

    def check(self) -> None:
        """Fail with a clear StorageError unless the bucket exists and the credentials reach it."""
        try:
            self._call("reach the bucket", "", lambda: self._client.head_bucket(Bucket=self.bucket))
        except ObjectMissing:  # HEAD has no body, so a missing bucket is a bare 404
            raise StorageError(f"The file store (S3) has no bucket {self.bucket!r} at {self.endpoint}: "
                               "create it or fix S3_BUCKET") from None


class _S3Reader(io.RawIOBase):
    """A streamed S3 body whose failures mid-read are StorageErrors too."""

    def __init__(self, body: Any, translate: Callable[[Exception], StorageError]) -> None:
        self._body = body
        self._translate = translate

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:
            raise self._translate(exc) from exc
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _buffer(data: bytes | BinaryIO) -> tuple[bytes | BinaryIO, int, str]:
    """Hash and size the upload before sending: S3 needs the length, and retries need a rewindable body."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        return raw, len(raw), hashlib.sha256(raw).hexdigest()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    digest, size = hashlib.sha256(), 0
    for chunk in _chunks(data):
        spool.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    spool.seek(0)
    return spool, size, digest.hexdigest()  # type: ignore[return-value]


def build_storage(settings: Settings, upload_path: str | os.PathLike[str]) -> Storage:
    """The backend these settings name (LocalStorage under upload_path/objects, or S3Storage)."""
    if settings.STORAGE_PROVIDER == "s3":
        return S3Storage(bucket=settings.S3_BUCKET, region=settings.S3_REGION, endpoint_url=settings.S3_ENDPOINT_URL,
                         access_key_id=settings.S3_ACCESS_KEY_ID, secret_access_key=settings.S3_SECRET_ACCESS_KEY,
                         force_path_style=settings.S3_FORCE_PATH_STYLE)
    return LocalStorage(Path(upload_path) / "objects")


def storage() -> Storage:
    """The running app's configured backend, built once per app (boto3 clients are thread-safe to share)."""
    from flask import current_app

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    backend = app.extensions.get(_EXTENSION_KEY)
    if backend is None:
        with _BUILD_LOCK:
            backend = app.extensions.get(_EXTENSION_KEY)
            if backend is None:
                backend = build_storage(app.config["COLLECTZ"], app.config["UPLOAD_PATH"])
                app.extensions[_EXTENSION_KEY] = backend
    return backend
