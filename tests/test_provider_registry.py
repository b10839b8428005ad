"""The provider registry: cards, flags and server overrides decide which providers serve a media type."""

from __future__ import annotations

from flask import Flask

from collectz.extensions import db
from collectz.models import User
from collectz.providers import registry
from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.services import flags, integrations
from tests.conftest import Actors
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb

TMDB_KEY = "0123456789abcdef0123456789abcdef"


def test_tmdb_serves_movies_once_its_card_is_on_and_its_flag_allows(make_app, actors: Actors):
    with serve_wsgi(FakeTmdb(api_key=TMDB_KEY)) as fake:
        app: Flask = make_app(PROVIDER_URL_OVERRIDES=f"tmdb={fake.url}")
        with app.app_context():
            admin = db.session.get(User, actors.ids["alice"])
            assert registry.providers_for("movie") == []  # the card is off
            integrations.save(admin, "tmdb", {"enabled": True, "language": "en-US", "api_key": TMDB_KEY})
            [tmdb] = registry.providers_for("movie")
            assert isinstance(tmdb, MetadataProvider) and tmdb.key == "tmdb"
            found = tmdb.search(SearchQuery("Fight Club", media_type="movie", year=1999))
            assert found and found[0].title == "Fight Club" and found[0].provider_id == "550"
            full = tmdb.details(found[0])
            assert full.identifiers.get("imdb_id") == "tt0137523" and full.people
            assert [c.title for c in tmdb.by_identifier("tmdb_id", "550")] == ["Fight Club"]
            assert tmdb.by_identifier("isbn13", "9780306406157") == []

            flags.set_enabled(admin, "enrich_tmdb", False)
            db.session.commit()
            assert registry.providers_for("movie") == []
            db.session.remove()


def test_chains_follow_the_cards_settings(app: Flask, actors: Actors):
    with app.app_context():
        assert registry.chain("book") == ["openlibrary", "googlebooks"]
        assert registry.chain("audio") == ["musicbrainz", "discogs"]
        assert registry.chain("comic_book") == ["metron", "gcd", "comicvine"]
        assert registry.chain("other") == []
        admin = db.session.get(User, actors.ids["alice"])
        integrations.save(admin, "books", {"enabled": True, "provider": "googlebooks"})
        assert registry.chain("book") == ["googlebooks", "openlibrary"]
        db.session.remove()
