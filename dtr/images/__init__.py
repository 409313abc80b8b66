"""Images as people browse them: a repository's tags with their digest, size and who pushed
them, for the JSON API (``views``) and the web UI alike (``service``)."""
