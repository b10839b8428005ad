"""Many rows in or updated with few statements, straight through the database driver.

Imports write tens of thousands of rows per minute; SQLAlchemy's per-row parameter handling costs more than the
database's own work at that rate. These helpers keep what matters of it — each column's type conversion (the
type's bind processor: dates, JSON, our UTC timestamps) and the column defaults — and hand the driver flat
parameter lists: on SQLite multi-row INSERTs (one statement per page of rows: the full-text trigger then flushes
once per statement, not once per row), on PostgreSQL a pipelined executemany; UPDATEs as one executemany. Used
inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table

from collectz.extensions import db

# Bound parameters per statement: SQLite's limit (32766 since 3.32) and PostgreSQL's (65535).
_MAX_PARAMS = {"sqlite": 32766, "postgresql": 65535}
MAX_PAGE = 256  # rows per INSERT statement


def _placeholder(dialect: Any) -> str:
    return "?" if dialect.paramstyle == "qmark" else "%s"


def _processors(table: Table, names: Sequence[str], dialect: Any) -> list[Callable[[Any], Any] | None]:
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]


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


def insert_rows(table: Table, rows: Sequence[dict[str, Any]], *, on_conflict_do_nothing: Sequence[str] = ()) -> None:
    """INSERT every row (dicts with the same keys). `on_conflict_do_nothing`: the unique columns whose conflict
    skips a row (ON CONFLICT (...) DO NOTHING, on SQLite and PostgreSQL alike)."""
    if not rows:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    defaults = _defaults(table, names)
    columns = names + list(defaults)
    processors = _processors(table, columns, dialect)
    fixed = list(defaults.values())
    quote = dialect.identifier_preparer.quote
    mark = _placeholder(dialect)
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES "
    tail = ""
    if on_conflict_do_nothing:
        tail = f" ON CONFLICT ({', '.join(quote(c) for c in on_conflict_do_nothing)}) DO NOTHING"
    one = "(" + ", ".join([mark] * len(columns)) + ")"
    if dialect.name == "postgresql":
        # psycopg sends an executemany as one pipeline, and converts a short statement's placeholders once (a long
        # multi-row statement's it would parse again for every call, in Python).
        connection.exec_driver_sql(head + one + tail, [
            tuple(value if proc is None else proc(value)
                  for proc, value in zip(processors, [*(row[name] for name in names), *fixed], strict=True))
            for row in rows])
        return
    for start, size in _pages(len(rows), _MAX_PARAMS.get(dialect.name, 999) // len(columns)):
        chunk = rows[start:start + size]
        flat: list[Any] = []
        for row in chunk:
            values = [row[name] for name in names] + fixed
            flat.extend(value if proc is None else proc(value)
                        for proc, value in zip(processors, values, strict=True))
        connection.exec_driver_sql(head + ", ".join([one] * len(chunk)) + tail, tuple(flat))


def update_rows(table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE each row by its `key` column (dicts with the same keys, `key` among them): one executemany."""
    if not rows:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    names = [name for name in rows[0] if name != key]
    processors = _processors(table, [*names, key], dialect)
    quote = dialect.identifier_preparer.quote
    mark = _placeholder(dialect)
    sql = (f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(n)} = {mark}' for n in names)} "
           f"WHERE {quote(key)} = {mark}")
    params = [tuple(value if proc is None else proc(value)
                    for proc, value in zip(processors, [*(row[n] for n in names), row[key]], strict=True))
              for row in rows]
    connection.exec_driver_sql(sql, params)
