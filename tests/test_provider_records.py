"""Provider records: the Candidate every provider returns, and the import Record it turns into."""

from __future__ import annotations

import json
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import Media, MediaMetadata, MediaSource
from collectz.providers.records import Candidate, EpisodeInfo, SeasonInfo, parse_date, positive_int
from collectz.providers.tmdb import normalise_movie, normalise_tv
from collectz.services.import_writer import BatchContext, RowError, convert, write_batch
from collectz.services.users import ensure_default_library
from tests.fakes.tmdb import DATA_DIR

IMAGES = "https://image.tmdb.org/t/p"


def recorded(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


@pytest.fixture
def fight_club() -> Candidate:
    return normalise_movie(recorded("movie_550.json"), IMAGES)


@pytest.fixture
def breaking_bad() -> Candidate:
    return normalise_tv(recorded("tv_1396.json"), IMAGES)


def book(**overrides: object) -> Candidate:
    """A provider-neutral candidate as a book provider (Open Library, say) would fill it."""
    values: dict = {"provider": "openlibrary", "provider_id": "OL26331930M", "media_type": "book",
                    "title": "The Hobbit", "release_date": date(1937, 9, 21), "people": [("author", "J.R.R. Tolkien")],
                    "identifiers": {"isbn13": "9780261103344", "openlibrary_id": "OL26331930M"},
                    "details": {"publisher": "HarperCollins", "pages": 310, "edition": ""}}
    values.update(overrides)
    return Candidate(**values)


# --- the Candidate -----------------------------------------------------------------------------------------------


def test_a_candidate_takes_its_year_from_the_release_date() -> None:
    assert book().year == 1937
    assert book(year=1951).year == 1951  # a year given stays (the writer decides which one wins)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("media_type", "tv", "'tv' is not a media type"),
    ("people", [("author", "A"), ("composer", "B")], "unknown person roles composer"),
    ("rating", 10.5, "not between 0 and 10"),
])
def test_a_candidate_refuses_what_our_catalog_cannot_hold(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        book(**{field: value})


def test_people_in_a_role_keep_their_order(fight_club: Candidate) -> None:
    assert fight_club.people_in("writer") == ["Chuck Palahniuk", "Jim Uhls"]
    assert book().people_in("director") == []


def test_small_parsers_forgive_what_providers_send_for_unknown() -> None:
    assert parse_date("1999-10-15") == date(1999, 10, 15)
    assert parse_date("2012-08-28T00:00:00.000Z") == date(2012, 8, 28)
    assert [parse_date(v) for v in ("", None, "1999", "1999-13-01", 19991015)] == [None] * 5
    assert [positive_int(v) for v in (139, "45", 0, -3, None, True, "n/a", 12.7)] == [139, 45, None, None, None,
                                                                                       None, None, 12]


# --- to_record ---------------------------------------------------------------------------------------------------


def test_a_movie_record_follows_the_import_contract(fight_club: Candidate) -> None:
    record = fight_club.to_record()
    assert record == {
        "media_type": "movie", "title": "Fight Club", "year": 1999, "release_date": "1999-10-15",
        "overview": fight_club.overview, "runtime": 139, "rating": "8.43",
        "genres": ["Drama", "Thriller", "Comedy"], "people": [[r, n] for r, n in fight_club.people],
        "details": {"studio": "Fox 2000 Pictures"}, "cover_url": f"{IMAGES}/w500/pB8BM7pdSp6B6Ih7QZ4DrQ3PmJK.jpg",
        "tmdb_id": "550", "tmdb_media_type": "movie",
        "extra": {"composer": "John King, Michael Simpson", "imdb_id": "tt0137523"},
    }
    assert json.loads(json.dumps(record)) == record  # plain JSON: it is stored as import_rows.raw


def test_a_series_record_carries_its_season_summaries(breaking_bad: Candidate) -> None:
    breaking_bad.seasons[0].episodes = [EpisodeInfo(1, "Pilot", date(2008, 1, 20))]
    record = breaking_bad.to_record()
    assert record["media_type"] == "tv_series" and record["tmdb_media_type"] == "tv"
    assert record["seasons"] == [
        {"number": 1, "episode_count": 7, "name": "Season 1", "air_date": "2008-01-20"},
        {"number": 2, "episode_count": 13, "name": "Season 2", "air_date": "2009-03-08"},
        {"number": 3, "episode_count": 13, "name": "Season 3", "air_date": "2010-03-21"}]
    assert record["extra"] == {"imdb_id": "tt0903747", "tvdb_id": "81189", "wikidata_id": "Q1079"}
    assert record["details"] == {"network": "AMC", "status": "Ended"}


def test_identifiers_go_to_their_record_keys_and_the_rest_to_extra() -> None:
    record = book(identifiers={"isbn13": "9780261103344", "upc": "012345678905", "asin": "B0000TEST1",
                               "plex_guid": "plex://book/1", "openlibrary_id": "OL1M", "empty": ""},
                  extra={"subtitle_note": "There and Back Again"}).to_record()
    assert (record["isbn"], record["upc"], record["asin"], record["plex_guid"]) == (
        "9780261103344", "012345678905", "B0000TEST1", "plex://book/1")
    assert record["extra"] == {"subtitle_note": "There and Back Again", "openlibrary_id": "OL1M"}
    assert "tmdb_media_type" not in record
    assert record["details"] == {"publisher": "HarperCollins", "pages": 310}  # an empty detail is "not given"


def test_the_entry_id_is_the_providers_own_only_for_an_import_from_that_provider() -> None:
    assert "source_id" not in book().to_record()
    assert book().to_record(source="openlibrary")["source_id"] == "OL26331930M"
    assert "source_id" not in book().to_record(source="csv")
    assert book().to_record(source="csv", source_id="row-7")["source_id"] == "row-7"


def test_an_original_title_equal_to_the_title_is_left_out() -> None:
    assert "original_title" not in book(original_title="The Hobbit").to_record()
    assert book(original_title="Der Hobbit").to_record()["original_title"] == "Der Hobbit"


def test_duplicate_people_and_genres_are_written_once() -> None:
    record = book(people=[("author", "A"), ("author", "A"), ("illustrator", "A")], genres=["X", "X", "Y"]).to_record()
    assert record["people"] == [["author", "A"], ["illustrator", "A"]] and record["genres"] == ["X", "Y"]


# --- the import writer accepts them ------------------------------------------------------------------------------


def test_the_import_writer_converts_a_tmdb_movie(fight_club: Candidate) -> None:
    incoming = convert(fight_club.to_record(source="tmdb"))
    columns = incoming.columns
    assert (columns["media_type"], columns["title"], columns["year"], columns["runtime"]) == (
        "movie", "Fight Club", 1999, 139)
    assert (columns["tmdb_id"], columns["tmdb_media_type"]) == (550, "movie")
    assert columns["type_details"] == {"studio": "Fox 2000 Pictures"}
    assert incoming.rating == 8.43 and incoming.source_id == "550"
    assert incoming.metadata == {"composer": "John King, Michael Simpson", "imdb_id": "tt0137523",
                                 "cover_url": f"{IMAGES}/w500/pB8BM7pdSp6B6Ih7QZ4DrQ3PmJK.jpg"}
    credits = {(c.role, c.name) for c in incoming.cleaned.people or []}
    assert {("director", "David Fincher"), ("producer", "Art Linson"), ("cast", "Brad Pitt")} <= credits
    assert incoming.cleaned.genres == ["Drama", "Thriller", "Comedy"]


def test_the_import_writer_converts_a_series_and_a_book(breaking_bad: Candidate) -> None:
    series = convert(breaking_bad.to_record())
    assert (series.columns["tmdb_id"], series.columns["tmdb_media_type"]) == (1396, "tv")
    assert series.columns["type_details"] == {"network": "AMC", "status": "Ended"}
    assert series.metadata["tvdb_id"] == "81189"
    hobbit = convert(book(identifiers={"isbn13": "978-0-261-10334-4", "upc": "012345678905"}).to_record())
    assert (hobbit.columns["isbn13"], hobbit.columns["ean13"]) == ("9780261103344", "0012345678905")
    assert hobbit.columns["type_details"] == {"publisher": "HarperCollins", "pages": 310}


def test_every_recorded_tmdb_document_converts() -> None:
    for path in sorted(DATA_DIR.glob("*.json")):
        if path.name.startswith("movie_"):
            convert(normalise_movie(recorded(path.name), IMAGES).to_record())
        elif "_season_" not in path.name and path.name.startswith("tv_"):
            convert(normalise_tv(recorded(path.name), IMAGES).to_record())


def test_a_bad_value_from_a_provider_fails_its_row_with_a_reason() -> None:
    with pytest.raises(RowError, match="ISBN"):
        convert(book(identifiers={"isbn13": "9780261103345"}).to_record())  # wrong check digit


def test_writing_candidates_creates_items_and_a_repeat_maps_back(ctx: Flask, fight_club: Candidate,
                                                                 breaking_bad: Candidate) -> None:
    batch = BatchContext(library_id=ensure_default_library().id, source="tmdb", added_by=None, import_source="tmdb")
    records = [c.to_record(source="tmdb") for c in (fight_club, breaking_bad, book())]
    outcomes = write_batch(batch, [convert(r) for r in records])
    db.session.commit()
    assert [o.outcome for o in outcomes] == ["created", "created", "created"]
    movie = db.session.get(Media, outcomes[0].media_id)
    assert (movie.title, movie.tmdb_id, movie.tmdb_media_type, movie.rating) == ("Fight Club", 550, "movie", 8.43)
    by_role = sorted((p.role, p.position, p.person.name) for p in movie.people)  # positions count per role
    assert [name for role, _pos, name in by_role if role == "writer"] == ["Chuck Palahniuk", "Jim Uhls"]
    assert [name for role, _pos, name in by_role if role == "cast"][:2] == ["Edward Norton", "Brad Pitt"]
    assert ("director", 0, "David Fincher") in by_role
    assert sorted(g.name for g in movie.genres) == ["Comedy", "Drama", "Thriller"]
    metadata = dict(db.session.execute(select(MediaMetadata.key, MediaMetadata.value).where(
        MediaMetadata.media_id == movie.id)).all())
    assert metadata["imdb_id"] == "tt0137523"
    assert db.session.scalar(select(MediaSource.source_id).where(MediaSource.media_id == movie.id)) == "550"
    again = write_batch(batch, [convert(r) for r in records])
    db.session.commit()
    assert [o.outcome for o in again] == ["skipped", "skipped", "skipped"]
    assert [o.media_id for o in again] == [o.media_id for o in outcomes]


def test_season_info_defaults_to_no_episodes() -> None:
    assert SeasonInfo(number=1).episodes == [] and SeasonInfo(number=1).episode_count is None
