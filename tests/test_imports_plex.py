"""Import from Plex: a job over the sections an admin selected, read from a local fake Plex server (tests/fakes/plex.py,
shaped on the Plex API spec). Acceptance: 3 sections and 5,000 items complete as a job with exact counts; a repeat
creates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Media, MediaSeason, MediaSource, MediaVariant, User
from collectz.services import imports, integrations
from collectz.services.errors import Conflict
from tests.conftest import Actors, activity
from tests.fakes.plex import FakePlex
from tests.fakes.server import RunningFake, serve_wsgi
from tests.imports_helpers import media_count, rows

TOKEN = "plex-token-123"


@contextmanager
def in_app(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()


def user(actors: Actors, name: str) -> User:
    return db.session.get(User, actors.ids[name])


def set_up_plex(actors: Actors, server: RunningFake, keys: list[str], token: str = TOKEN) -> None:
    """What the admin does once under Admin → Integrations: address and token, then the sections."""
    admin = user(actors, "alice")
    integrations.save(admin, "plex", {"enabled": True, "base_url": server.url, "token": token})
    integrations.select_plex_sections(admin, keys)


@pytest.fixture(scope="module")
def acceptance_server() -> Iterator[tuple[FakePlex, RunningFake]]:
    fake = FakePlex(token=TOKEN, **FakePlex.ACCEPTANCE)
    with serve_wsgi(fake) as server:
        yield fake, server


def test_five_thousand_items_in_three_sections_import_with_exact_counts_and_again_create_nothing(
        make_app, actors: Actors, acceptance_server: tuple[FakePlex, RunningFake]):
    fake, server = acceptance_server
    app = make_app()
    assert fake.total_items == 5000 and fake.duplicates == 2
    with in_app(app):
        set_up_plex(actors, server, ["1", "2", "3"])
        job, created = imports.start_plex(user(actors, "bob"))
        assert created and job.kind == "plex" and job.source_name == "Plex: Movies, TV Shows, Music"
        job = imports.run_inline(job.id)
        assert (job.status, job.total, job.processed) == ("succeeded", 5000, 5000)
        # The fake's last two movies are unmatched copies of earlier ones (same title and year): second copies.
        assert (job.created, job.updated, job.skipped, job.failed) == (4998, 2, 0, 0)
        assert media_count() == 4998
        by_type = dict(db.session.execute(select(Media.media_type, func.count()).group_by(Media.media_type)).all())
        assert by_type == {"movie": 2998, "tv_series": 1000, "audio": 1000}
        # Each entry is known by its guid and by its rating key.
        assert db.session.scalar(select(func.count()).select_from(MediaSource)
                                 .where(MediaSource.source == "plex")) == 10000
        assert db.session.scalar(select(func.count()).select_from(Media).where(Media.copies == 2)) == 2
        # Every show's seasons with the episodes owned; every movie's files (a few have a second, 4K file).
        plan = [fake.season_plan(i) for i in range(FakePlex.ACCEPTANCE["shows"])]
        assert db.session.scalar(select(func.count()).select_from(MediaSeason)) == sum(len(p) for p in plan)
        assert db.session.scalar(select(func.sum(MediaSeason.available_episodes))) == \
            sum(owned for p in plan for _n, owned in p)
        files = db.session.scalar(select(func.count()).select_from(MediaVariant))
        assert files >= 3000 and db.session.scalar(select(func.count()).select_from(Media).where(
            Media.resolution == "4K")) >= 1

        again = imports.run_inline(imports.start_plex(user(actors, "bob"))[0].id)
        assert (again.status, again.total, again.created, again.updated, again.skipped, again.failed) == \
            ("succeeded", 5000, 0, 0, 5000, 0)
        assert media_count() == 4998
        assert {r.outcome for r in rows(again.id)} == {"skipped"}
        assert db.session.scalar(select(func.count()).select_from(MediaVariant)) == files
    # The token went in a header only, and never into the job's record or the activity log.
    assert all("X-Plex-Token" not in query for _m, _p, query in fake.requests)
    with in_app(app):
        started = activity(app, "import.started")
        assert started and all(TOKEN not in repr(e.details) for e in started)


def test_a_rematched_item_maps_back_by_its_rating_key_and_gains_new_files(app: Flask, actors: Actors):
    from tests.imports_helpers import run_records

    first = {"source_id": "local://9", "alt_source_ids": ["ratingKey:9"], "media_type": "movie", "title": "Nine",
             "year": 2001, "formats": ["Digital"], "variants": [{"source_key": "m1", "resolution": "1080p"}]}
    show = {"source_id": "plex://show/5", "alt_source_ids": ["ratingKey:5"], "media_type": "tv_series",
            "title": "Five", "year": 2010, "seasons": [{"number": 1, "available": 6, "expected": 6},
                                                      {"number": 2, "available": 3, "expected": 8}]}
    with app.app_context():
        job = run_records("bob@example.org", [first, show], kind="plex")
        assert (job.created, job.updated) == (2, 0)
        # The server matched the film meanwhile: a new guid, the same rating key, and a second (4K) file.
        rematched = {**first, "source_id": "plex://movie/9", "plex_guid": "plex://movie/9",
                     "variants": [{"source_key": "m1", "resolution": "1080p"},
                                  {"source_key": "m2", "resolution": "4K", "edition": "Director's Cut"}]}
        again = run_records("bob@example.org", [rematched, show], kind="plex")
        assert (again.created, again.updated, again.skipped) == (0, 1, 1)
        row = rows(again.id)[0]
        assert (row.message, row.matched_by) == ("filled plex_guid; added files", "source:plex")
        film = db.session.scalar(select(Media).where(Media.title == "Nine"))
        assert film.resolution == "4K" and film.copies == 1
        assert sorted(db.session.scalars(select(MediaVariant.source_key).where(MediaVariant.media_id == film.id))) \
            == ["m1", "m2"]
        seasons = db.session.execute(select(MediaSeason.season_number, MediaSeason.available_episodes,
                                            MediaSeason.expected_episodes, MediaSeason.complete)
                                     .order_by(MediaSeason.season_number)).all()
        assert [tuple(r) for r in seasons] == [(1, 6, 6, True), (2, 3, 8, False)]
        bad = run_records("bob@example.org", [{**first, "source_id": "x", "seasons": [{"number": 1}]},
                                              {**show, "source_id": "y", "seasons": [{"available": 2}]}],
                          kind="plex")
        assert [r.outcome for r in rows(bad.id)] == ["failed", "failed"]
        assert "only a TV series has seasons" in rows(bad.id)[0].message
        assert "each season needs its number" in rows(bad.id)[1].message


def test_only_the_selected_sections_are_read(make_app, actors: Actors):
    fake = FakePlex(token=TOKEN, movies=12, shows=3, albums=4)
    app = make_app()
    with serve_wsgi(fake) as server, in_app(app):
        set_up_plex(actors, server, ["3"])
        job = imports.run_inline(imports.start_plex(user(actors, "bob"))[0].id)
        assert (job.status, job.total, job.created) == ("succeeded", 4, 4)
        assert set(db.session.scalars(select(Media.media_type))) == {"audio"}
    assert not any(path.startswith("/library/sections/1/") for _m, path, _q in fake.requests)


def test_a_server_that_refuses_the_token_fails_the_job_with_a_reason_and_nothing_written(make_app, actors: Actors):
    fake = FakePlex(token=TOKEN, movies=5, shows=1, albums=1)
    app = make_app()
    with serve_wsgi(fake) as server, in_app(app):
        set_up_plex(actors, server, ["1"])
        integrations.save(user(actors, "alice"), "plex", {"enabled": True, "base_url": server.url,
                                                          "token": "stale-token-999"})
        job = imports.run_inline(imports.start_plex(user(actors, "bob"))[0].id)
        assert job.status == "failed" and "Admin → Integrations" in job.error
        assert "stale-token-999" not in job.error and TOKEN not in job.error
        assert media_count() == 0 and rows(job.id) == []
        failed = activity(app, "import.failed")
        assert failed and failed[-1].status == "failed" and "stale-token-999" not in repr(failed[-1].details)


def test_a_server_that_is_down_fails_the_job_and_says_so(make_app, actors: Actors):
    app = make_app(OUTBOUND_TIMEOUT_SECONDS=1)
    with in_app(app):
        with serve_wsgi(FakePlex(token=TOKEN, movies=3, shows=1, albums=1)) as server:
            set_up_plex(actors, server, ["1"])
        job = imports.run_inline(imports.start_plex(user(actors, "bob"))[0].id)  # the server has stopped
        assert job.status == "failed" and job.error.startswith("plex: "), job.error
        assert "Admin → Integrations" in job.error
        assert media_count() == 0


def test_plex_must_be_set_up_first_and_viewers_cannot_import(make_app, actors: Actors):
    app = make_app()
    with in_app(app):
        with pytest.raises(Conflict, match="Admin → Integrations"):
            imports.start_plex(user(actors, "bob"))
        with serve_wsgi(FakePlex(token=TOKEN, movies=3, shows=1, albums=1)) as server:
            set_up_plex(actors, server, ["1"])
            integrations.save(user(actors, "alice"), "plex", {"enabled": False, "base_url": server.url,
                                                              "token": ""})
        with pytest.raises(Conflict):
            imports.start_plex(user(actors, "bob"))  # turned off keeps the sections but imports nothing
        from collectz.services.errors import Forbidden

        with pytest.raises(Forbidden):
            imports.start_plex(user(actors, "vera"))


def test_the_plex_tab_starts_an_import_and_follows_it_on_the_job_page(make_app, actors: Actors):
    fake = FakePlex(token=TOKEN, movies=6, shows=2, albums=2)
    app = make_app()
    with serve_wsgi(fake) as server:
        with in_app(app):
            set_up_plex(actors, server, ["1", "2"])
        bob = actors.client("bob")
        tab = bob.get("/imports/?tab=plex")
        page = tab.get_data(as_text=True)
        assert tab.status_code == 200 and 'data-testid="plex-sections"' in page
        assert "Movies" in page and "TV Shows" in page and "Music" not in page.split('data-testid="plex-sections"')[1]
        resp = bob.post("/imports/plex")
        assert resp.status_code == 303 and "/imports/jobs/" in resp.headers["Location"]
        job_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
        with in_app(app):
            job = imports.run_inline(job_id)  # what the worker does (the embedded queue runs it too)
            assert (job.status, job.created) == ("succeeded", 8)
        assert "Done" in bob.get(f"/imports/jobs/{job_id}").get_data(as_text=True)
        # A viewer sees the tab but no button.
        viewer = actors.client("vera").get("/imports/?tab=plex").get_data(as_text=True)
        assert 'action="/imports/plex"' not in viewer
        assert actors.client("vera").post("/imports/plex").status_code == 403


def test_the_tab_says_what_to_do_when_plex_is_not_set_up(make_app, actors: Actors):
    app = make_app()
    bob = actors.client("bob")
    page = bob.get("/imports/?tab=plex").get_data(as_text=True)
    assert "Admin → Integrations" in page and 'action="/imports/plex"' not in page
    refused = bob.post("/imports/plex")
    assert refused.status_code == 409 and "Admin → Integrations" in refused.get_data(as_text=True)
    with in_app(app):
        assert imports.list_jobs(user(actors, "bob")).items == []
