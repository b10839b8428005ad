"""Object storage: local disk and S3 behave alike; S3 runs against a real S3 API (moto's server) on loopback."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask

from collectz import create_app
from collectz.config import ConfigError, Settings
from collectz.services.storage import (
    InvalidKey,
    LocalStorage,
    ObjectMissing,
    S3Storage,
    Storage,
    StorageError,
    key_for,
    storage,
)
from tests import s3_server as moto
from tests.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server

s3_server = moto.s3_server  # the session fixture: one moto server per test process (xdist worker)

BINARY = bytes(range(256)) * 64  # every byte value, 16 KiB
SHA = hashlib.sha256(BINARY).hexdigest()


def build_app(tmp_path: Path, **env: str) -> Flask:
    """An app built the production way: settings from an environment, then create_app."""
    base = {"COLLECTZ_ENV": "testing", "INSTANCE_PATH": str(tmp_path / "instance"), "LOG_LEVEL": "WARNING"}
    settings = Settings.from_env({**base, **env})
    settings.TESTING = True
    return create_app(settings=settings)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """The app's configured backend, local or S3 (a fresh bucket on this worker's moto server)."""
    env: dict[str, str] = {}
    if request.param == "s3":
        server: MotoServer = request.getfixturevalue("s3_server")
        env = server.settings_env(server.create_bucket())
    app = build_app(tmp_path, **env)
    with app.app_context():
        backend = storage()
        assert backend.name == request.param
        yield backend


class Exploding(io.RawIOBase):
    """A caller's stream that fails after its first megabyte."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.sent:
            raise RuntimeError("the upload stream broke")
        buffer[:] = b"x" * len(buffer)
        self.sent += len(buffer)
        return len(buffer)


def test_round_trip_with_binary_data(store: Storage) -> None:
    key = key_for("covers", 12, SHA, ".JPG")
    assert key == f"covers/12/{SHA}.jpg"
    assert not store.exists(key)

    stored = store.put(key, BINARY, content_type="image/jpeg")

    assert (stored.key, stored.size, stored.content_type, stored.sha256) == (key, len(BINARY), "image/jpeg", SHA)
    assert store.exists(key)
    assert store.read(key) == BINARY
    with store.open(key) as fh:
        assert fh.read(100) == BINARY[:100]
        assert fh.read() == BINARY[100:]
    assert list(store.keys()) == [key]

    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting what is gone is fine
    with pytest.raises(ObjectMissing, match=key):
        store.read(key)
    with pytest.raises(ObjectMissing):
        store.open(key)
    assert list(store.keys()) == []


def test_a_stream_is_stored_in_chunks_with_its_size_and_hash(store: Storage) -> None:
    big = BINARY * 160  # 2.5 MiB: more than one read chunk
    stored = store.put("proofs/3/scan.png", io.BytesIO(big), content_type="image/png")

    assert stored.size == len(big)
    assert stored.sha256 == hashlib.sha256(big).hexdigest()
    assert store.read("proofs/3/scan.png") == big


def test_put_replaces_and_a_broken_upload_leaves_the_old_object(store: Storage) -> None:
    store.put("covers/1/a.jpg", b"first", content_type="image/jpeg")
    store.put("covers/1/a.jpg", b"second", content_type="image/jpeg")
    assert store.read("covers/1/a.jpg") == b"second"

    with pytest.raises(RuntimeError, match="upload stream broke"):
        store.put("covers/1/a.jpg", io.BufferedReader(Exploding()), content_type="image/jpeg")
    with pytest.raises(RuntimeError):
        store.put("covers/1/b.jpg", io.BufferedReader(Exploding()), content_type="image/jpeg")

    assert store.read("covers/1/a.jpg") == b"second"
    assert list(store.keys()) == ["covers/1/a.jpg"]  # no half-written object, no temp file
    if isinstance(store, LocalStorage):
        assert [p.name for p in store.root.rglob("*") if p.is_file()] == ["a.jpg"]


def test_keys_lists_everything_under_a_prefix(store: Storage) -> None:
    for key in ("covers/1/a.jpg", "covers/2/b.png", "proofs/1/c.jpg", "coversheet.txt"):
        store.put(key, key.encode(), content_type="application/octet-stream")

    assert sorted(store.keys("covers/")) == ["covers/1/a.jpg", "covers/2/b.png"]
    assert sorted(store.keys("covers")) == ["covers/1/a.jpg", "covers/2/b.png", "coversheet.txt"]
    assert sorted(store.keys()) == ["covers/1/a.jpg", "covers/2/b.png", "coversheet.txt", "proofs/1/c.jpg"]
    assert list(store.keys("nothing/")) == []
    with pytest.raises(InvalidKey):
        list(store.keys("../"))


BAD_KEYS = ["../etc/passwd", "/etc/passwd", "covers/../../x", "covers//x.jpg", "Covers/1/x.jpg", ".hidden",
            "covers/.tmp-x", "covers/1/", "", "covers/x y.jpg", "covers\\x.jpg", "covers/ü.jpg", "a" * 600]


def every_call(store: Storage, key: str) -> list[Callable[[], object]]:
    return [lambda: store.put(key, b"x", content_type="text/plain"), lambda: store.read(key),
            lambda: store.open(key), lambda: store.exists(key), lambda: store.delete(key), lambda: store.url(key)]


def test_bad_keys_are_refused_before_any_io(store: Storage) -> None:
    for key in BAD_KEYS:
        for call in every_call(store, key):
            with pytest.raises(InvalidKey):
                call()
    assert list(store.keys()) == []


def test_key_for_makes_content_addressed_keys_only() -> None:
    assert key_for("covers", 7, SHA.upper(), "png") == f"covers/7/{SHA}.png"
    assert issubclass(InvalidKey, StorageError) and issubclass(InvalidKey, ValueError)
    for args in (("../covers", 7, SHA, "jpg"), ("covers", 0, SHA, "jpg"), ("covers", True, SHA, "jpg"),
                 ("covers", 7, "not-a-hash", "jpg"), ("covers", 7, SHA, "j/pg"), ("covers", 7, SHA, "")):
        with pytest.raises(InvalidKey):
            key_for(*args)  # type: ignore[arg-type]


def test_local_storage_lives_under_the_upload_path_and_has_no_url(tmp_path: Path) -> None:
    app = build_app(tmp_path, UPLOAD_PATH=str(tmp_path / "up"))
    with app.app_context():
        backend = storage()
        assert backend is storage()  # one per app
        backend.put("covers/1/a.jpg", b"img", content_type="image/jpeg")
        assert backend.url("covers/1/a.jpg") is None
        backend.check()
    assert (tmp_path / "up" / "objects" / "covers" / "1" / "a.jpg").read_bytes() == b"img"


def test_the_app_configured_for_s3_stores_in_the_bucket(tmp_path: Path, s3_server: MotoServer) -> None:
    bucket = s3_server.create_bucket()
    app = build_app(tmp_path, **s3_server.settings_env(bucket))
    with app.app_context():
        backend = storage()
        assert isinstance(backend, S3Storage) and backend is storage()
        backend.check()
        backend.put("covers/5/x.webp", BINARY, content_type="image/webp")

    head = s3_server.client().head_object(Bucket=bucket, Key="covers/5/x.webp")
    assert head["ContentType"] == "image/webp"
    assert head["ContentLength"] == len(BINARY)
    assert head["Metadata"] == {"sha256": SHA}
    assert not (tmp_path / "instance" / "uploads" / "objects").exists()


def test_a_missing_bucket_is_a_clear_error(tmp_path: Path, s3_server: MotoServer) -> None:
    app = build_app(tmp_path, **s3_server.settings_env("collectz-no-such-bucket"))
    with app.app_context():
        backend = storage()
        for call in (lambda: backend.put("covers/1/a.jpg", b"x", content_type="image/jpeg"), backend.check,
                     lambda: backend.read("covers/1/a.jpg"), lambda: list(backend.keys())):
            with pytest.raises(StorageError) as excinfo:
                call()
            assert not isinstance(excinfo.value, ObjectMissing)
            assert "no bucket 'collectz-no-such-bucket'" in str(excinfo.value)
            assert "S3_BUCKET" in str(excinfo.value)
            assert SECRET_ACCESS_KEY not in str(excinfo.value)


def test_presigned_url_fetches_the_object_for_a_limited_time(tmp_path: Path, s3_server: MotoServer) -> None:
    app = build_app(tmp_path, **s3_server.settings_env(s3_server.create_bucket()))
    with app.app_context():
        backend = storage()
        backend.put("covers/9/c.png", BINARY, content_type="image/png")
        before = time.time()
        url = backend.url("covers/9/c.png", expires=60)
        with pytest.raises(ValueError):
            backend.url("covers/9/c.png", expires=0)
        with pytest.raises(ValueError):
            backend.url("covers/9/c.png", expires=8 * 24 * 3600)

    assert url and url.startswith(f"{s3_server.url}/")  # path style, as S3_FORCE_PATH_STYLE asks
    assert SECRET_ACCESS_KEY not in url
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 200
    assert resp.content == BINARY
    assert resp.headers["Content-Type"] == "image/png"
    # moto does not enforce expiry, so check what S3 enforces: the signed lifetime and signing time.
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["60"]
    signed_at = time.mktime(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")) - time.timezone
    assert before - 2 <= signed_at <= time.time() + 2
    assert query["X-Amz-Signature"][0]


def test_addressing_style_follows_the_setting() -> None:
    common = {"bucket": "covers-bucket", "endpoint_url": "http://minio.example:9000",
              "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY}
    path_style = S3Storage(force_path_style=True, **common).url("covers/1/a.jpg")
    virtual = S3Storage(force_path_style=False, **common).url("covers/1/a.jpg")
    assert path_style and path_style.startswith("http://minio.example:9000/covers-bucket/covers/1/a.jpg?")
    assert virtual and virtual.startswith("http://covers-bucket.minio.example:9000/covers/1/a.jpg?")


def test_an_outage_fails_quickly_with_a_clear_message(tmp_path: Path) -> None:
    with moto_server() as server:
        app = build_app(tmp_path, **server.settings_env(server.create_bucket()))
        with app.app_context():
            backend = storage()
            backend.put("covers/1/a.jpg", b"before", content_type="image/jpeg")
            server.stop()

            started = time.monotonic()
            with pytest.raises(StorageError) as excinfo:
                backend.put("covers/1/b.jpg", b"during", content_type="image/jpeg")
            assert time.monotonic() - started < 8
            message = str(excinfo.value)
            assert message.startswith("The file store (S3) is unreachable: could not save covers/1/b.jpg")
            assert f"127.0.0.1:{server.port}" in message
            assert SECRET_ACCESS_KEY not in message and ACCESS_KEY_ID not in message
            # An outage is never mistaken for a missing object.
            for call in (lambda: backend.read("covers/1/a.jpg"), lambda: backend.exists("covers/1/a.jpg")):
                with pytest.raises(StorageError) as excinfo:
                    call()
                assert not isinstance(excinfo.value, ObjectMissing)
                assert "unreachable" in str(excinfo.value)


# --- settings ---------------------------------------------------------------------------------------------

S3_ENV = {"COLLECTZ_ENV": "testing", "STORAGE_PROVIDER": "s3", "S3_BUCKET": "my-bucket"}


def test_s3_settings_are_read_and_the_secret_is_redacted(tmp_path: Path) -> None:
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text("file-secret-value-1234\n")
    s = Settings.from_env({**S3_ENV, "S3_REGION": "eu-central-003", "S3_ENDPOINT_URL": "https://s3.example",
                           "S3_ACCESS_KEY_ID": "id", "S3_SECRET_ACCESS_KEY_FILE": str(secret_file),
                           "S3_FORCE_PATH_STYLE": "yes"})
    assert (s.S3_BUCKET, s.S3_REGION, s.S3_ENDPOINT_URL) == ("my-bucket", "eu-central-003", "https://s3.example")
    assert s.S3_SECRET_ACCESS_KEY == "file-secret-value-1234" and s.S3_FORCE_PATH_STYLE is True
    out = s.redacted()
    assert out["S3_SECRET_ACCESS_KEY"] == "***"
    assert "file-secret-value-1234" not in repr(out)


@pytest.mark.parametrize("env, match", [
    ({"S3_BUCKET": ""}, "STORAGE_PROVIDER=s3 needs S3_BUCKET"),
    ({"S3_BUCKET": "My_Bucket"}, "S3_BUCKET must be a bucket name"),
    ({"S3_BUCKET": "ab"}, "S3_BUCKET must be a bucket name"),
    ({"S3_REGION": "EU West"}, "S3_REGION"),
    ({"S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL must start with http:// or https://"),
    ({"S3_ACCESS_KEY_ID": "id"}, "S3_SECRET_ACCESS_KEY is missing"),
    ({"S3_SECRET_ACCESS_KEY": "lonely-secret-5678"}, "S3_ACCESS_KEY_ID is missing"),
    ({"S3_FORCE_PATH_STYLE": "maybe"}, "S3_FORCE_PATH_STYLE must be true or false"),
    ({"STORAGE_PROVIDER": "ftp"}, "STORAGE_PROVIDER must be local or s3"),
])
def test_bad_s3_settings_are_refused_at_start(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as excinfo:
        Settings.from_env({**S3_ENV, **env})
    assert "lonely-secret-5678" not in str(excinfo.value)


def test_local_storage_needs_no_s3_settings() -> None:
    s = Settings.from_env({"COLLECTZ_ENV": "testing"})
    assert (s.STORAGE_PROVIDER, s.S3_BUCKET, s.S3_FORCE_PATH_STYLE) == ("local", "", False)


def test_a_file_store_failure_is_a_503_page_and_a_missing_object_a_404(make_app) -> None:
    from collectz.services.storage import ObjectMissing, StorageError

    app = make_app()

    @app.route("/_test/store-down")
    def store_down() -> str:
        raise StorageError("The file store (S3) is unreachable: could not save covers/1/x.jpg")

    @app.route("/_test/store-missing")
    def store_missing() -> str:
        raise ObjectMissing("covers/1/x.jpg is not in the file store")

    client = app.test_client()
    down = client.get("/_test/store-down")
    assert down.status_code == 503 and "The file store (S3) is unreachable" in down.get_data(as_text=True)
    assert client.get("/_test/store-missing").status_code == 404
