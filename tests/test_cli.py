"""The ``dtr`` command as an operator meets it: version, help, usage errors, exit statuses,
passwords asked at a terminal, and ``dtr users`` with the API's rules."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import select
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dtr.cli import build_parser
from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.servers import ROOT, DtrProcess, free_port


def dtr(*args: str, stdin: str | None = None, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``dtr`` command (``python -m dtr``), no ``DTR_`` variables from the test's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")}
    extra = ["--config", str(config)] if config is not None else []
    return subprocess.run([sys.executable, "-m", "dtr", *args, *extra], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120, stdin=None if stdin is not None else subprocess.DEVNULL)


def test_version_is_the_package_version() -> None:
    r = dtr("--version")
    assert r.returncode == 0 and r.stdout == f"dtr {importlib.metadata.version('dtr')}\n"


def _parsers(parser: argparse.ArgumentParser, path: str = "dtr") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_argument_and_command_has_help() -> None:
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if not action.help:
                missing.append(f"{path}: {action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{path} {name}" for name in action.choices if name not in helped]
    assert not missing, f"no help text: {missing}"


@pytest.mark.parametrize("group,choices", [
    ((), "{serve,db,ca,storage,config,users,ldap,jobs,gc,fsck,scan,vulndb,replicas,install-service,backup,"
         "restore}"),
    (("jobs",), "{list,run,cancel,logs}"),
    (("vulndb",), "{update,status,export,import}"),
    (("replicas",), "{list}"),
    (("users",), "{create,reset-password,list,delete,set-admin}"),
    (("db",), "{upgrade}"),
])
def test_a_group_without_its_command_names_the_choices(group: tuple[str, ...], choices: str) -> None:
    r = dtr(*group)
    assert r.returncode == 2 and r.stdout == ""
    assert f"the following arguments are required: {choices}" in r.stderr


# -- exit statuses: 2 usage and configuration, 1 failures, one line, no traceback ---------------


def _write(tmp_path: Path, text: str, name: str = "dtr.yaml") -> Path:
    """A config file: ``text`` after a data_dir under ``tmp_path`` (nothing lands in the default one)."""
    path = tmp_path / name
    path.write_text(f"data_dir: {tmp_path / 'data'}\n{text}")
    return path


def test_failures_are_one_line_with_the_right_status(tmp_path: Path) -> None:
    cases = [
        (("users", "list"), tmp_path / "missing.yaml", 2, "dtr: configuration error: cannot read config file"),
        (("jobs", "list"), _write(tmp_path, "http: [unclosed\n", "a.yaml"), 2, "not valid YAML"),
        (("users", "delete", "x"), _write(tmp_path, "jobs: {poll_interval: soon}\n", "b.yaml"), 2,
         "jobs.poll_interval: got 'soon', expected a duration"),
        (("users", "list"), _write(tmp_path, f"database: {{url: 'postgresql://u:p@127.0.0.1:{free_port()}/x'}}\n",
                                   "c.yaml"), 1, "dtr: cannot prepare the database: "),
        (("jobs", "run", "noop", "seconds"), _write(tmp_path, "", "d.yaml"), 2, "dtr: parameters are KEY=VALUE"),
    ]
    for args, config, status, message in cases:
        r = dtr(*args, config=config)
        assert (r.returncode, r.stdout) == (status, ""), (args, r.stderr)
        assert r.stderr.startswith(message) or message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_password_is_not_read_from_a_pipe_without_the_flag(tmp_path: Path) -> None:
    r = dtr("users", "create", "someone", config=_write(tmp_path, ""))
    assert r.returncode == 2
    assert r.stderr == ("dtr: standard input is not a terminal to ask the password at: pipe the password in "
                        "with --password-stdin\n")


# -- with a server's database -----------------------------------------------------------------------


@pytest.fixture
def server(dtr_factory: Callable[..., DtrProcess]) -> DtrProcess:
    return dtr_factory(auth_config())


def _read_until(fd: int, wanted: bytes, within: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + within
    while wanted not in seen:
        assert time.monotonic() < deadline, f"no {wanted!r} in {seen!r}"
        if select.select([fd], [], [], 1)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                break
            seen += chunk
    return seen


def test_a_password_is_asked_at_the_terminal_without_echo(server: DtrProcess) -> None:
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")}
    proc = subprocess.Popen([sys.executable, "-m", "dtr", "users", "create", "ttyuser", "--config",
                             str(server.config_path)], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            start_new_session=True)
    os.close(slave)
    try:
        shown = _read_until(master, b"Password for ttyuser: ")
        assert not termios.tcgetattr(master)[3] & termios.ECHO  # echo is off while it asks
        os.write(master, f"{PASSWORD}\n".encode())
        shown += _read_until(master, b"Repeat it: ")
        os.write(master, f"{PASSWORD}\n".encode())
        shown += _read_until(master, b"created user ttyuser")
        assert proc.wait(60) == 0, shown
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert PASSWORD.encode() not in shown
    assert Client(server.url).api("GET", "/accounts/me", ("ttyuser", PASSWORD)).status == 200


def test_users_list_delete_and_set_admin(server: DtrProcess) -> None:
    c = Client(server.url)
    config = server.config_path
    assert dtr("users", "create", "bob", "--password-stdin", stdin=f"{PASSWORD}\n", config=config).returncode == 0
    c.api("POST", "/accounts", ADMIN_AUTH, {"name": "acme", "isOrg": True}, expect=201)
    r = dtr("users", "list", config=config)
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert names == ["admin", "bob"]  # users by default, by name
    r = dtr("users", "list", "--filter", "all", "--json", config=config)
    assert {a["name"]: a["isOrg"] for a in __import__("json").loads(r.stdout)} == {
        "admin": False, "acme": True, "bob": False}

    r = dtr("users", "set-admin", "bob", config=config)
    assert r.returncode == 0 and "bob is a site admin" in r.stdout, r.stderr
    assert c.api("GET", "/accounts/bob", ADMIN_AUTH).json()["isAdmin"] is True
    r = dtr("users", "set-admin", "bob", "--off", config=config)
    assert r.returncode == 0 and "bob is no longer a site admin" in r.stdout
    assert c.api("GET", "/accounts/bob", ADMIN_AUTH).json()["isAdmin"] is False
    r = dtr("users", "set-admin", "acme", config=config)
    assert r.returncode == 1 and r.stderr == "dtr: isAdmin applies to users only\n"

    r = dtr("users", "delete", "bob", config=config)
    assert r.returncode == 0 and "deleted bob" in r.stdout
    assert c.api("GET", "/accounts/bob", ADMIN_AUTH).status == 404
    for args in (("delete", "bob"), ("set-admin", "nobody"), ("reset-password", "nobody", "--password-stdin")):
        r = dtr("users", *args, stdin=f"{PASSWORD}\n", config=config)
        assert r.returncode == 1 and r.stderr.startswith("dtr: no account named"), (args, r.stderr)
    events = c.api("GET", "/events?size=50", ADMIN_AUTH).json()["events"]
    assert {"account_delete", "account_update"} <= {e["type"] for e in events}
