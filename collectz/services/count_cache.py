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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from collectz.extensions import db

MAX_ENTRIES = 1024
MAX_PAGES = 256  # a page's rows are some kilobytes: fewer of them
MAX_SHAPES = 256  # distinct count statements (filter combinations) kept apart; then all is forgotten
TTL_SECONDS = 300.0

# One statement: the library queries' planner settings for this transaction, and the generations. (psycopg prepares
# a statement after a few runs, and PostgreSQL may then plan it once for any values: for these value-sensitive
# queries that generic plan is several times slower than one for the values. Parallel workers cost more to start
# than a page or a count of one library takes.)
_TUNE_AND_READ = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('max_parallel_workers_per_gather', '0', true), "
    "(SELECT max(value) FROM count_generations WHERE kind = 'instance'), "
    "(SELECT sum(value) FROM count_generations WHERE kind = 'catalog'), "
    "(SELECT sum(value) FROM count_generations WHERE kind = 'user_state'), "
    "pg_current_xact_id_if_assigned() IS NOT NULL")


@dataclass(frozen=True)
class Generations:
    instance: int
    catalog: int
    user_state: int


_lock = threading.Lock()
_entries: OrderedDict[Any, tuple[float, int]] = OrderedDict()
_pages: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
# A statement's structure (kilobytes of nested tuples) is kept once, under a number the entries use.
_shapes: dict[Any, int] = {}
_shape_numbers = itertools.count(1)


def tune_and_read() -> Generations | None:
    """PostgreSQL: set this transaction's planner settings for the library's queries and read the generations
    (one round trip). None on SQLite, or where the generations are missing."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    _plan, _workers, instance, catalog, user_state, wrote = db.session.execute(_TUNE_AND_READ).one()
    if wrote or instance is None or catalog is None or user_state is None:
        return None  # a transaction that has written keeps out: its generations count its own uncommitted writes
    return Generations(int(instance), int(catalog), int(user_state))


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


def count(statement: Any, generations: Generations | None, *, reads_user_state: bool) -> int:
    """The statement's count (a `SELECT count(*) ...`), from the cache when the generations still match."""

    def compute() -> int:
        return db.session.scalar(statement) or 0

    if generations is None:
        return compute()
    key = _key(statement, generations, reads_user_state)
    if key is None:
        return compute()
    return _kept(_entries, MAX_ENTRIES, key, compute)


def page(key: Any, generations: Generations | None, *, reads_user_state: bool, compute: Callable[[], Any]) -> Any:
    """What `compute` returns (a page's rows, immutable), from the cache when the generations still match. `key`
    (hashable) must name everything the result is made from: statement, viewer, view."""
    if generations is None:
        return compute()
    user_state = generations.user_state if reads_user_state else None
    return _kept(_pages, MAX_PAGES, (generations.instance, generations.catalog, user_state, key), compute)


def _kept(entries: OrderedDict[Any, tuple[float, Any]], limit: int, key: Any, compute: Callable[[], Any]) -> Any:
    now = time.monotonic()
    with _lock:
        found = entries.get(key)
        if found is not None and found[0] > now:
            entries.move_to_end(key)
            return found[1]
    value = compute()
    with _lock:
        entries[key] = (now + TTL_SECONDS, value)
        entries.move_to_end(key)
        while len(entries) > limit:
            entries.popitem(last=False)
    return value


def clear() -> None:
    """Forget every kept count and page (tests)."""
    with _lock:
        _entries.clear()
        _pages.clear()
        _shapes.clear()
