"""Plex sections as import Records: read from the fake server over HTTP, checked against the fake's own library."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from collectz.extensions import db
from collectz.importers.plex import count, iter_records, record_of, source_id
from collectz.models import Media
from collectz.models.media import MediaVariant
from collectz.providers.config import ProviderConfig
from collectz.providers.plex import PlexClient, PlexItem
from collectz.services.import_writer import BatchContext, RowError, convert, write_batch
from collectz.services.users import ensure_default_library
from tests.fakes.plex import FakePlex
from tests.fakes.server import RunningFake, serve_wsgi

TOKEN = "plex-token-123"
SECTIONS = [{"key": "1", "title": "Movies", "type": "movie"}, {"key": "2", "title": "TV Shows", "type": "show"},
            {"key": "3", "title": "Music", "type": "artist"}]


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakePlex(token=TOKEN)) as server:
        yield server


@pytest.fixture(scope="module")
def fake(running: RunningFake) -> FakePlex:
    return running.app  # type: ignore[return-value]


@pytest.fixture(scope="module")
def plex(running: RunningFake) -> PlexClient:
    return PlexClient.from_config(ProviderConfig("plex", secrets={"token": TOKEN}, base_url=running.url))


@pytest.fixture(scope="module")
def records(plex: PlexClient) -> list[dict]:
    return list(iter_records(plex, SECTIONS))


def by_rating_key(records: list[dict], rating_key: str) -> dict:
    return next(r for r in records if r["extra"]["plex_rating_key"] == rating_key)


# --- the records of a small server -------------------------------------------------------------------------------


def test_every_item_of_the_selected_sections_becomes_one_record(records, plex, fake) -> None:
    assert count(plex, SECTIONS) == len(records) == fake.total_items == 35
    assert [r["line"] for r in records] == list(range(1, 36))
    assert len({r["source_id"] for r in records}) == 35
    assert Counter(r["media_type"] for r in records) == {"movie": 20, "tv_series": 5, "audio": 10}
    assert [r["extra"]["plex_section"] for r in records] == ["Movies"] * 20 + ["TV Shows"] * 5 + ["Music"] * 10
    assert all(r["formats"] == ["Digital"] for r in records)


def test_only_the_selected_sections_are_read(plex) -> None:
    music = list(iter_records(plex, SECTIONS[2:]))
    assert count(plex, SECTIONS[2:]) == len(music) == 10
    assert {r["media_type"] for r in music} == {"audio"}


def test_a_matched_movie_carries_its_ids_people_and_details(records, fake) -> None:
    source = fake.items("1")[0]
    record = records[0]
    assert record["source_id"] == record["plex_guid"] == source["guid"]
    assert (record["tmdb_id"], record["tmdb_media_type"]) == ("10000", "movie")
    assert (record["extra"]["imdb_id"], record["extra"]["tvdb_id"]) == ("tt1000000", "50000")
    assert (record["title"], record["year"], record["release_date"]) == (
        source["title"], source["year"], source["originallyAvailableAt"])
    assert (record["overview"], record["runtime"], record["rating"]) == (source["summary"], 85, "5.0")
    assert record["people"] == ([["director", source["Director"][0]["tag"]]]
                                + [["writer", w["tag"]] for w in source["Writer"]]
                                + [["cast", r["tag"]] for r in source["Role"]])
    assert record["genres"] == [g["tag"] for g in source["Genre"]]
    assert record["details"] == {"studio": source["studio"], "resolution": "1080p"}
    assert record["extra"]["content_rating"] == source["contentRating"]
    assert record["extra"]["plex_thumb"] == source["thumb"]


def test_an_unmatched_item_keeps_a_source_id_but_no_plex_guid(records) -> None:
    local = by_rating_key(records, "100010")
    assert local["source_id"] == "local://100010"  # stable on this server: a repeat import finds it again
    assert "plex_guid" not in local and "tmdb_id" not in local  # it dedupes by title + year instead
    legacy = by_rating_key(records, "100009")
    assert legacy["plex_guid"] == "com.plexapp.agents.imdb://tt1000008?lang=en"
    assert legacy["extra"]["imdb_id"] == "tt1000008"


def test_an_item_without_a_guid_is_known_by_its_rating_key() -> None:
    assert source_id(PlexItem(rating_key="42", guid="", type="movie", title="Untitled")) == "ratingKey:42"
    record = record_of(PlexItem(rating_key="42", guid="", type="movie", title="Untitled"))
    assert record["source_id"] == "ratingKey:42" and "plex_guid" not in record


def test_variants_and_editions_travel_with_the_media_variants_column_names(records) -> None:
    two = by_rating_key(records, "100004")["variants"]
    assert [(v["source_key"], v["resolution"], v["video_codec"]) for v in two] == [
        ("1000006", "1080p", "h264"), ("1000007", "4K", "hevc")]
    assert by_rating_key(records, "100004")["details"]["resolution"] == "4K"  # the best of its files
    columns = set(MediaVariant.__table__.columns.keys())
    assert all(set(v) <= columns for v in two)
    cut = by_rating_key(records, "100006")
    assert cut["details"]["edition"] == "Director's Cut"
    assert cut["variants"][0]["edition"] == "Director's Cut"
    assert cut["variants"][0]["file_path"] == (
        "Last Harbor (1987) {edition-Director's Cut}.mp4")


def test_a_matched_item_is_also_known_by_its_rating_key() -> None:
    record = record_of(PlexItem(rating_key="7", guid="plex://movie/7", type="movie", title="Seven"))
    assert record["source_id"] == "plex://movie/7" and record["alt_source_ids"] == ["ratingKey:7"]
    unmatched = record_of(PlexItem(rating_key="8", guid="", type="movie", title="Eight"))
    assert unmatched["source_id"] == "ratingKey:8" and "alt_source_ids" not in unmatched


def test_a_show_carries_its_seasons_and_tmdb_tv_id(records, fake) -> None:
    shows = [r for r in records if r["media_type"] == "tv_series"]
    for i, show in enumerate(shows):
        assert show["seasons"] == [{"number": n, "available": owned, "expected": None}
                                   for n, owned in fake.season_plan(i)]
    assert (shows[0]["tmdb_id"], shows[0]["tmdb_media_type"]) == ("30000", "tv")
    assert shows[0]["details"] == {"network": "HBO"}
    assert shows[0]["people"][0][0] == "cast"
    assert "tmdb_id" not in shows[3] and shows[3]["extra"]["tvdb_id"] == "70003"


def test_an_album_carries_its_artist_label_and_track_count(records, fake) -> None:
    album = by_rating_key(records, "500001")
    assert album["people"] == [["artist", fake.items("3", 8)[0]["title"]]]
    assert album["details"] == {"label": "RCA", "track_count": 8}
    assert album["extra"]["mbid"] and "tmdb_id" not in album
    assert album["rating"] == "4.0"


def test_every_record_converts_with_the_import_writer_s_rules(records) -> None:
    for record in records:
        incoming = convert(record)
        assert incoming.source_id == record["source_id"]
        assert incoming.plex_guid == record.get("plex_guid")
    movie = convert(by_rating_key(records, "100004"))
    assert movie.columns["type_details"] == {"studio": "Pathé", "resolution": "4K"}
    assert movie.columns["tmdb_id"] == 10009 and movie.columns["formats"] == ["Digital"]
    assert movie.variants[1]["resolution"] == "4K" and movie.alt_source_ids == ["ratingKey:100004"]
    assert "plex_variants" not in movie.metadata
    album = convert(by_rating_key(records, "500001"))
    assert album.columns["type_details"] == {"label": "RCA", "track_count": 8}


# --- a large server ----------------------------------------------------------------------------------------------


def test_five_thousand_items_are_read_in_pages_in_a_few_seconds() -> None:
    fake = FakePlex(token=TOKEN, **FakePlex.ACCEPTANCE)
    assert fake.total_items == 5000
    with serve_wsgi(fake) as server:
        plex = PlexClient.from_config(ProviderConfig("plex", secrets={"token": TOKEN}, base_url=server.url))
        assert count(plex, SECTIONS) == 5000
        records = list(iter_records(plex, SECTIONS))
    assert len(records) == 5000 and len({r["source_id"] for r in records}) == 5000
    assert Counter(r["media_type"] for r in records) == {"movie": 3000, "tv_series": 1000, "audio": 1000}

    listings = [q for _m, path, q in fake.requests if path.endswith("/all") and "includeGuids" in q]
    assert len(listings) == 6 + 2 + 2  # pages of 500: no request per item, show or season
    assert len(fake.requests) < 25


# --- what the writer makes of them -------------------------------------------------------------------------------


def write_all(records: list[dict]) -> Counter:
    """Convert and write the records in batches as an import job would; the outcome counts."""
    ctx = BatchContext(library_id=ensure_default_library().id, source="plex", added_by=None, import_source="plex")
    outcomes: Counter = Counter()
    for start in range(0, len(records), 16):
        items: list = []
        for record in records[start:start + 16]:
            try:
                items.append(convert(record))
            except RowError as exc:
                items.append(exc)
        outcomes.update(o.outcome for o in write_batch(ctx, items))
        db.session.commit()
    return outcomes


def test_an_import_dedupes_by_title_and_year_and_a_repeat_creates_nothing(ctx: Flask, records, fake) -> None:
    first = write_all(records)
    # The fake's duplicates are unmatched copies of earlier films: another copy of the item, not a new item.
    assert first == {"created": fake.total_items - fake.duplicates, "updated": fake.duplicates}
    assert len(db.session.scalars(select(Media.id)).all()) == 33
    copies = db.session.scalars(select(Media.copies).where(Media.copies > 1)).all()
    assert sorted(copies) == [2, 2]
    assert write_all(records) == {"skipped": fake.total_items}
    assert len(db.session.scalars(select(Media.id)).all()) == 33
