"""Listing an account's messages: gsi1's per-chunk entries, newest first, filtered by job, status and
recipient before any message item is read."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailsage.adapters.aws.dynamodb.keys import (
    CONTENT_SK,
    MEMBERS_PREFIX,
    Item,
    head_key,
    index_time,
    job_pk,
    key_of,
    make_key,
    member_ids,
    members_key,
    messages_index,
    state_key,
)
from mailsage.adapters.aws.dynamodb.reads import Reads
from mailsage.adapters.aws.dynamodb.records import json_text
from mailsage.adapters.aws.table import GSI1_NAME, GSI1_SORT_KEY, PARTITION_KEY, SORT_KEY
from mailsage.domain.models import Message, MessageQuery


@dataclass(slots=True, frozen=True)
class _Row:
    """A message of a listing, before its message item is read: where it is and its sort key."""

    created_at: float
    message_id: str
    state: Item


@dataclass(slots=True)
class _Listing:
    """One listing's filters, and the jobs' items it has read so far (heads, contents and chunk
    states, by key)."""

    account_id: str
    query: MessageQuery
    anchor: tuple[float, str] | None
    descending: bool
    visible_head: Callable[[Item | None, str | None], Item | None]
    jobs: dict[tuple[str, str], Item] = field(default_factory=dict)
    matching_job: dict[str, bool] = field(default_factory=dict)

    def job_matches(self, job_id: str) -> bool:
        """Whether the job is visible and its content matches the job-level filters (sender, tags)."""
        if job_id not in self.matching_job:
            query = self.query
            head = self.visible_head(self.jobs.get(key_of(head_key(job_id))), self.account_id)
            content = self.jobs.get(key_of(make_key(job_pk(job_id), CONTENT_SK)))
            ok = head is not None and content is not None
            if ok and (query.sender or query.tags):
                data = json_text(content["content"])  # type: ignore[index]
                ok = (not query.sender or query.sender.lower() in (data.get("from") or "").lower()) and all(
                    tag in (data.get("tags") or []) for tag in query.tags
                )
            self.matching_job[job_id] = ok
        return self.matching_job[job_id]

    def rows(self, entry: Item) -> Iterator[_Row]:
        """The entry's messages that pass the filters the index entry and chunk state can decide."""
        query, anchor, descending = self.query, self.anchor, self.descending
        low, high = query.from_time, query.to_time
        recipient = query.recipient.lower() if query.recipient else None
        job_id = entry[PARTITION_KEY].removeprefix("JOB#")
        if not self.job_matches(job_id):
            return
        head = self.jobs[key_of(head_key(job_id))]
        created_at = float(head["created_at"])
        if (low is not None and created_at < low) or (high is not None and created_at > high):
            return
        chunk = int(entry[SORT_KEY].removeprefix(MEMBERS_PREFIX))
        state = self.jobs.get(key_of(state_key(job_id, chunk)))
        ids, emails = member_ids(entry), entry.get("emails")
        if state is None or len(state["statuses"]) != len(ids):
            return
        for pos, message_id in enumerate(ids):
            if query.message_id is not None and message_id != query.message_id:
                continue
            if anchor is not None and (
                (created_at, message_id) >= anchor if descending else (created_at, message_id) <= anchor
            ):
                continue
            if query.statuses and state["statuses"][pos] not in query.statuses:
                continue
            if recipient is not None and emails is not None and emails[pos] != recipient:
                continue
            yield _Row(created_at, message_id, state)

    def ordered(self, groups: list[list[Item]]) -> list[_Row]:
        """The groups' rows, each group's ordered by (created_at, id) like the embedded store."""
        ordered: list[_Row] = []
        for group in groups:
            ordered += sorted(
                (row for entry in group for row in self.rows(entry)),
                key=lambda row: (row.created_at, row.message_id),
                reverse=self.descending,
            )
        return ordered


class MessageListing(Reads):
    """MessageStore.list_messages on the table."""

    def list_messages(self, account_id: str, query: MessageQuery) -> tuple[list[Message], bool]:
        """Reads gsi1's per-chunk entries of the account (`{created_at}#{job}#{chunk}`) newest first
        (oldest first for `before`), a group of equal creation times at a time, and orders each
        group's messages by (created_at, id) like the embedded store. Job-level filters (sender,
        tags) use the job's content, status filters its chunk states, recipient filters the
        entries' lower-cased addresses; only the messages still matching then have their message
        items read (subject filter), and only the page's messages their logs and data."""
        limit = max(query.limit, 0)
        wanted = limit + 1
        anchor, descending = self._anchor(account_id, query)
        listing = _Listing(account_id, query, anchor, descending, self._visible_head)
        found: list[tuple[Item, Item, float]] = []
        for groups in self._entry_groups(self._listing_entries(account_id, query, anchor, descending)):
            self._read_jobs([entry for group in groups for entry in group], listing.jobs)
            self._collect(account_id, query, listing.ordered(groups), found, wanted)
            if len(found) >= wanted:
                break
        messages = self._assemble(found[:limit])
        if not descending:
            messages.reverse()
        return messages, len(found) > limit

    def _listing_entries(
        self, account_id: str, query: MessageQuery, anchor: tuple[float, str] | None, descending: bool
    ) -> Iterable[Item]:
        """The index entries to read: the message's own for a message id filter, else the
        account's within the time filters, narrowed by the cursor."""
        if query.message_id is not None:
            return self._entries_of_message(account_id, query.message_id)
        key_low, key_high = query.from_time, query.to_time
        if anchor is not None and descending:
            key_high = anchor[0] if key_high is None else min(key_high, anchor[0])
        elif anchor is not None:
            key_low = anchor[0] if key_low is None else max(key_low, anchor[0])
        return self._index_entries(account_id, key_low, key_high, descending)

    def _collect(
        self,
        account_id: str,
        query: MessageQuery,
        ordered: list[_Row],
        found: list[tuple[Item, Item, float]],
        wanted: int,
    ) -> None:
        """Appends to `found` the rows whose message items match, until `wanted` are found; reads
        the message items of as many rows as may still be needed (more with a subject filter)."""
        recipient = query.recipient.lower() if query.recipient else None
        subject = query.subject.lower() if query.subject else None
        start = 0
        while start < len(ordered) and len(found) < wanted:
            step = self.BATCH_GET_KEYS if subject else min(self.BATCH_GET_KEYS, wanted - len(found))
            part, start = ordered[start : start + step], start + step
            items = self._message_items([row.message_id for row in part])
            for row in part:
                item = items.get(row.message_id)
                if item is None or item["account_id"] != account_id:
                    continue
                if recipient is not None and item["email"].lower() != recipient:
                    continue
                if subject is not None and subject not in item.get("subject", "").lower():
                    continue
                found.append((item, row.state, row.created_at))
                if len(found) >= wanted:
                    return

    def _anchor(self, account_id: str, query: MessageQuery) -> tuple[tuple[float, str] | None, bool]:
        """The cursor's (created_at, id) and the direction: newest first, or oldest first to page
        back with `before`. An unknown cursor (or another account's) is ignored, as embedded."""
        cursor = query.after or query.before
        if not cursor:
            return None, True
        message = self._locate(cursor)
        if message is None or message["account_id"] != account_id:
            return None, True
        head = self._visible_head(self._get(head_key(message["job_id"])), account_id)
        if head is None:
            return None, True
        return (float(head["created_at"]), cursor), bool(query.after)

    def _index_entries(
        self, account_id: str, low: float | None, high: float | None, descending: bool
    ) -> Iterator[Item]:
        """The account's chunk entries in gsi1 with created_at in [low, high] (a little wider:
        the sort key rounds to microseconds; callers compare the exact times)."""
        condition = "#g1pk = :pk"
        values: dict[str, Any] = {":pk": messages_index(account_id)}
        low_key = None if low is None else index_time(low - 1e-5)
        high_key = None if high is None else index_time(high + 1e-5) + "~"  # after every "#..."
        if low_key is not None and high_key is not None:
            if low_key > high_key:
                return iter(())
            condition += " AND #g1sk BETWEEN :low AND :high"
            values |= {":low": low_key, ":high": high_key}
        elif low_key is not None:
            condition += " AND #g1sk >= :low"
            values[":low"] = low_key
        elif high_key is not None:
            condition += " AND #g1sk <= :high"
            values[":high"] = high_key
        return self._query(
            condition, values, index=GSI1_NAME, forward=not descending, page_size=self.LISTING_PAGE
        )

    def _entries_of_message(self, account_id: str, message_id: str) -> list[Item]:
        """The one chunk entry that holds the message (a message id filter needs no index)."""
        message = self._locate(message_id)
        if message is None or message["account_id"] != account_id:
            return []
        entry = self._get(members_key(message["job_id"], int(message["chunk"])))
        return [entry] if entry is not None else []

    def _entry_groups(self, entries: Iterable[Item]) -> Iterator[list[list[Item]]]:
        """Runs of entries with the same creation time (their messages are ordered by id), a few
        runs at a time so that their jobs can be read together."""
        batch: list[list[Item]] = []
        size = 0
        for _, run in itertools.groupby(
            entries, key=lambda entry: entry.get(GSI1_SORT_KEY, "").split("#", 1)[0]
        ):
            group = list(run)
            batch.append(group)
            size += len(group)
            if size >= self.LISTING_PAGE:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _read_jobs(self, entries: Sequence[Item], into: dict[tuple[str, str], Item]) -> None:
        """The heads, contents and chunk states the entries refer to and `into` lacks."""
        keys: list[Item] = []
        for entry in entries:
            job_id = entry[PARTITION_KEY].removeprefix("JOB#")
            chunk = int(entry[SORT_KEY].removeprefix(MEMBERS_PREFIX))
            for key in (head_key(job_id), make_key(job_pk(job_id), CONTENT_SK), state_key(job_id, chunk)):
                if key_of(key) not in into:
                    keys.append(key)
        if keys:
            into |= self._batch_get(keys, consistent=True)
