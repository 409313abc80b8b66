"""Webhooks: DTR's ``/api/v0/webhooks`` and their delivery from the registry's event outbox."""
