"""Covers and signed-copy proof photos: upload, replace, remove, serve, thumbnails, downloads, the storage check.

Each item has two image slots, the cover (`Media.cover_key`) and the signed-copy proof photo
(`Media.signed_proof_key`), and a thumbnail of its cover for the library grid (`Media.thumb_key`). Whoever may edit
the item may change its images; every member may see them.

The order of writes means no row ever points at an object that is not stored: an object is stored first and its key
recorded after; if recording fails, the new object is deleted; an object that was replaced or removed is deleted
only after the commit. A delete that fails leaves an orphan (no row points at it), which `flask storage check
--delete-orphans` finds and clears.

Cover addresses from imports (media_metadata `cover_url`) and from provider matches are fetched by a background job
into storage, so a cover no longer depends on the provider. Each pending download is a `cover_downloads` row (address,
attempts, last error, next attempt); a failure that may pass is tried again later (RETRY_DELAYS), others give up and
say why. A download never replaces a cover the item already has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import requests
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from collectz.config import current_settings, trusted_origins
from collectz.extensions import db
from collectz.models import CoverDownload, ImportRow, Media, MediaMetadata, User
from collectz.models.base import utcnow
from collectz.providers.http import (
    DEFAULT_PORTS,
    BadResponse,
    HttpClient,
    ProviderError,
    RateLimited,
    Unavailable,
    Unreachable,
)
from collectz.security.permissions import require_media_edit
from collectz.services import audit, images
from collectz.services.errors import InvalidInput, NotFound
from collectz.services.media import get_media
from collectz.services.storage import ObjectMissing, StorageError, key_for, storage

log = logging.getLogger("collectz.covers")


@dataclass(frozen=True)
class Slot:
    name: str  # cover | proof: the word in URLs and activity actions
    column: str  # the Media attribute holding its key
    kind: str  # the storage key prefix
    label: str


SLOTS = {"cover": Slot("cover", "cover_key", "covers", "cover"),
         "proof": Slot("proof", "signed_proof_key", "proofs", "signed-copy proof photo")}
THUMBS = "thumbs"
KINDS = ("covers", "proofs", THUMBS)  # every key prefix this module stores under (the storage check's scope)
COLUMNS = ("cover_key", "signed_proof_key", "thumb_key")
VARIANTS = ("cover", "proof", "thumb")

# Downloads: attempt n that fails and may pass is tried again RETRY_DELAYS[n - 1] seconds later; the attempt after the
# last delay is the last.
RETRY_DELAYS = (300, 1800, 7200, 43200)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
LEASE_SECONDS = 600  # a claimed download is due again after this if its worker died
MAX_HOPS = 4  # redirects followed (image hosts send a cover's address on to their CDN)
UPLOAD_ALLOWANCE = 64 * 1024  # what the multipart form adds around the image (boundaries, headers, the CSRF token)


class UploadTooLarge(InvalidInput):
    """The request is larger than any image may be: refused before it is read."""

    status = 413


def _settings_limits() -> tuple[int, int]:
    settings = current_settings()
    return settings.MAX_IMAGE_BYTES, settings.MAX_IMAGE_PIXELS


def get_slot(name: str) -> Slot:
    slot = SLOTS.get(name)
    if slot is None:
        raise NotFound("No such image.")
    return slot


def _editable(actor: User, media_id: int, slot: Slot, verb: str) -> Media:
    media = get_media(actor, media_id)
    require_media_edit(actor, media, f"{verb} the {slot.label}")
    return media


def content_type_for(key: str) -> str:
    return images.CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


def version_of(key: str) -> str:
    """The content hash in a key ("covers/12/<sha256>.jpg"): an ETag, and the `v` of an image's URL."""
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


def thumb_key_for(media_id: int, cover_key: str) -> str:
    """The thumbnail's key follows from its cover's: the same cover always has the same thumbnail."""
    return key_for(THUMBS, media_id, version_of(cover_key), "jpg")


# --- upload, replace, remove ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageChange:
    media_id: int
    slot: str
    key: str | None
    replaced: bool

    @property
    def message(self) -> str:
        label = SLOTS[self.slot].label
        if self.key is None:
            return f"Removed the {label}."
        return f"Replaced the {label}." if self.replaced else f"Added the {label}."


def refuse(actor: User, media_id: int, slot: Slot, message: str, **details: object) -> None:
    """Record a refused upload (in its own transaction; the request's pending work is dropped)."""
    audit.record_failure(f"media.{slot.name}_refused", actor=actor, entity_type="media", entity_id=media_id,
                         reason=message, details={k: v for k, v in details.items() if v is not None})


def check_upload_size(actor: User, media_id: int, slot_name: str, size: int | None) -> None:
    """Refuse (and record) an upload whose request is larger than any image may be, before it is read; someone who
    may not change the item is told that instead."""
    max_bytes, _pixels = _settings_limits()
    if size is not None and size > max_bytes + UPLOAD_ALLOWANCE:
        slot = get_slot(slot_name)
        _editable(actor, media_id, slot, "change")
        message = (f"The image is too large ({images.describe_size(size)}): images of up to "
                   f"{images.describe_size(max_bytes)} are accepted.")
        refuse(actor, media_id, slot, message, size=size)
        raise UploadTooLarge(message, fields={"image": message})


def set_image(actor: User, media_id: int, slot_name: str, data: bytes, *, filename: str | None = None) -> ImageChange:
    """Check, clean and store an image as the item's cover or proof photo (replacing any); audited either way."""
    slot = get_slot(slot_name)
    media = _editable(actor, media_id, slot, "change")
    max_bytes, max_pixels = _settings_limits()
    try:
        if not data and filename is None:
            raise images.InvalidImage("Choose a photo or an image file to upload.")
        image = images.prepare(data, max_bytes=max_bytes, max_pixels=max_pixels)
    except images.InvalidImage as exc:
        refuse(actor, media_id, slot, exc.message, filename=(filename or "")[:200] or None, size=len(data))
        raise InvalidInput(exc.message, fields={"image": exc.message}) from None
    key = key_for(slot.kind, media.id, image.sha256, image.ext)
    try:
        storage().put(key, image.data, content_type=image.content_type)
    except StorageError as exc:
        audit.record_failure(f"media.{slot.name}_upload_failed", actor=actor, entity_type="media",
                             entity_id=media_id, reason=exc.message, http_status=503)
        raise
    old = getattr(media, slot.column)
    old_thumb = media.thumb_key if slot.name == "cover" and old != key else None
    details = {"title": media.title, "key": key, "format": image.format, "width": image.width,
               "height": image.height, "size": len(image.data), "location_removed": image.had_location}
    try:
        setattr(media, slot.column, key)
        if slot.name == "cover":
            if old != key:
                media.thumb_key = None
            _forget_download(media.id)  # a member's own cover wins over any address still to fetch
        audit.record(f"media.{slot.name}_{'replaced' if old else 'uploaded'}", actor=actor, entity_type="media",
                     entity_id=media.id, details={**details, **({"previous": old} if old else {})})
        db.session.commit()
    except Exception:
        db.session.rollback()
        if key != old:
            delete_unused(key)
        raise
    delete_unused(*(k for k in (old, old_thumb) if k and k != key))
    return ImageChange(media_id, slot.name, key, replaced=bool(old))


def remove_image(actor: User, media_id: int, slot_name: str) -> ImageChange | None:
    """Remove the item's cover (and its thumbnail) or proof photo; None when there was none."""
    slot = get_slot(slot_name)
    media = _editable(actor, media_id, slot, "remove")
    old = getattr(media, slot.column)
    if not old:
        return None
    old_thumb = media.thumb_key if slot.name == "cover" else None
    setattr(media, slot.column, None)
    if slot.name == "cover":
        media.thumb_key = None
    audit.record(f"media.{slot.name}_removed", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "key": old})
    db.session.commit()
    delete_unused(*(k for k in (old, old_thumb) if k))
    return ImageChange(media_id, slot.name, None, replaced=True)


def image_keys(media: Media) -> list[str]:
    """The stored objects an item points at (read them before a commit that deletes the item)."""
    return [key for key in (getattr(media, column) for column in COLUMNS) if key]


def keys_of(media_ids: Iterable[int]) -> list[str]:
    """The stored objects of these items (read them before a commit that deletes the items)."""
    ids = list(media_ids)
    if not ids:
        return []
    rows = db.session.execute(select(*(getattr(Media, c) for c in COLUMNS)).where(Media.id.in_(ids)))
    return [key for row in rows for key in row if key]


def delete_unused(*keys: str) -> None:
    """After a commit or rollback: delete objects no row points at any more (checked again now: an upload may have
    just recorded the same content); a failure is logged and leaves an orphan for the storage check."""
    if not keys:
        return
    used = _used_keys(keys)
    for key in keys:
        if key in used:
            continue
        try:
            storage().delete(key)
        except StorageError as exc:
            log.warning("could not delete a replaced image", extra={"fields": {"key": key, "error": exc.message}})


def _used_keys(keys: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(keys))
    rows = db.session.execute(select(*(getattr(Media, c) for c in COLUMNS)).where(
        or_(*(getattr(Media, c).in_(wanted) for c in COLUMNS))))
    found = {value for row in rows for value in row if value}
    db.session.rollback()  # a read only: end the transaction rather than hold it across storage calls
    return found


# --- serving ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRef:
    key: str

    @property
    def content_type(self) -> str:
        return content_type_for(self.key)

    @property
    def version(self) -> str:
        return version_of(self.key)


def image_ref(actor: User, media_id: int, variant: str) -> ImageRef | None:
    """The stored image an item shows as `variant` (cover, proof, thumb: the cover until its thumbnail is made), or
    None when it has none. Every member may see every item's images."""
    if variant not in VARIANTS:
        raise NotFound("No such image.")
    row = db.session.execute(select(Media.cover_key, Media.signed_proof_key, Media.thumb_key)
                             .where(Media.id == media_id)).first()
    if row is None:
        raise NotFound("No such item.")
    key = {"cover": row.cover_key, "proof": row.signed_proof_key, "thumb": row.thumb_key or row.cover_key}[variant]
    return ImageRef(key) if key else None


def open_image(ref: ImageRef) -> BinaryIO:
    """The stored bytes, streamed (ObjectMissing → 404, StorageError → 503 through the app's handlers)."""
    return storage().open(ref.key)


# --- thumbnails -------------------------------------------------------------------------------------------------------


def make_thumbnail(media_id: int) -> str | None:
    """Make the item's grid thumbnail from its current cover; returns its key (None: no cover, or it changed)."""
    row = db.session.execute(select(Media.cover_key, Media.thumb_key).where(Media.id == media_id)).first()
    db.session.rollback()
    if row is None or not row.cover_key:
        return None
    want = thumb_key_for(media_id, row.cover_key)
    if row.thumb_key == want:
        return want
    _bytes, max_pixels = _settings_limits()
    try:
        small = images.thumbnail(storage().read(row.cover_key), max_pixels=max_pixels)
    except ObjectMissing:
        log.warning("cover missing from the file store", extra={"fields": {"media_id": media_id}})
        return None
    except images.InvalidImage as exc:
        log.warning("no thumbnail of a stored cover", extra={"fields": {"media_id": media_id, "error": exc.message}})
        return None
    storage().put(want, small, content_type="image/jpeg")
    done = db.session.execute(update(Media).where(Media.id == media_id, Media.cover_key == row.cover_key)
                              .values(thumb_key=want, updated_at=Media.updated_at))
    if not done.rowcount:  # the cover changed meanwhile: this thumbnail belongs to nothing
        db.session.rollback()
        delete_unused(want)
        return None
    db.session.commit()
    if row.thumb_key and row.thumb_key != want:
        delete_unused(row.thumb_key)
    return want


def missing_thumbnails(limit: int = 100) -> list[int]:
    """Items with a cover but no thumbnail yet (the job was never run: Redis was down)."""
    ids = list(db.session.scalars(select(Media.id).where(Media.cover_key.is_not(None), Media.thumb_key.is_(None))
                                  .order_by(Media.id).limit(limit)))
    db.session.rollback()
    return ids


# --- downloads ------------------------------------------------------------------------------------------------------


def _clean_url(url: str | None) -> str | None:
    url = (url or "").strip()
    return url if url.lower().startswith(("http://", "https://")) and len(url) <= 2000 else None


def want_cover(media: Media, url: str | None) -> bool:
    """Ask for `url` to be fetched as the item's cover unless it has one (the caller commits; the periodic sweep
    starts the download). An earlier address that failed is replaced; one still pending stays."""
    url = _clean_url(url)
    if url is None or media.cover_key or media.id is None:
        return False
    row = db.session.scalar(select(CoverDownload).where(CoverDownload.media_id == media.id))
    if row is None:
        db.session.add(CoverDownload(media_id=media.id, url=url, status="pending", attempts=0,
                                     next_attempt_at=utcnow()))
    elif row.status == "failed" and row.url != url:
        row.url, row.status, row.attempts, row.last_error, row.next_attempt_at = url, "pending", 0, None, utcnow()
    else:
        return False
    return True


def queue_import(job_id: int) -> int:
    """Queue a download for each item an import made or updated that has a cover address and no cover yet (and no
    download queued). Safe to run again. Returns how many were queued."""
    items = select(ImportRow.media_id).where(ImportRow.job_id == job_id,
                                             ImportRow.outcome.in_(("created", "updated")))
    pairs = db.session.execute(
        select(MediaMetadata.media_id, MediaMetadata.value)
        .join(Media, Media.id == MediaMetadata.media_id)
        .where(MediaMetadata.key == "cover_url", MediaMetadata.media_id.in_(items), Media.cover_key.is_(None),
               ~select(CoverDownload.id).where(CoverDownload.media_id == MediaMetadata.media_id).exists())
        .order_by(MediaMetadata.media_id)).all()
    now = utcnow()
    rows = [{"media_id": media_id, "url": url, "status": "pending", "attempts": 0, "next_attempt_at": now,
             "created_at": now, "updated_at": now}
            for media_id, value in pairs if (url := _clean_url(value))]
    try:
        for start in range(0, len(rows), 1000):
            db.session.execute(CoverDownload.__table__.insert(), rows[start:start + 1000])
        db.session.commit()
    except IntegrityError:  # another pass queued some of them at the same moment: it has them all
        db.session.rollback()
        return 0
    return len(rows)


def has_due() -> bool:
    found = db.session.scalar(select(CoverDownload.id).where(CoverDownload.status == "pending",
                                                            CoverDownload.next_attempt_at <= utcnow()).limit(1))
    db.session.rollback()
    return found is not None


def claim_due(limit: int) -> list[int]:
    """Take up to `limit` due downloads for this worker: each is pushed LEASE_SECONDS ahead, so another worker
    does not take it too, and it comes back by itself if this worker dies."""
    now = utcnow()
    ids = list(db.session.scalars(select(CoverDownload.id).where(
        CoverDownload.status == "pending", CoverDownload.next_attempt_at <= now)
        .order_by(CoverDownload.next_attempt_at, CoverDownload.id).limit(limit)))
    claimed = []
    for download_id in ids:
        taken = db.session.execute(update(CoverDownload).where(
            CoverDownload.id == download_id, CoverDownload.status == "pending", CoverDownload.next_attempt_at <= now)
            .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS)))
        if taken.rowcount:
            claimed.append(download_id)
    db.session.commit()
    return claimed


@dataclass
class DownloadResult:
    status: str  # downloaded | skipped | retry | failed
    media_id: int | None = None
    reason: str | None = None


def download(download_id: int) -> DownloadResult:
    """Fetch one queued cover into storage and record it as the item's cover (unless it has one meanwhile)."""
    row = db.session.get(CoverDownload, download_id)
    if row is None:
        return DownloadResult("skipped", reason="no such download")
    media = db.session.get(Media, row.media_id)
    if media is None or media.cover_key:
        db.session.delete(row)
        db.session.commit()
        return DownloadResult("skipped", row.media_id, "the item has a cover")
    media_id, url = media.id, row.url
    db.session.rollback()  # no transaction held open across the network
    max_bytes, max_pixels = _settings_limits()
    try:
        image = images.prepare(fetch(url), max_bytes=max_bytes, max_pixels=max_pixels)
        key = key_for("covers", media_id, image.sha256, image.ext)
        storage().put(key, image.data, content_type=image.content_type)
    except ProviderError as exc:
        return _failed(download_id, media_id, _host(url), exc.message,
                       retry=isinstance(exc, (Unreachable, Unavailable, RateLimited)))
    except images.InvalidImage as exc:
        return _failed(download_id, media_id, _host(url), exc.message, retry=False)
    except StorageError as exc:
        return _failed(download_id, media_id, _host(url), exc.message, retry=True)
    return _record_download(download_id, media_id, url, key, image)


def _record_download(download_id: int, media_id: int, url: str, key: str,
                     image: images.PreparedImage) -> DownloadResult:
    try:
        done = db.session.execute(update(Media).where(Media.id == media_id, Media.cover_key.is_(None))
                                  .values(cover_key=key, thumb_key=None, updated_at=Media.updated_at))
        row = db.session.get(CoverDownload, download_id)
        attempt = (row.attempts if row else 0) + 1
        if row is not None:
            db.session.delete(row)
        if not done.rowcount:  # a member added a cover meanwhile (or the item went): theirs stands
            db.session.commit()
            delete_unused(key)
            return DownloadResult("skipped", media_id, "the item has a cover")
        audit.record("media.cover_downloaded", entity_type="media", entity_id=media_id,
                     details={"host": _host(url), "key": key, "format": image.format, "size": len(image.data),
                              "attempt": attempt, "location_removed": image.had_location})
        db.session.commit()
    except Exception:
        db.session.rollback()
        delete_unused(key)
        raise
    return DownloadResult("downloaded", media_id)


def _failed(download_id: int, media_id: int, host: str, message: str, *, retry: bool) -> DownloadResult:
    """Note the failed attempt; schedule the next one (backoff) or give up, saying why."""
    row = db.session.get(CoverDownload, download_id)
    if row is None:
        return DownloadResult("skipped", media_id, "the download was withdrawn")
    row.attempts += 1
    row.last_error = f"{host}: {message}"[:300]
    if retry and row.attempts < MAX_ATTEMPTS:
        row.next_attempt_at = utcnow() + timedelta(seconds=RETRY_DELAYS[row.attempts - 1])
        outcome = DownloadResult("retry", media_id, row.last_error)
    else:
        row.status, row.next_attempt_at = "failed", None
        audit.record("media.cover_download_failed", status="failed", entity_type="media", entity_id=media_id,
                     reason=row.last_error, details={"host": host, "attempts": row.attempts})
        outcome = DownloadResult("failed", media_id, row.last_error)
    db.session.commit()
    return outcome


def _forget_download(media_id: int) -> None:
    db.session.execute(CoverDownload.__table__.delete().where(CoverDownload.media_id == media_id))


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the cover's address"


class _OneHop(HttpClient):
    """One request and no redirect: a redirect to another server is handed back, so that the next hop is a client
    of its own, checked by the outbound policy like the first."""

    def _redirect_target(self, response: requests.Response, url: str, method: str, shown: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise BadResponse(self.provider, f"{method} {shown}: a {response.status_code} redirect without Location")
        raise _Redirected(urljoin(url, location))


class _Redirected(Exception):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def fetch(url: str) -> bytes:
    """GET an image through the outbound policy: public addresses only (or a COVER_TRUSTED_ORIGINS server), bounded
    time and size, redirects followed across servers with each hop checked again."""
    settings = current_settings()
    trusted = trusted_origins(settings.COVER_TRUSTED_ORIGINS)
    for _hop in range(MAX_HOPS + 1):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        try:
            port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        except ValueError:
            port = 0
        origin = f"{scheme}://{parts.netloc}"
        allow_private = (scheme, (parts.hostname or "").lower(), port) in trusted
        client = _OneHop("cover", origin, allow_private=allow_private, timeout=float(settings.OUTBOUND_TIMEOUT_SECONDS),
                         max_redirects=0, headers={"Accept": "image/*"})
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            return client.request("GET", path).content
        except _Redirected as hop:
            url = hop.target
    raise BadResponse("cover", f"more than {MAX_HOPS} redirects")


# --- the storage check ----------------------------------------------------------------------------------------------


@dataclass
class StorageReport:
    backend: str
    objects: int = 0
    recorded: int = 0
    orphans: list[str] = field(default_factory=list)  # stored, and no row points at them
    missing: list[tuple[int, str, str]] = field(default_factory=list)  # (media id, column, key) not stored
    deleted: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.orphans and not self.missing


def check_storage(*, delete_orphans: bool = False) -> StorageReport:
    """Compare the file store with the rows: objects no item points at, and items pointing at no object. With
    `delete_orphans`, delete the orphans (each checked against the rows again first; audited)."""
    store = storage()
    report = StorageReport(store.name)
    recorded: dict[str, tuple[int, str]] = {}
    query = select(Media.id, *(getattr(Media, c) for c in COLUMNS)).where(
        or_(*(getattr(Media, c).is_not(None) for c in COLUMNS))).execution_options(yield_per=1000)
    for row in db.session.execute(query):
        for column, key in zip(COLUMNS, row[1:], strict=True):
            if key:
                recorded[key] = (row[0], column)
    db.session.rollback()
    stored: set[str] = set()
    for kind in KINDS:
        stored.update(store.keys(f"{kind}/"))
    report.objects, report.recorded = len(stored), len(recorded)
    report.orphans = sorted(stored - recorded.keys())
    report.missing = sorted((media_id, column, key) for key, (media_id, column) in recorded.items()
                            if key not in stored)
    if delete_orphans and report.orphans:
        for start in range(0, len(report.orphans), 500):
            batch = report.orphans[start:start + 500]
            used = _used_keys(batch)
            for key in batch:
                if key not in used:
                    store.delete(key)
                    report.deleted.append(key)
        audit.record("storage.orphans_deleted", entity_type="storage", entity_id=store.name,
                     details={"via": "cli", "count": len(report.deleted), "keys": report.deleted[:100]}, commit=True)
    return report
