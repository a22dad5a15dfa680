"""List operations as iterators over every page: the next page is fetched when the previous one is used up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from mailsage_client._core import Call

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def v1_page(model: type[M]) -> Callable[[Any], Page[M]]:
    """v1 lists: `{"data": [...], "next_cursor"}`."""
    return lambda body: Page([model.model_validate(x) for x in body["data"]], body.get("next_cursor"))


def v2_page(model: type[M]) -> Callable[[Any], Page[M]]:
    """v2 lists: `{"data": [...], "pagination": {"has_more", "next_cursor"}}`."""

    def parse(body: Any) -> Page[M]:
        info = body.get("pagination") or {}
        cursor = info.get("next_cursor") if info.get("has_more") else None
        return Page([model.model_validate(x) for x in body["data"]], cursor)

    return parse


PageCall = Callable[[str | None], Call[Page[T]]]


class Paginator(Generic[T]):
    """Iterates over every item of a list operation, one request per page."""

    def __init__(self, run: Callable[[Call[Page[T]]], Page[T]], page_call: PageCall[T]) -> None:
        self._run = run
        self._page_call = page_call

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items

    def pages(self) -> Iterator[Page[T]]:
        """The pages themselves (to show progress, or stop after the first)."""
        after: str | None = None
        while True:
            page = self._run(self._page_call(after))
            yield page
            # An empty page ends it too: a cursor that does not move would loop forever.
            if not page.next_cursor or not page.items or page.next_cursor == after:
                return
            after = page.next_cursor


class AsyncPaginator(Generic[T]):
    """`async for` over every item of a list operation, one request per page."""

    def __init__(self, run: Callable[[Call[Page[T]]], Awaitable[Page[T]]], page_call: PageCall[T]) -> None:
        self._run = run
        self._page_call = page_call

    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def pages(self) -> AsyncIterator[Page[T]]:
        after: str | None = None
        while True:
            page = await self._run(self._page_call(after))
            yield page
            if not page.next_cursor or not page.items or page.next_cursor == after:
                return
            after = page.next_cursor
