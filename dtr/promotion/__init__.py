"""Promotion policies (DTR's promotionPolicies): see ``docs/promotion.md``."""
