"""Which metadata providers serve a media type, built from the admin's integration cards.

A provider is used only when its card is turned on and readable (a secret that no longer decrypts leaves it out, with
a warning, and nothing else breaks) and the media type's enrichment flag is on. Each provider module exposes
`build(config, *, throttle=None) -> MetadataProvider` (see providers/base.py); a module that does not exist yet in
this version is simply not offered.

PROVIDER_URL_OVERRIDES (server settings, trusted) replaces a provider's address: a mirror, or a local fake in tests.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging

from collectz.config import current_settings, provider_urls
from collectz.providers.base import MetadataProvider
from collectz.providers.config import ProviderConfig
from collectz.providers.http import ProviderError

log = logging.getLogger("collectz.providers")

# Provider key → (module, the integration card that configures it).
PROVIDERS: dict[str, tuple[str, str]] = {
    "tmdb": ("collectz.providers.tmdb", "tmdb"),
    "openlibrary": ("collectz.providers.openlibrary", "books"),
    "googlebooks": ("collectz.providers.googlebooks", "books"),
    "musicbrainz": ("collectz.providers.musicbrainz", "music"),
    "discogs": ("collectz.providers.discogs", "music"),
    "igdb": ("collectz.providers.igdb", "igdb"),
    "metron": ("collectz.providers.metron", "comics"),
    "gcd": ("collectz.providers.gcd", "comics"),
    "comicvine": ("collectz.providers.comicvine", "comicvine"),
    "upcitemdb": ("collectz.providers.upcitemdb", "barcode"),
    "barcodelookup": ("collectz.providers.barcodelookup", "barcode"),
}
# The enrichment flag of each media type (Admin → Flags).
TYPE_FLAGS: dict[str, str] = {"movie": "enrich_tmdb", "tv_series": "enrich_tmdb", "book": "enrich_books",
                              "audio": "enrich_music", "game": "enrich_games", "comic_book": "enrich_comics"}
OTHER = {"openlibrary": "googlebooks", "googlebooks": "openlibrary", "musicbrainz": "discogs",
         "discogs": "musicbrainz"}


def chain(media_type: str) -> list[str]:
    """Provider keys to ask for a media type, first choice first (by the cards' settings, before availability)."""
    from collectz.services import integrations

    def setting(card: str, name: str, default: str) -> str:
        return str(integrations.get(card).values.get(name) or default)

    if media_type in ("movie", "tv_series"):
        return ["tmdb"]
    if media_type == "book":
        first = setting("books", "provider", "openlibrary")
        return [first, OTHER[first]]
    if media_type == "audio":
        first = setting("music", "provider", "musicbrainz")
        return [first, OTHER[first]]
    if media_type == "game":
        return ["igdb"]
    if media_type == "comic_book":
        keys = [setting("comics", "primary", "metron")]
        fallback = setting("comics", "fallback", "gcd")
        if fallback != "none" and fallback not in keys:
            keys.append(fallback)
        return [*keys, "comicvine"]
    return []


def build(key: str) -> MetadataProvider | None:
    """The provider `key` ready to call, or None when its card is off, unreadable or its module is not there."""
    from collectz.providers.throttle import throttle_for
    from collectz.services import integrations
    from collectz.services.integrations import IntegrationProblem

    module_name, card = PROVIDERS[key]
    if not integrations.is_enabled(card):
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    try:
        config = integrations.config_for(card)
    except IntegrationProblem as exc:
        log.warning("integration not usable", extra={"fields": {"provider": card, "reason": exc.__class__.__name__}})
        return None
    try:
        return module.build(with_override(key, config), throttle=throttle_for(key))
    except ProviderError as exc:  # e.g. a card saved without a value its client needs
        log.warning("provider not usable", extra={"fields": {"provider": key, "status": exc.status}})
        return None


def with_override(key: str, config: ProviderConfig) -> ProviderConfig:
    """The config at the server's override address for `key` (PROVIDER_URL_OVERRIDES), if any."""
    url = provider_urls(current_settings().PROVIDER_URL_OVERRIDES).get(key)
    if url is None:
        return config
    return dataclasses.replace(config, base_url=url, allow_private=True)  # the server's own setting: trusted


def providers_for(media_type: str) -> list[MetadataProvider]:
    """The usable providers of a media type, first choice first ([] when its enrichment flag is off)."""
    from collectz.services import flags

    flag = TYPE_FLAGS.get(media_type)
    if flag is None or not flags.is_enabled(flag):
        return []
    found = []
    for key in chain(media_type):
        provider = build(key)
        if provider is not None:
            found.append(provider)
    return found


def barcode_provider() -> MetadataProvider | None:
    """The barcode lookup service chosen on the Barcodes card (UPCitemdb or Barcode Lookup), when usable."""
    from collectz.services import flags, integrations

    if not flags.is_enabled("barcode_lookup"):
        return None
    preset = str(integrations.get("barcode").values.get("preset") or "upcitemdb")
    return build(preset if preset in PROVIDERS else "upcitemdb")
