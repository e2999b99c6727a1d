"""The web process: ingest API, contacts API, outbox, health. Views are thin."""
