"""The audit log: every domain records who did what through ``dtr.audit.service``."""
