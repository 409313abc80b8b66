"""The access decision as a table: every role x every action, on private, public and missing repositories."""

from __future__ import annotations

import dataclasses

import pytest

from dtr.auth.access import Action, Level, Principal, RepoFacts, decide, effective_level, explain

P, W, D, A, C = Action.PULL, Action.PUSH, Action.DELETE, Action.ADMIN, Action.CREATE
ALL = (P, W, D, A, C)

ANON = Principal()
ALICE = Principal("alice", 2)
ADMIN = Principal("root", 1, is_admin=True)
INACTIVE_ADMIN = Principal("old", 3, is_admin=True, is_active=False)

org_repo = RepoFacts(name="acme/app", namespace="acme", namespace_kind="org", exists=True)
user_repo = RepoFacts(name="alice/app", namespace="alice", namespace_kind="user", exists=True)
bob_repo = RepoFacts(name="bob/app", namespace="bob", namespace_kind="user", exists=True)
bare_repo = RepoFacts(name="app", namespace="", namespace_kind="none", exists=True)


def grant(r: RepoFacts, **kw: object) -> RepoFacts:
    return dataclasses.replace(r, **kw)  # type: ignore[arg-type]


# (principal, repository facts, the actions allowed); every action not listed is denied.
TABLE: list[tuple[str, Principal, RepoFacts, set[Action]]] = [
    ("anonymous, private", ANON, org_repo, set()),
    ("anonymous, public", ANON, grant(org_repo, public=True), {P}),
    ("user without grants, private org repo", ALICE, org_repo, set()),
    ("user without grants, public org repo", ALICE, grant(org_repo, public=True), {P}),
    ("team read-only", ALICE, grant(org_repo, team_level=Level.READ), {P}),
    ("team read-write", ALICE, grant(org_repo, team_level=Level.WRITE), {P, W, D}),
    ("team admin", ALICE, grant(org_repo, team_level=Level.ADMIN), {P, W, D, A}),
    ("team read-only on public repo", ALICE, grant(org_repo, public=True, team_level=Level.READ), {P}),
    ("organisation owner", ALICE, grant(org_repo, org_owner=True), {P, W, D, A}),
    ("own user namespace", ALICE, user_repo, {P, W, D, A}),
    ("someone else's private repo", ALICE, bob_repo, set()),
    ("someone else's public repo", ALICE, grant(bob_repo, public=True), {P}),
    ("team grant does not apply to a user namespace", ALICE, grant(bob_repo, team_level=Level.ADMIN), set()),
    ("site admin", ADMIN, org_repo, {P, W, D, A}),
    ("site admin, repo without namespace", ADMIN, bare_repo, {P, W, D, A}),
    ("user, repo without namespace", ALICE, bare_repo, set()),
    ("inactive admin is anonymous", INACTIVE_ADMIN, org_repo, set()),
    ("inactive admin, public repo", INACTIVE_ADMIN, grant(org_repo, public=True), {P}),
    # Missing repositories: create explicitly, or push with createRepositoryOnPush.
    ("missing, own namespace, createRepositoryOnPush off", ALICE, grant(user_repo, exists=False), {P, C}),
    ("missing, own namespace, createRepositoryOnPush on", ALICE,
     grant(user_repo, exists=False, create_on_push=True), {P, W, C}),
    ("missing, other's namespace, on", ALICE, grant(bob_repo, exists=False, create_on_push=True), set()),
    ("missing, org, no grant, on", ALICE, grant(org_repo, exists=False, create_on_push=True), set()),
    ("missing, org, namespace read-only, on", ALICE,
     grant(org_repo, exists=False, create_on_push=True, team_level=Level.READ, namespace_team_level=Level.READ),
     {P}),
    ("missing, org, namespace read-write, on", ALICE,
     grant(org_repo, exists=False, create_on_push=True, team_level=Level.WRITE, namespace_team_level=Level.WRITE),
     {P, W, C}),
    ("missing, org, namespace read-write, off", ALICE,
     grant(org_repo, exists=False, team_level=Level.WRITE, namespace_team_level=Level.WRITE), {P, C}),
    ("missing, org owner, on", ALICE, grant(org_repo, exists=False, create_on_push=True, org_owner=True),
     {P, W, C}),
    ("missing, admin, off", ADMIN, grant(org_repo, exists=False), {P, C}),
    ("missing, admin, on", ADMIN, grant(org_repo, exists=False, create_on_push=True), {P, W, C}),
    ("missing, anonymous, on", ANON, grant(org_repo, exists=False, create_on_push=True), set()),
]


@pytest.mark.parametrize(("case", "who", "repo", "allowed"), TABLE, ids=[t[0] for t in TABLE])
def test_decision_table(case: str, who: Principal, repo: RepoFacts, allowed: set[Action]) -> None:
    got = {a for a in ALL if decide(who, repo, a)}
    assert got == allowed, case


def test_effective_level_is_the_highest_grant() -> None:
    r = grant(org_repo, public=True, team_level=Level.WRITE)
    assert effective_level(ALICE, r) is Level.WRITE
    assert effective_level(ALICE, grant(r, org_owner=True)) is Level.ADMIN
    assert effective_level(ANON, r) is Level.READ


def test_level_names_are_dtrs() -> None:
    assert [Level.parse(n) for n in ("read-only", "read-write", "admin")] == [Level.READ, Level.WRITE, Level.ADMIN]
    with pytest.raises(ValueError, match="allowed: read-only, read-write, admin"):
        Level.parse("none")


def test_denials_are_explained() -> None:
    assert "createRepositoryOnPush is off" in explain(ALICE, grant(user_repo, exists=False), W)
    assert "may not create repositories in namespace bob" in explain(
        ALICE, grant(bob_repo, exists=False, create_on_push=True), W)
    assert explain(ALICE, grant(org_repo, team_level=Level.READ), W) == (
        "user alice has read-only access to acme/app; push needs read-write")
