"""Jobs: a Postgres-backed queue run by a worker in every dtr process, schedules (crons), and the
jobs that keep the registry tidy (online garbage collection, upload cleanup, tag pruning, usage).
"""
