"""Small dialect helpers shared by the aggregates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine


def insert_ignore(engine: AsyncEngine, table: Table, **values: Any) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` on either engine (a race loser gets no row, no error)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).values(**values).on_conflict_do_nothing()
