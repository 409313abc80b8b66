"""Images tests: in process (``app_client``, authentication off) and against the auth tests' dtr
(auth on) and their world of users."""

from tests.auth.conftest import auth_dtr, client, world  # noqa: F401
