"""GitHub's page-number pagination: `per_page` (default 30, max 100), `page`, `Link` header."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from starlette.datastructures import URL, QueryParams

T = TypeVar("T")

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


def _int_param(raw: str | None, default: int) -> int:
    """GitHub ignores unparsable numbers rather than failing the request."""
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def paginate(url: URL, items: Sequence[T]) -> tuple[list[T], dict[str, str]]:
    """The requested page of `items` and, when there is more than one page, its `Link` header."""
    query = QueryParams(url.query)
    per_page = _int_param(query.get("per_page"), DEFAULT_PER_PAGE)
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    page = max(_int_param(query.get("page"), 1), 1)
    last = max(math.ceil(len(items) / per_page), 1)
    chunk = list(items[(page - 1) * per_page : page * per_page])
    if last == 1:
        return chunk, {}

    def link(number: int, rel: str) -> str:
        return f'<{url.include_query_params(page=number)}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    if page < last:
        links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
    if page > 1:
        links.append(link(1, "first"))
    return chunk, {"link": ", ".join(links)}
