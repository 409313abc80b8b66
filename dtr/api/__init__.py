"""The admin JSON API under ``/api/v0``: one sub-app, each domain registers its routes on it."""
