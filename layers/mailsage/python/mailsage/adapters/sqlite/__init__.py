"""Embedded adapters: the store, queue and scheduler ports on one SQLite file in WAL mode.

db.py opens the file (schema, migrations, a connection per thread, "not now" errors as
ServiceUnavailable); one module per storage port (accounts, templates, jobs, chunks, messages,
suppressions, idempotency, webhooks, campaigns, retention, pacing) over it, each a class on base.py;
records.py decodes rows into domain values; store.py composes them into SqliteStore."""
