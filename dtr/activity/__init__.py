"""The activity stream: the registry's event outbox (``dtr.registry.events``) read back through
/api/v0, across the registry (site admins) or for one repository (its readers)."""
