"""Small dialect helpers shared by the aggregates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect


def insert_ignore(
    dialect: Dialect,
    table: Table,
    rows: list[dict[str, Any]] | None = None,
    **values: Any,
) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` on either engine (a race loser gets no row, no error).

    One row from keyword `values`, several from `rows`, or none (then `from_select`).
    """
    flavour = postgresql if dialect.name == "postgresql" else sqlite
    stmt = flavour.insert(table)
    if rows:
        stmt = stmt.values(rows)
    elif values:
        stmt = stmt.values(**values)
    return stmt.on_conflict_do_nothing()
