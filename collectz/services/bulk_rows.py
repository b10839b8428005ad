"""Many rows in or updated with few statements, straight through the database driver.

Imports write tens of thousands of rows per minute; SQLAlchemy's per-row parameter handling costs more than the
database's own work at that rate. These helpers keep what matters of it — each column's type conversion (the type's bind
processor: dates, JSON, our UTC timestamps) and the column defaults — and hand the driver flat parameter lists (leaving
out the columns that are empty in every row and NULL by default). SQLite: a single-row INSERT run for every row
(executemany: within a transaction, a statement that may write several rows and then fail, such as a multi-row INSERT
into a table with a foreign key or a unique index, or any UPDATE, makes SQLite journal every page it changes, for the
statement's undo, and a single-row INSERT needs no such journal); the rows of a table whose trigger feeds a full-text
index go, a page per statement, into a temporary copy of the table, then into the table with one INSERT ... SELECT
(the index writes out its pending terms at the end of each statement: once per call, not once per page or per row);
UPDATEs ... FROM a page of rows' VALUES. PostgreSQL: COPY (ON CONFLICT inserts and UPDATEs go through a scratch table
filled by COPY, then one statement).
Used inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, Table, any_, func, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError

from collectz.extensions import db
from collectz.services.indexing import SEARCH_FED_TABLES

# Bound parameters per statement: SQLite's limit (32766 since 3.32) and PostgreSQL's (65535).
_MAX_PARAMS = {"sqlite": 32766, "postgresql": 65535}
MAX_PAGE = 256  # rows per INSERT statement
_SCRATCH_SERIAL = 0  # PostgreSQL scratch tables get a new name each: several may live in one transaction
# Work a caller starts while the database stores its rows; returns, if anything, what to call once they are stored.
Meanwhile = Callable[[], Callable[[], None] | None]


def any_of(column: Any, values: Any) -> ColumnElement[bool]:
    """`column IN (values)` for a lookup of a whole batch. PostgreSQL gets one array parameter (`= ANY(:array)`):
    a statement of a thousand parameters costs the driver (it rewrites every placeholder) and the planner more
    than the lookup itself, and is never the same statement twice. SQLite keeps IN (a batch is far below its
    parameter limit)."""
    values = list(values)
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(column.type)))
    return column.in_(values)


def unnest_table(name: str, columns: Sequence[tuple[str, Any]], rows: Sequence[tuple[Any, ...]]) -> FromClause:
    """PostgreSQL: a batch's keys as a table to join against, unnest() of one array per column (columns: (name,
    SQL type) pairs): one parameter per column, whatever the batch's size."""
    arrays = [literal([row[i] for row in rows], ARRAY(type_)) for i, (_name, type_) in enumerate(columns)]
    return func.unnest(*arrays).table_valued(*(c for c, _t in columns)).render_derived(name=name)


def each_key(keys: FromClause, query: Select[Any]) -> Select[Any]:
    """PostgreSQL: `query`, whose WHERE refers to the columns of `keys` (an `unnest_table`), run once per key: a LATERAL
    subquery that OFFSET 0 keeps apart, so each key is one probe of the index `query` is written for. Joined as a plain
    table, a thousand keys make PostgreSQL scan or hash the whole table (its cost model prices a probe as a read from
    disk), and a lookup then takes longer the larger the catalog is."""
    found = query.offset(0).lateral()
    return select(*found.c).select_from(keys).join(found, true())


def matching(query: Select[Any], column: Any, values: Sequence[Any] | set[Any]) -> Select[Any]:
    """`query` restricted to the rows whose `column` is one of `values` (a batch's keys): SQLite `IN`; PostgreSQL one
    probe of `column`'s index per value (`each_key`), however large the table."""
    if db.session.get_bind().dialect.name != "postgresql":
        return query.where(column.in_(list(values)))
    keys = unnest_table("wanted", ((column.key, column.type),), [(value,) for value in values])
    return each_key(keys, query.where(column == keys.c[column.key]))


def _placeholder(dialect: Any) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _one_row(dialect: Any, width: int) -> str:
    """A VALUES row of `width` placeholders: "(?, ?, ...)"."""
    return "(" + ", ".join([_placeholder(dialect)] * width) + ")"


def _processors(table: Table, names: Sequence[str], dialect: Any) -> list[Callable[[Any], Any] | None]:
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]


@cache
def _plain_nullable(table: Table) -> frozenset[str]:
    """The table's nullable columns with no default of any kind (a NULL when left out of an INSERT)."""
    return frozenset(column.name for column in table.columns if column.nullable and not column.primary_key
                     and column.default is None and column.server_default is None)


def _defaults(table: Table, given: Sequence[str]) -> dict[str, Any]:
    """Values of the Python-side column defaults for columns the rows do not give (one value per call)."""
    values: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in given or default is None or getattr(default, "is_sequence", False):
            continue
        if default.is_callable:
            values[column.name] = default.arg(None)  # type: ignore[attr-defined]
        elif default.is_scalar:
            values[column.name] = default.arg  # type: ignore[attr-defined]
    return values


def _pages(count: int, most: int) -> list[tuple[int, int]]:
    """(start, size) pages whose sizes are powers of two (at most MAX_PAGE rows, within the parameter limit).

    Few distinct statement shapes: the driver keeps each prepared statement in its cache (with its last values), so
    a new row count per call would fill it with large one-off statements and hold on to their memory.
    """
    size = 1
    while size * 2 <= min(MAX_PAGE, max(1, most)):
        size *= 2
    pages: list[tuple[int, int]] = []
    start = 0
    while start < count:
        while size > count - start:
            size //= 2
        pages.append((start, size))
        start += size
    return pages


def insert_rows(table: Table, rows: Sequence[dict[str, Any]], *, on_conflict_do_nothing: Sequence[str] = (),
                meanwhile: Meanwhile | None = None) -> None:
    """INSERT every row (dicts with the same keys). `on_conflict_do_nothing`: the unique columns whose conflict
    skips a row (ON CONFLICT (...) DO NOTHING, on SQLite and PostgreSQL alike). `meanwhile`: SQLite, a table whose
    rows are gathered (see below) and more than a page of them only; see insert_stream."""
    if not rows:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    # A column that is None in every row and whose table default is NULL is left out: the database stores the same
    # NULL, and an import's items leave most of their columns empty (fewer values to convert, bind and copy).
    plain = _plain_nullable(table)
    names = [name for name in rows[0] if name not in plain or any(row[name] is not None for row in rows)]
    names = names or list(rows[0])
    columns, processors, fixed = _columns(table, names, dialect)
    quote = dialect.identifier_preparer.quote
    listed = ", ".join(quote(c) for c in columns)
    tail = ""
    if on_conflict_do_nothing:
        tail = f" ON CONFLICT ({', '.join(quote(c) for c in on_conflict_do_nothing)}) DO NOTHING"
    if dialect.name == "postgresql":
        if not on_conflict_do_nothing:
            _copy(connection, table.name, columns, _values(processors, names, fixed, rows))
            return
        # ON CONFLICT needs an INSERT: the rows go by COPY into a scratch table, then one INSERT ... SELECT.
        scratch = _scratch(connection, table, columns, _values(processors, names, fixed, rows))
        connection.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({listed}) SELECT {listed} FROM {scratch}"
                                   + tail)
        return
    values = list(_values(processors, names, fixed, rows))
    if table.name not in SEARCH_FED_TABLES:  # no statement journal (see the module docstring)
        one = _one_row(dialect, len(columns))
        connection.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({listed}) VALUES {one}{tail}", values)
        return
    gathered = len(_row_pages(dialect, len(rows), len(columns))) > 1 and not on_conflict_do_nothing
    target = quote(table.name)
    if gathered:
        # One INSERT ... SELECT from a temporary copy of the call's columns, so the full-text index takes the rows in
        # one statement: FTS5 writes out its pending terms at the end of every statement (each is a savepoint), and
        # with a statement per page, writing and merging its many small segments took more than half the time of a
        # 100,000-row import's item inserts. The copy has no index or trigger; made for the call (so it always has
        # the table's current columns) and dropped after it, within the caller's transaction.
        target = f"temp.{quote('bulk_' + table.name)}"
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {target}")
        connection.exec_driver_sql(f"CREATE TABLE {target} AS SELECT {listed} FROM main.{quote(table.name)} WHERE 0")
    _in_pages(connection, f"INSERT INTO {target} ({listed}) VALUES ", tail, values)
    if gathered:
        # One long statement, which SQLite runs without Python's lock: `meanwhile`'s thread has the interpreter.
        done = meanwhile() if meanwhile is not None else None
        connection.exec_driver_sql(f"INSERT INTO main.{quote(table.name)} ({listed}) SELECT {listed} FROM {target}")
        if done is not None:
            done()
        connection.exec_driver_sql(f"DROP TABLE {target}")


def insert_stream(table: Table, rows: Iterable[dict[str, Any]],
                  meanwhile: Meanwhile | None = None) -> None:
    """INSERT rows made one at a time (dicts with the same keys; no column is left out). PostgreSQL: COPY takes each
    row as soon as it is made, so the server writes the first rows while the caller still makes the rest (an
    import's item rows cost the client about as much time as they cost the server). SQLite: insert_rows.

    `meanwhile`: called while the database stores the rows, for work the caller starts on a thread of its own.
    PostgreSQL: once COPY has sent the last row (the server may still be writing them, and goes on with the
    caller's next statements). SQLite: just before the one statement that moves the gathered rows into the table
    (not called for a page of rows or fewer); what it returns, if anything, is called once that statement is done
    (SQLite's many short statements that follow would hand Python's lock back and forth with the thread)."""
    connection = db.session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        insert_rows(table, list(rows), meanwhile=meanwhile)
        return
    stream = iter(rows)
    first = next(stream, None)
    if first is None:
        return
    names = list(first)
    columns, processors, fixed = _columns(table, names, dialect)
    _copy(connection, table.name, columns, _values(processors, names, fixed, chain([first], stream)))
    if meanwhile is not None:
        meanwhile()


def _columns(table: Table, names: list[str], dialect: Any) -> tuple[list[str], list[Callable[[Any], Any] | None],
                                                                    list[Any]]:
    """The columns an INSERT of rows with `names` lists (those, then the ones a Python-side default fills), their
    bind processors, and the defaults' values."""
    defaults = _defaults(table, names)
    columns = names + list(defaults)
    return columns, _processors(table, columns, dialect), list(defaults.values())


def _row_pages(dialect: Any, count: int, width: int) -> list[tuple[int, int]]:
    """`_pages` for `count` rows of `width` values each, within the dialect's parameter limit."""
    return _pages(count, _MAX_PARAMS.get(dialect.name, 999) // width)


def _in_pages(connection: Any, head: str, tail: str, values: list[tuple[Any, ...]]) -> None:
    """SQLite: `head` + a page of the values' rows (a VALUES list) + `tail`, one statement per page."""
    one = _one_row(connection.dialect, len(values[0]))
    for start, size in _row_pages(connection.dialect, len(values), len(values[0])):
        connection.exec_driver_sql(head + ", ".join([one] * size) + tail,
                                   tuple(value for row in values[start:start + size] for value in row))


def _values(processors: list[Callable[[Any], Any] | None], names: Sequence[str], fixed: list[Any],
            rows: Iterable[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """Each row's values in column order (the given names, then the defaults), converted by the bind processors
    (only the columns that have one: most have none, and this runs for every value of an import). A row is
    converted when it is asked for: COPY sends each as soon as it is made."""
    pick = itemgetter(*names)
    given = len(names)
    converted = [(i, proc) for i, proc in enumerate(processors[:given]) if proc is not None]
    # The defaults are the same for every row: converted once.
    fixed = [value if proc is None else proc(value) for value, proc in zip(fixed, processors[given:], strict=True)]
    for row in rows:
        values = [pick(row)] if given == 1 else [*pick(row)]
        for i, proc in converted:
            values[i] = proc(values[i])
        values += fixed
        yield tuple(values)


def _copy(connection: Any, table_name: str, columns: Sequence[str], values: Iterable[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY ... FROM STDIN (text format) on the session's own connection, in its transaction. Several
    times cheaper per row than INSERTs: no statement per row to parse, plan and send. The rows go out as they come
    (the driver sends its buffer every few dozen kilobytes), and the server writes them meanwhile: the caller's work
    on the next rows overlaps the server's on the first ones."""
    quote = connection.dialect.identifier_preparer.quote
    sql = f"COPY {quote(table_name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    driver_error = connection.dialect.dbapi.Error
    try:
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
            for row in values:
                copy.write_row(row)
    except driver_error as exc:  # as SQLAlchemy raises it for its own statements (IntegrityError...)
        raise DBAPIError.instance(sql, None, exc, driver_error, dialect=connection.dialect) from exc


def _scratch(connection: Any, table: Table, columns: Sequence[str], values: Iterable[tuple[Any, ...]]) -> str:
    """PostgreSQL: a temporary table with the columns' types (no constraints, gone at commit) holding the values."""
    global _SCRATCH_SERIAL
    _SCRATCH_SERIAL += 1
    quote = connection.dialect.identifier_preparer.quote
    name = f"bulk_scratch_{_SCRATCH_SERIAL}"
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS SELECT "
                               f"{', '.join(quote(c) for c in columns)} FROM {quote(table.name)} WITH NO DATA")
    _copy(connection, name, columns, values)
    return name


def update_rows(table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE each row by its `key` column (dicts with the same keys, `key` among them, each key once): one UPDATE
    ... FROM the rows' values per page of rows (SQLite: a statement per row would journal the row's pages once per
    row, see the module docstring) or per call (PostgreSQL, from a scratch table)."""
    if not rows:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    names = [name for name in rows[0] if name != key]
    columns = [key, *names]
    processors = _processors(table, columns, dialect)
    quote = dialect.identifier_preparer.quote
    params = _values(processors, columns, [], rows)
    target = quote(table.name)
    if dialect.name == "postgresql":  # one UPDATE ... FROM a scratch table filled by COPY
        scratch = _scratch(connection, table, columns, params)
        connection.exec_driver_sql(
            f"UPDATE {target} AS t SET {', '.join(f'{quote(n)} = s.{quote(n)}' for n in names)} "
            f"FROM {scratch} AS s WHERE t.{quote(key)} = s.{quote(key)}")
        return
    # SQLite names a VALUES list's columns column1, column2...: the key is column1.
    head = (f"UPDATE {target} SET {', '.join(f'{quote(n)} = s.column{i}' for i, n in enumerate(names, start=2))} "
            "FROM (VALUES ")
    _in_pages(connection, head, f") AS s WHERE {target}.{quote(key)} = s.column1", list(params))


# A table's planner statistics are taken again once it has changed by this many rows, and by at least as many rows as
# it had when they were last taken (so a table is analysed about once each time it doubles: a few times per import).
ANALYZE_AFTER_ROWS = 1000
ANALYZE_LOCK_WAIT = "200ms"  # a table busy with someone else's VACUUM or ANALYZE is left for the next step


def refresh_statistics(tables: Sequence[Table], *, after_rows: int = ANALYZE_AFTER_ROWS,
                       connection: Any = None) -> list[str]:
    """PostgreSQL: ANALYZE each of `tables` that has grown or changed a lot since its statistics were taken; returns
    the names of the tables analysed (SQLite: none; its import queries do not depend on statistics).

    A large import changes tables faster than autovacuum re-analyses them (at most once a minute, and never when it is
    off): without statistics the planner takes a table of 100,000 items for a small one, and an import's lookups by
    `= ANY(array)` scan whole tables instead of their indexes, each chunk slower than the one before. Run between
    transactions (the caller commits around it): ANALYZE reads a sample and blocks no reader or writer. It waits at
    most ANALYZE_LOCK_WAIT for a table another session is vacuuming or analysing, then fails (the caller goes on).
    `connection`: one of the caller's own (default: the session's)."""
    connection = connection if connection is not None else db.session.connection()
    if connection.dialect.name != "postgresql":
        return []
    # A table whose statistics describe no rows (never analysed, or analysed empty: no pages) but that has rows now
    # is analysed whatever its counts say: a session's counts reach pg_stat_user_tables up to a second or more after
    # it commits, and without statistics of its values the planner takes any (library, …) index for one that finds
    # a key (a chunk's title lookups then walked the whole library once per key: seconds instead of milliseconds).
    changed = sorted(connection.exec_driver_sql(
        "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
        "WHERE s.schemaname = current_schema() AND s.relname = ANY(%s) "
        "AND (s.n_mod_since_analyze >= GREATEST(%s, c.reltuples) "
        "OR (c.relpages = 0 AND pg_relation_size(c.oid) > 0))",
        ([table.name for table in tables], after_rows)).scalars())
    if changed:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{ANALYZE_LOCK_WAIT}'")
    quote = connection.dialect.identifier_preparer.quote
    for name in changed:
        connection.exec_driver_sql(f"ANALYZE {quote(name)}")
    return changed
