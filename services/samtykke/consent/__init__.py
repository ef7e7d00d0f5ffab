"""Consent service: the system of record (HTTP API, ledger, outbox + relay, lifecycle sweeper)."""
