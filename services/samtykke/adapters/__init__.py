"""Shared I/O adapters: settings, Avro codec and schema registry, Kafka, PostgreSQL, metrics."""
