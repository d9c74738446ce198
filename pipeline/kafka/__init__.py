"""Thin Kafka plumbing shared by the workers: client settings, topic names, DLQ, headers."""
