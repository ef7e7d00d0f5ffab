"""Faust projectors: one consumer group, PostgreSQL schema and role per domain."""
