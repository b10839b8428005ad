"""Library counts and pages kept while nothing they read has changed (PostgreSQL).

Every library page shows the total for its filter set. Counting 100,000 items is the costliest part of a page on
PostgreSQL, and most pages ask for a total already counted; finding a page's rows comes next, and the same few views
(a section's first page, a filter followed from a link) are asked again and again. The database keeps generations
(migration 0008): its own triggers move them, in the writing transaction, on every write to the tables a count or a
page reads (kind `catalog`), or to members' ratings and statuses (kind `user_state`). A count is kept under the
generations read before it was made, so it is used again only while no write has committed since; a count that reads
members' ratings also keys on `user_state`, the others not, so a member rating an item does not throw away the other
counts. Pages are kept the same way (`page`): rows without the viewer's own ratings (those are read
apart), keyed by what the caller says makes them, and on `user_state` only when members' ratings decide which rows
or their order.

A transaction that has written anything neither uses nor keeps counts or pages (it may still roll back). The
caches are per process (each gunicorn worker keeps its own), bounded, and their entries expire after
`TTL_SECONDS` in any case. SQLite results are not cached: it has no generations.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import text

from collectz.extensions import db

MAX_ENTRIES = 1024
MAX_PAGES = 256  # views; a page's rows are some kilobytes
MAX_SHAPES = 256  # distinct count statements (filter combinations) kept apart; then all is forgotten
TTL_SECONDS = 300.0

# One statement: the library queries' planner settings for this transaction, and the generations. (psycopg prepares
# a statement after a few runs, and PostgreSQL may then plan it once for any values: for these value-sensitive
# queries that generic plan is several times slower than one for the values. Parallel workers cost more to start
# than a page or a count of one library takes.)
_TUNE_AND_READ_SQL = (
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('max_parallel_workers_per_gather', '0', true), "
    "(SELECT max(value) FROM count_generations WHERE kind = 'instance'), "
    "(SELECT sum(value) FROM count_generations WHERE kind = 'catalog'), "
    "(SELECT sum(value) FROM count_generations WHERE kind = 'user_state'), "
    "pg_current_xact_id_if_assigned() IS NOT NULL")
_TUNE_AND_READ = text(_TUNE_AND_READ_SQL)


@dataclass(frozen=True)
class Generations:
    instance: int
    catalog: int
    user_state: int


_lock = threading.Lock()
_entries: OrderedDict[Any, tuple[float, int]] = OrderedDict()
_pages: OrderedDict[Any, tuple[float, Any, Any]] = OrderedDict()  # view → (expiry, stamp, page)
# A statement's structure (kilobytes of nested tuples) is kept once, under a number the entries use.
_shapes: dict[Any, int] = {}
_shape_numbers = itertools.count(1)


def tune_and_read() -> Generations | None:
    """PostgreSQL: set this transaction's planner settings for the library's queries and read the generations
    (one round trip). None on SQLite, or where the generations are missing."""
    return tune_read_and(None)[0]


def tune_read_and(column: str | None, **params: Any) -> tuple[Generations | None, Any]:
    """tune_and_read, and one more column of the caller's (SQL with bound `params`) in the same round trip: its
    value, or None (SQLite: neither is read)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None, None
    row = db.session.execute(_TUNE_AND_READ if column is None else _with_column(column), params).one()
    _plan, _workers, instance, catalog, user_state, wrote = row[:6]
    also = row[6] if column is not None else None
    if wrote or instance is None or catalog is None or user_state is None:
        return None, also  # a transaction that has written keeps out: its generations count its own writes
    return Generations(int(instance), int(catalog), int(user_state)), also


@lru_cache(maxsize=8)
def _with_column(column: str) -> Any:
    return text(f"{_TUNE_AND_READ_SQL}, {column}")


def _key(statement: Any, generations: Generations, reads_user_state: bool) -> Any:
    # SQLAlchemy's own cache key of the statement (its structure and its bound values): what it caches compiled
    # SQL by. None when the statement cannot be keyed; then it is not cached.
    cache_key = statement._generate_cache_key()
    if cache_key is None:
        return None
    values = tuple(_hashable(bind.effective_value) for bind in cache_key.bindparams)
    try:
        hash(values)
    except TypeError:  # a value of a kind not seen here before: count it
        return None
    user_state = generations.user_state if reads_user_state else None
    with _lock:
        shape = _shapes.get(cache_key.key)
        if shape is None:
            if len(_shapes) >= MAX_SHAPES:
                _shapes.clear()
                _entries.clear()
            shape = _shapes[cache_key.key] = next(_shape_numbers)  # never given twice
    return (generations.instance, generations.catalog, user_state, shape, values)


def _hashable(value: Any) -> Any:
    """An IN list's values as a tuple (the rest as they are)."""
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


def stamp(generations: Generations, *, reads_user_state: bool) -> tuple[int, int, int | None]:
    """What a kept page must have been made under to be used: the instance, the catalog, and members' ratings when
    they decide which rows the page shows or their order."""
    return generations.instance, generations.catalog, generations.user_state if reads_user_state else None


def kept_page(key: Any) -> tuple[tuple[int, int, int | None], Any] | None:
    """The latest page kept for a view (`key`: everything it is made from: statement, viewer, view): (the stamp it
    was made under, the page), or None. The caller uses it only if the stamp is still that of the generations."""
    now = time.monotonic()
    with _lock:
        found = _pages.get(key)
        if found is None or found[0] <= now:
            return None
        _pages.move_to_end(key)
        return found[1], found[2]


def keep_page(key: Any, generations: Generations | None, *, reads_user_state: bool, page: Any) -> None:
    """Keep a view's page (immutable) made under these generations (None: not kept). A view keeps one entry, the
    latest: generations only go up, so an older one is never used again (and a view sorted by members' ratings
    would otherwise leave one behind at every rating)."""
    if generations is None:
        return
    with _lock:
        _pages[key] = (time.monotonic() + TTL_SECONDS, stamp(generations, reads_user_state=reads_user_state), page)
        _pages.move_to_end(key)
        while len(_pages) > MAX_PAGES:
            _pages.popitem(last=False)


def count(statement: Any, generations: Generations | None, *, reads_user_state: bool) -> int:
    """The statement's count (a `SELECT count(*) ...`), from the cache when the generations still match."""

    def compute() -> int:
        return db.session.scalar(statement) or 0

    if generations is None:
        return compute()
    key = _key(statement, generations, reads_user_state)
    if key is None:
        return compute()
    now = time.monotonic()
    with _lock:
        found = _entries.get(key)
        if found is not None and found[0] > now:
            _entries.move_to_end(key)
            return found[1]
    value = compute()
    with _lock:
        _entries[key] = (now + TTL_SECONDS, value)
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value


def clear() -> None:
    """Forget every kept count and page (tests)."""
    with _lock:
        _entries.clear()
        _pages.clear()
        _shapes.clear()
