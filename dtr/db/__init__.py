"""Postgres: the engine, the embedded server, and migrations."""
