"""No secret reaches the log, even when the statement writing it fails: the database refuses
(a trigger that raises, on a real Postgres) every write of a password hash or a token hash, the
API calls that write them fail, and the whole log (at debug level) holds no password, token,
Authorization header, argon2 hash or token hash."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
from collections.abc import Callable

import asyncpg
from sqlalchemy.engine import make_url

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD, PASSWORD, auth_config
from tests.servers import ROOT, DtrProcess

REFUSE = """
CREATE FUNCTION refuse_secret_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'this test refuses writes of secrets'; END $$;
CREATE TRIGGER refuse_password_hash BEFORE INSERT OR UPDATE OF password_hash ON accounts
    FOR EACH ROW EXECUTE FUNCTION refuse_secret_writes();
CREATE TRIGGER refuse_token_hash BEFORE INSERT OR UPDATE OF token_hash ON access_tokens
    FOR EACH ROW EXECUTE FUNCTION refuse_secret_writes();
"""
NEW_PASSWORD = "N3w-secret-pass"
CHANGED_PASSWORD = "Chang3d-secret-pass"
CLI_PASSWORD = "Cl1-secret-pass"


async def _execute(url: str, sql: str) -> None:
    u = make_url(url)
    conn = await asyncpg.connect(host=u.query["host"], port=u.port, user=u.username, database=u.database)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_failed_writes_of_secrets_log_no_secret(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory({**auth_config(), "log": {"level": "debug"}})
    c = Client(proc.url)
    c.api("POST", "/accounts", ADMIN_AUTH, {"name": "victim", "password": PASSWORD}, expect=201)
    pat = c.api("POST", "/api_tokens", ADMIN_AUTH, {"tokenLabel": "ok"}, expect=201).json()["token"]
    bearer = c.bearer(["repository:admin/x:pull"], ADMIN_AUTH)
    asyncio.run(_execute(proc.config["database"]["url"], REFUSE))

    # Every write of a password hash or a token hash now fails in the database.
    assert c.api("POST", "/accounts", ADMIN_AUTH, {"name": "newbie", "password": NEW_PASSWORD}).status == 500
    assert c.api("POST", "/accounts/victim/changePassword", ("victim", PASSWORD),
                 {"oldPassword": PASSWORD, "newPassword": CHANGED_PASSWORD}).status == 500
    assert c.api("POST", "/api_tokens", ADMIN_AUTH, {"tokenLabel": "refused"}).status == 500
    assert c.api("POST", "/api_tokens", (ADMIN, pat), {"tokenLabel": "refused"}).status == 403  # a token makes none
    cli = subprocess.run([sys.executable, "-m", "dtr", "users", "create", "clicreated", "--password-stdin",
                          "--config", str(proc.config_path)], input=CLI_PASSWORD + "\n",
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert cli.returncode != 0
    # Credentials in headers, at debug level.
    c.request("GET", "/v2/", bearer=bearer)
    c.api("GET", "/accounts/me", (ADMIN, pat), expect=200)
    c.token(["repository:admin/x:pull"], ADMIN_AUTH)
    proc.stop()

    log = proc.log_path.read_text() + cli.stdout + cli.stderr
    assert "this test refuses writes of secrets" in log  # the failures are logged, their parameters are not
    basic = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
    for secret in (ADMIN_PASSWORD, PASSWORD, NEW_PASSWORD, CHANGED_PASSWORD, CLI_PASSWORD, pat, bearer, basic,
                   "$argon2", "dtrpat_", "Authorization"):
        assert secret not in log, f"a secret ({secret[:8]}...) is in the log"
    assert not re.search(r"\b[0-9a-f]{64}\b", log), "a token hash is in the log"
