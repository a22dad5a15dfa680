"""Embedded adapters: the store, queue and scheduler ports on one SQLite file in WAL mode."""
