"""The library benchmark at 2,000 items: the same seeder and cases, no timings. Keyset pages walk every item exactly
once in every sort, whichever way the page is found; query counts stay flat; every bench case answers; search
and walks use their indexes once there is enough data for the planner to care."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from bench.library import case_info, cases, run_case
from bench.seed import SeedSummary, analyze, seed
from collectz.extensions import db
from collectz.models import Media, MediaPerson, MediaSeason, MediaUserState
from collectz.services import count_cache, queries
from tests.conftest import Actors, statement_plan
from tests.test_library_browse import HX, browse_service, count_queries, titles

ITEMS = 2000


@pytest.fixture
def seeded(app: Flask, actors: Actors) -> SeedSummary:
    with app.app_context():
        with db.engine.begin() as conn:
            summary = seed(conn, ITEMS, users={"bob@example.org": actors.ids["bob"]})
        analyze(db.engine)
    return summary


def _shape(app: Flask, seeded: SeedSummary) -> None:
    assert seeded.by_type == {"movie": 900, "book": 400, "game": 300, "tv_series": 200, "audio": 200}
    assert seeded.zephyr == 6  # 300 at 100,000
    assert 0.12 * ITEMS < seeded.night < 0.18 * ITEMS
    with app.app_context():
        rows = db.session.execute(select(Media.title, Media.search_text, Media.year, Media.rating)).all()
        articles = sum(r.title.startswith(("The ", "A ")) for r in rows)
        assert 0.22 * ITEMS < articles < 0.34 * ITEMS
        # the search words are in titles only
        assert sum("zephyr" in r.search_text for r in rows) == seeded.zephyr
        assert sum("night" in r.search_text for r in rows) == sum("night" in r.title.casefold() for r in rows)
        assert all(1950 <= r.year <= 2025 for r in rows)
        assert 0.28 * ITEMS < sum(r.rating is not None for r in rows) < 0.39 * ITEMS
        directed = db.session.scalar(select(func.count(func.distinct(MediaPerson.media_id)))
                                     .where(MediaPerson.role == "director"))
        assert directed == 900 + 200
        assert db.session.scalar(select(func.count()).select_from(MediaSeason)) > 200
        assert db.session.scalar(select(func.count()).select_from(MediaUserState)) > 0.05 * ITEMS
        db.session.remove()


def _python_order(app: Flask, user_id: int, sort: str, direction: str) -> list[int]:
    with app.app_context():
        rows = db.session.execute(select(Media.id, Media.sort_title, Media.year, Media.formats_key, Media.created_at,
                                         Media.rating)).all()
        mine = dict(db.session.execute(select(MediaUserState.media_id, MediaUserState.rating)
                                       .where(MediaUserState.user_id == user_id)).all())
        db.session.remove()
    key = {"title": lambda r: r.sort_title, "year": lambda r: r.year, "format": lambda r: r.formats_key,
           "added": lambda r: r.created_at, "rating": lambda r: r.rating, "my_rating": lambda r: mine.get(r.id)}[sort]
    desc = direction == "desc"
    present = sorted((r for r in rows if key(r) is not None), key=lambda r: (key(r), r.id), reverse=desc)
    missing = sorted((r for r in rows if key(r) is None), key=lambda r: r.id, reverse=desc)
    return [r.id for r in present + missing]


def _walks(app: Flask, user_id: int) -> None:
    """Every sort, both directions, both ways of finding a page: each item exactly once, in order."""
    for strategy in ("walk", "collect"):
        for sort in queries.SORTS:
            for direction in ("asc", "desc"):
                seen: list[int] = []
                after = ""
                while True:
                    page = browse_service(app, user_id, sort=sort, dir=direction, per_page=200, after=after,
                                          strategy=strategy)
                    seen += [row.id for row in page.rows]
                    if not page.has_next:
                        break
                    after = page.next_cursor
                what = (sort, direction, page.strategy)
                assert len(seen) == len(set(seen)) == ITEMS, what
                assert seen == _python_order(app, user_id, sort, direction), what


def _load_more(client: Any, expected: int) -> None:
    url = "/library/movies/more?per_page=200&sort=rating"
    shown: list[str] = []
    while url:
        resp = client.get(url, headers=HX)
        shown += titles(resp)
        html = resp.get_data(as_text=True)
        found = [part.split('"', 1)[0] for part in html.split('hx-get="')[1:] if "/more?" in part.split('"', 1)[0]]
        url = found[-1].replace("&amp;", "&") if found else ""
    assert len(shown) == expected


FLAT = ["/library/?", "/library/?sort=my_rating", "/library/?q=night", "/library/?q=zephyr",
        "/library/movies?year_from=1990&year_to=1999&sort=year", "/library/?genre=drama&format=dvd&rating_min=5"]


def _flat_query_counts(app: Flask, client: Any) -> None:
    for path in FLAT:
        counts = []
        for size in (10, 200):
            count_cache.clear()  # each request counts its total (a kept count would skip that query)
            with count_queries(app) as statements:
                assert client.get(f"{path}&per_page={size}", headers=HX).status_code == 200
            counts.append(len(statements))
        assert counts[0] == counts[1], (path, counts)


def test_the_data_set_pages_and_query_counts(app: Flask, seeded: SeedSummary, actors: Actors):
    _shape(app, seeded)
    _walks(app, actors.ids["bob"])
    bob = actors.client("bob")
    _load_more(bob, seeded.by_type["movie"])
    _flat_query_counts(app, bob)


def _every_case_answers(app: Flask, client: Any, seeded: SeedSummary) -> None:
    with app.app_context():
        info = case_info(seeded)
        db.session.remove()
    for case in cases(info):
        row = run_case(app, client, case, n=1, warmup=0)
        assert row["queries"] <= 9, row  # a full page includes the nav's running-imports badge (one count)
        if case.kind in ("list", "search") and case.fragment:
            assert "matches" in row, row


def _statements(app: Flask, user_id: int, **args: Any) -> list[tuple[str, Any]]:
    with app.app_context():
        engine = db.engine
    seen: list[tuple[str, Any]] = []
    count_cache.clear()  # the count is the first statement on media

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_a: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        page = browse_service(app, user_id, **args)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return [(sql, params) for sql, params in seen if "FROM media" in sql] + [("strategy", page.strategy)]


def _plan(app: Flask, sql: str, params: Any) -> str:
    with app.app_context(), db.engine.connect() as conn:
        return statement_plan(conn, sql, params)


def test_bench_cases_answer_and_use_their_indexes(app: Flask, seeded: SeedSummary, actors: Actors):
    _every_case_answers(app, actors.client("alice"), seeded)
    count_sql, params = _statements(app, actors.ids["bob"], q="zephyr")[0]
    plan = _plan(app, count_sql, params)
    assert "media_fts VIRTUAL TABLE" in plan or "ix_media_search_trgm" in plan, plan
    # a common term (at scale) walks the title index instead of sorting every match
    statements = _statements(app, actors.ids["bob"], q="night", strategy="walk")
    assert statements[-1] == ("strategy", "walk")
    page_sql, params = statements[1]
    plan = _plan(app, page_sql, params)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            assert "ix_media_browse" in plan, plan


@pytest.mark.slow
def test_the_library_bench_runs_end_to_end(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m bench library` itself at a small size: its own app (seed, every case, more requests than a
    member's rate limit allows in a minute) answers every request; a partial run writes no results."""
    from bench import library

    monkeypatch.setenv("BENCH_WORK_DIR", str(tmp_path))
    written = sorted(library.RESULTS.glob("library-*.json"))
    before = {path: path.stat().st_mtime_ns for path in written}
    assert library.main(["--items", "200", "--requests", "25", "--warmup", "1", "--db", "sqlite",
                         "--throughput-seconds", "0"]) == 0
    assert {path: path.stat().st_mtime_ns for path in written} == before
