"""The storage ports on SQLite, composed. Each aggregate lives in its own module (accounts,
templates, jobs, chunks, messages, suppressions, idempotency, webhooks, campaigns, retention,
pacing) over the one database file; row decoding is in records.py. Every state change is a conditional UPDATE
(`... WHERE status = ?`), the embedded twin of DynamoDB's condition expressions."""

from __future__ import annotations

from mailsage.adapters.sqlite.accounts import SqliteAccounts
from mailsage.adapters.sqlite.campaigns import SqliteCampaigns
from mailsage.adapters.sqlite.chunks import SqliteChunks
from mailsage.adapters.sqlite.idempotency import SqliteIdempotency
from mailsage.adapters.sqlite.jobs import SqliteJobs
from mailsage.adapters.sqlite.messages import SqliteMessages
from mailsage.adapters.sqlite.pacing import SqlitePacing
from mailsage.adapters.sqlite.retention import SqliteRetention
from mailsage.adapters.sqlite.suppressions import SqliteSuppressions
from mailsage.adapters.sqlite.templates import SqliteTemplates
from mailsage.adapters.sqlite.webhooks import SqliteWebhookDeliveries, SqliteWebhooks


class SqliteStore(
    SqliteAccounts,
    SqliteTemplates,
    SqliteJobs,
    SqliteChunks,
    SqliteMessages,
    SqliteSuppressions,
    SqliteIdempotency,
    SqliteWebhooks,
    SqliteWebhookDeliveries,
    SqliteCampaigns,
    SqliteRetention,
    SqlitePacing,
):
    """Every storage port (ports.Store) on one SQLite database: `SqliteStore(db)`, optionally with
    a clock (`clock=`) that stamps every write."""
