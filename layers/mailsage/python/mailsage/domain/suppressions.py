"""Suppressions: addresses that must not receive mail from an account until a time, for every sender
domain of the account or for one.

Used by the v2 API (create, list, delete) and meant for automatic suppressions (bounces,
complaints: `suppress`, which extends rather than conflicts). Whether a recipient is suppressed is
decided by the store (`Store.suppressed`) at submit and again just before sending.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from dataclasses import dataclass

from mailsage.domain.addresses import normalize_email
from mailsage.domain.clock import Clock, system_clock
from mailsage.domain.models import Suppression
from mailsage.errors import Conflict, InvalidRecipient, NotFound, ValidationFailed
from mailsage.ports import SuppressionStore

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_SCAN_PAGE = 100  # items per store call when the service walks a listing


def check_email(value: str, field: str = "email") -> str:
    """The canonical address, or ValidationFailed naming the field."""
    try:
        return normalize_email(value.strip())
    except InvalidRecipient as exc:
        raise ValidationFailed(f"{field}: {exc.message}", {"field": field}) from exc


def check_domain(value: str | None, field: str = "domain") -> str | None:
    """A sender domain (lower-cased hostname), None for "every domain of the account"."""
    if value is None or not value.strip():
        return None
    domain = value.strip().lower().removesuffix(".")
    if not _HOSTNAME.fullmatch(domain):
        raise ValidationFailed(f"{field}: {value!r} is not a valid domain name", {"field": field})
    return domain


@dataclass(slots=True, frozen=True)
class SuppressionQuery:
    email: str | None = None
    domain: str | None = None
    from_time: float | None = None
    to_time: float | None = None
    limit: int = 100
    after: str | None = None  # a suppression id: the page after it
    before: str | None = None  # a suppression id: the page before it


@dataclass(slots=True, frozen=True)
class SuppressionPage:
    items: list[Suppression]
    has_more: bool  # more items after the last one of this page
    next_cursor: str | None
    previous_cursor: str | None


class SuppressionService:
    def __init__(self, store: SuppressionStore, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock

    def create(
        self,
        account_id: str,
        email: str,
        domain: str | None,
        reason: str | None,
        expires_at: float,
        now: float | None = None,
    ) -> Suppression:
        """A new suppression; Conflict if one for the same address and domain is active."""
        now = self.clock() if now is None else now
        email = check_email(email).lower()  # suppressions match addresses case-insensitively
        domain = check_domain(domain)
        if expires_at <= now:
            raise ValidationFailed("expires_at must be in the future", {"field": "expires_at"})
        if self._find(account_id, email, domain) is not None:
            where = f"for {domain}" if domain else "for every domain"
            raise Conflict(f"{email} is already suppressed {where}")
        suppression = Suppression(
            id=str(uuid.uuid4()),
            account_id=account_id,
            email=email,
            domain=domain,
            reason=(reason or "").strip() or "added through the API",
            created_at=now,
            expires_at=expires_at,
        )
        self.store.put_suppression(suppression)
        return suppression

    def suppress(
        self, account_id: str, email: str, domain: str | None, reason: str, expires_at: float
    ) -> Suppression:
        """Create or extend a suppression (automatic suppressions: bounces, complaints). An active
        one for the same address and domain keeps its id and creation time and the later expiry."""
        email = check_email(email).lower()
        domain = check_domain(domain)
        existing = self._find(account_id, email, domain)
        suppression = Suppression(
            id=existing.id if existing else str(uuid.uuid4()),
            account_id=account_id,
            email=email,
            domain=domain,
            reason=reason,
            created_at=existing.created_at if existing else self.clock(),
            expires_at=max(expires_at, existing.expires_at) if existing else expires_at,
        )
        self.store.put_suppression(suppression)
        return suppression

    def list_suppressions(self, account_id: str, query: SuppressionQuery) -> SuppressionPage:
        """Active suppressions, filtered, one page. `before` pages towards the start of the listing."""
        if query.after and query.before:
            raise ValidationFailed("give either after or before, not both", {"field": "after"})
        email = query.email.strip().lower() if query.email and query.email.strip() else None
        domain = check_domain(query.domain)
        if query.before:
            return self._page_before(account_id, email, domain, query)
        items, more = self.store.list_suppressions(
            account_id, email, domain, query.from_time, query.to_time, query.limit, query.after
        )
        return SuppressionPage(
            items=items,
            has_more=more,
            next_cursor=items[-1].id if more and items else None,
            previous_cursor=items[0].id if query.after and items else None,
        )

    def delete(self, account_id: str, email: str, domain: str | None) -> int:
        """Delete the address's suppressions (of one domain, or all); NotFound if there was none."""
        address = email.strip()
        if not address:
            raise ValidationFailed("email is required", {"field": "email"})
        domain = check_domain(domain)
        deleted = self.store.delete_suppressions(account_id, address.lower(), domain)
        if not deleted:
            where = f" for {domain}" if domain else ""
            raise NotFound(f"no suppression of {address}{where}")
        return deleted

    def delete_all(self, account_id: str, domain: str | None) -> int:
        """Delete every suppression of the account, or of one domain; how many there were."""
        domain = check_domain(domain)
        return self.store.delete_suppressions(account_id, None, domain)

    # -- helpers ---------------------------------------------------------------------------------
    def _find(self, account_id: str, email: str, domain: str | None) -> Suppression | None:
        """The active suppression of exactly this address and domain (None: the account-wide one)."""
        after: str | None = None
        while True:
            items, more = self.store.list_suppressions(
                account_id, email.lower(), domain, None, None, _SCAN_PAGE, after
            )
            for item in items:
                if item.email.lower() == email.lower() and (item.domain or None) == domain:
                    return item
            if not more or not items:
                return None
            after = items[-1].id

    def _page_before(
        self, account_id: str, email: str | None, domain: str | None, query: SuppressionQuery
    ) -> SuppressionPage:
        # The store pages forwards only: walk from the start to the cursor, keeping the last page.
        window: deque[Suppression] = deque(maxlen=query.limit + 1)
        after: str | None = None
        while True:
            items, more = self.store.list_suppressions(
                account_id, email, domain, query.from_time, query.to_time, _SCAN_PAGE, after
            )
            for item in items:
                if item.id == query.before:
                    page = list(window)
                    earlier = len(page) > query.limit
                    page = page[-query.limit :]
                    return SuppressionPage(
                        items=page,
                        has_more=bool(page),  # the cursor's item itself comes after this page
                        next_cursor=page[-1].id if page else None,
                        previous_cursor=page[0].id if earlier else None,
                    )
                window.append(item)
            if not more or not items:
                raise ValidationFailed(
                    "before: no such suppression in this listing (it may have expired or been deleted)",
                    {"field": "before"},
                )
            after = items[-1].id
