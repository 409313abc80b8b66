"""The accounts use cases called directly, as a web UI would: a principal and a client address,
no HTTP, against a real (embedded) Postgres."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.accounts import orgs, usecases
from dtr.accounts import repositories as repos
from dtr.accounts import service as svc
from dtr.accounts.context import Caller
from dtr.api.errors import APIError, codes
from dtr.auth.access import Level, Principal
from dtr.auth.service import AuthService
from dtr.config import Config

PASSWORD = "Us3r-pass-word"


async def test_a_team_granted_access_through_the_use_cases(engine: AsyncEngine, tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path))
    auth, policy = AuthService(cfg, engine), cfg.auth.min_password_length
    async with engine.begin() as conn:
        root = await svc.create_account(conn, name="root", is_admin=True)
    admin = Caller(engine, Principal("root", root.id, is_admin=True), "192.0.2.1", auth, policy)

    alice = await usecases.create_account(admin, usecases.NewAccount("alice", password=PASSWORD))
    await usecases.create_account(admin, usecases.NewAccount("acme", is_org=True))
    await orgs.set_org_member(admin, "acme", "alice", is_admin=True)
    owner = Caller(engine, Principal("alice", alice.id), "192.0.2.2", auth, policy)
    _, team = await orgs.create_team(owner, "acme", "devs", "developers")
    await repos.create_repository(owner, "acme", "app", repos.RepoChanges(visibility="private"))
    repo, _, granted = await repos.set_repo_team_access(owner, "acme", "app", "devs", Level.WRITE)
    assert (repo.name, granted.id) == ("acme/app", team.id)

    _, _, grants = await repos.list_repo_team_access(owner, "acme", "app")
    assert [(g.name, g.access_level) for g in grants] == [("devs", "read-write")]

    # Someone who is not an owner may neither manage the organisation nor see the repository.
    bob = await usecases.create_account(admin, usecases.NewAccount("bob", password=PASSWORD))
    outsider = Caller(engine, Principal("bob", bob.id), "192.0.2.3", auth, policy)
    with pytest.raises(APIError) as e:
        await orgs.create_team(outsider, "acme", "mine")
    assert e.value.code is codes.FORBIDDEN
    with pytest.raises(APIError) as e:
        await repos.set_repo_team_access(outsider, "acme", "app", "devs", Level.ADMIN)
    assert e.value.code is codes.NO_SUCH_REPOSITORY
    rows, _ = await repos.list_repositories(outsider, "acme", None, 10)
    assert rows == []

    events = await usecases.list_events(admin, svc.EventFilter(), None, 100)
    seen = [(e.type, e.actor, e.client_addr, e.object_name) for e in reversed(events)]
    assert seen == [
        ("account_create", "root", "192.0.2.1", "alice"),
        ("account_create", "root", "192.0.2.1", "acme"),
        ("org_member_set", "root", "192.0.2.1", "acme"),
        ("team_create", "alice", "192.0.2.2", "acme/devs"),
        ("repo_create", "alice", "192.0.2.2", "acme/app"),
        ("repo_team_access_set", "alice", "192.0.2.2", "acme/app"),
        ("account_create", "root", "192.0.2.1", "bob"),
    ]
    assert events[1].detail == {"team": "devs", "accessLevel": "read-write"}
    with pytest.raises(APIError) as e:
        await usecases.list_events(owner, svc.EventFilter(), None, 100)
    assert e.value.code is codes.FORBIDDEN


async def test_two_admins_removing_each_other_at_once_leave_one(engine: AsyncEngine, tmp_path: Path) -> None:
    """Each use case alone would succeed; run together, the admins' row locks make the second see
    the first's outcome: one admin always remains."""
    cfg = Config(data_dir=str(tmp_path))
    auth, policy = AuthService(cfg, engine), cfg.auth.min_password_length
    for remove in (
        lambda c, other: usecases.update_account(c, other, usecases.AccountChanges(is_admin=False)),
        lambda c, other: usecases.update_account(c, other, usecases.AccountChanges(is_active=False)),
        lambda c, other: usecases.delete_account(c, other),
    ):
        async with engine.begin() as conn:
            await conn.execute(svc.accounts.delete())
            a = await svc.create_account(conn, name="alice", is_admin=True)
            b = await svc.create_account(conn, name="bob", is_admin=True)
        alice = Caller(engine, Principal("alice", a.id, is_admin=True), "192.0.2.1", auth, policy)
        bob = Caller(engine, Principal("bob", b.id, is_admin=True), "192.0.2.2", auth, policy)
        results = await asyncio.gather(remove(alice, "bob"), remove(bob, "alice"), return_exceptions=True)
        refused = [r for r in results if isinstance(r, APIError)]
        assert len(refused) == 1 and refused[0].code is codes.CONFLICT, results
        assert refused[0].message.endswith("is the last active site admin: make another user admin first")
        async with engine.connect() as conn:
            assert len(await svc.lock_active_admins(conn)) == 1


async def test_a_personal_access_token_principal_may_not_make_tokens(engine: AsyncEngine, tmp_path: Path) -> None:
    cfg = Config(data_dir=str(tmp_path))
    auth, policy = AuthService(cfg, engine), cfg.auth.min_password_length
    async with engine.begin() as conn:
        row = await svc.create_account(conn, name="carol")
    with pytest.raises(APIError) as e:
        await usecases.create_token(Caller(engine, Principal("carol", row.id, by_token=True), "", auth, policy),
                                    None, "ci", None)
    assert e.value.code is codes.FORBIDDEN
    _, token, _ = await usecases.create_token(Caller(engine, Principal("carol", row.id), "", auth, policy),
                                              None, "ci", None)
    assert token.label == "ci"
