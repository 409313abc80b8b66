"""The log an operator reads: text and JSON layouts, access lines naming who and what (refusals
too), alembic's chatter kept below info, debug lines about dtr itself and never a secret."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from dtr.ops import logs
from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, ADMIN_PASSWORD, PASSWORD, auth_config
from tests.servers import DtrProcess

AGENT = 'docker/27.0 "go" test\\agent'


def _lines(proc: DtrProcess, want: Callable[[str], bool], within: float = 10) -> list[str]:
    """The log lines ``want`` accepts, waiting for the batched access lines to be written."""
    deadline = time.monotonic() + within
    while True:
        found = [line for line in proc.log_path.read_text().splitlines() if want(line)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _access(proc: DtrProcess, request_id: str) -> dict[str, Any]:
    found = _lines(proc, lambda line: line.startswith("{") and f'"request_id": "{request_id}"' in line)
    assert found, f"no access line for {request_id}:\n{proc.log_tail()}"
    return json.loads(found[0])  # type: ignore[no-any-return]


def test_access_lines_name_the_user_agent_and_repository_also_when_refused(
        dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory(auth_config())
    c = Client(proc.url)
    c.api("POST", "/accounts", ADMIN_AUTH, {"name": "logalice", "password": PASSWORD}, expect=201)

    def call(rid: str, path: str, **kw: Any) -> int:
        return c.request("GET", path, headers={"X-Request-Id": rid, "User-Agent": AGENT}, **kw).status

    assert call("anon-401", "/v2/admin/secret/tags/list") == 401
    token = c.bearer(["repository:admin/secret:pull"], ("logalice", PASSWORD))  # granted without the scope
    assert call("alice-denied", "/v2/admin/secret/tags/list", bearer=token) in (401, 403)
    assert call("bad-password", "/api/v0/accounts/me", auth=("logalice", "wr0ng-Password")) == 401
    assert call("admin-ok", "/api/v0/accounts/me", auth=ADMIN_AUTH) == 200
    admin_token = c.bearer(["repository:admin/secret:pull"], ADMIN_AUTH)
    assert call("admin-pull", "/v2/admin/secret/tags/list", bearer=admin_token) == 404

    expected = {"anon-401": (None, "admin/secret", 401), "alice-denied": ("logalice", "admin/secret", None),
                "bad-password": ("logalice", None, 401), "admin-ok": ("admin", None, 200),
                "admin-pull": ("admin", "admin/secret", 404)}
    for rid, (user, repo, status) in expected.items():
        entry = _access(proc, rid)
        assert (entry["user"], entry["repository"], entry["user_agent"]) == (user, repo, AGENT), entry
        assert status is None or entry["status"] == status
    log = proc.log_path.read_text()
    assert PASSWORD not in log and "wr0ng-Password" not in log and ADMIN_PASSWORD not in log


def test_text_format_is_one_layout_with_the_fields(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory({"log": {"format": "TEXT"}})
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    start = _lines(proc, lambda line: "dtr serving" in line)
    assert start, proc.log_tail()
    assert re.fullmatch(stamp + rf" INFO dtr: dtr serving addr={re.escape(proc.host)} .*", start[0]), start
    assert " tls=false" in start[0] and " auth=off" in start[0] and " storage=filesystem" in start[0]
    warning = _lines(proc, lambda line: "AUTHENTICATION IS OFF" in line)
    assert warning and re.match(stamp + " WARNING dtr.auth: ", warning[0]), warning
    Client(proc.url).request("GET", "/v2/text/repo/tags/list", headers={"X-Request-Id": "text-1",
                                                                         "User-Agent": AGENT})
    access = _lines(proc, lambda line: "request_id=text-1" in line)
    assert access, proc.log_tail()
    assert re.fullmatch(stamp + r" INFO dtr.access: request request_id=text-1 method=GET "
                        r"path=/v2/text/repo/tags/list repository=text/repo status=404 .*", access[0]), access
    assert f"user_agent={json.dumps(AGENT)}" in access[0]
    assert not any(line.startswith("{") for line in proc.log_path.read_text().splitlines())


def test_json_start_line_says_whether_auth_is_on(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory(auth_config())
    start = [json.loads(line) for line in _lines(proc, lambda line: '"msg": "dtr serving"' in line)]
    assert start and start[0]["auth"] == "on" and start[0]["addr"] == proc.host
    assert "AUTHENTICATION IS OFF" not in proc.log_path.read_text()


def test_alembic_chatter_stays_below_info_and_debug_tells_about_dtr(dtr_factory: Callable[..., DtrProcess]) -> None:
    info = dtr_factory(migrated=False)  # the migrations run at info level: none of alembic's lines
    assert "dtr serving" in info.log_path.read_text()
    assert "Context impl" not in info.log_path.read_text()
    assert "Will assume transactional DDL" not in info.log_path.read_text()
    secret = "Debug-adm1n-secret"
    debug = dtr_factory({"log": {"level": "debug"}, "auth": {"enabled": True, "admin_password": secret}})
    log = debug.log_path.read_text()
    messages = {json.loads(line)["msg"] for line in log.splitlines() if line.startswith("{")}
    for wanted in ("configuration (secrets left out)", "storage driver filesystem", "database migrations: done",
                   "registry event subscriber audit", "job worker started"):
        assert wanted in messages, (wanted, sorted(messages))
    config = next(json.loads(line) for line in log.splitlines() if "configuration (secrets left out)" in line)
    assert config["config"]["auth"]["admin_password"] == "***"
    assert config["config"]["http"]["addr"] == debug.host
    assert secret not in log


@pytest.mark.parametrize("value,shown", [("plain", "plain"), ("two words", '"two words"'), ("a=b", '"a=b"'),
                                         ('q"uote', '"q\\"uote"'), ("", '""'), (True, "true"), (3, "3"),
                                         ("ünï", '"\\u00fcn\\u00ef"'), ("line\nbreak", '"line\\nbreak"')])
def test_text_values_are_bare_or_quoted(value: Any, shown: str) -> None:
    record = logging.makeLogRecord({"name": "dtr", "levelname": "INFO", "msg": "m", "created": 0, "msecs": 5,
                                    "field": value})
    assert logs.TextFormatter().format(record) == f"1970-01-01T00:00:00.005Z INFO dtr: m field={shown}"
