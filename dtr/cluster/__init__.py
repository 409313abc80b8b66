"""The cluster: the replicas sharing one database (each registers itself and heartbeats), their
status for operators, and the secrets every replica shares (kept in the database, not data_dir).
"""
