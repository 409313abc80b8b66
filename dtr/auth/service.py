"""``AuthService``: authentication (passwords, access tokens, LDAP), repository facts for the
access decision, token narrowing, site settings, and the first admin.

One instance per process (``dtr.keys.AUTH``); ``None`` there when ``auth.enabled`` is false.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import sys
import time
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Table, func, literal, select, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.audit import service as audit
from dtr.auth.access import ANONYMOUS, Action, Level, Principal, RepoFacts, decide, explain, token_actions
from dtr.auth.ldapsettings import LDAPSettings
from dtr.auth.models import (
    AccessToken,
    Account,
    NamespaceTeamAccess,
    OrgMember,
    RepositoryMeta,
    RepositoryTeamAccess,
    Setting,
    TeamMember,
)
from dtr.auth.passwords import hash_password_async, random_password, verify_password_async
from dtr.auth.throttle import LoginThrottle, duration
from dtr.auth.tokens import InvalidToken, TokenSigner
from dtr.config import AuthConfig, Config
from dtr.ops.metrics import LOCKOUTS, LOGIN_FAILURES
from dtr.registry.models import Repository
from dtr.registry.names import is_name
from dtr.trust.names import gun_repository

log = logging.getLogger("dtr.auth")

accounts = cast(Table, Account.__table__)
org_members = cast(Table, OrgMember.__table__)
team_members = cast(Table, TeamMember.__table__)
repo_meta = cast(Table, RepositoryMeta.__table__)
repo_team_access = cast(Table, RepositoryTeamAccess.__table__)
ns_team_access = cast(Table, NamespaceTeamAccess.__table__)
access_tokens = cast(Table, AccessToken.__table__)
settings_table = cast(Table, Setting.__table__)
repositories = cast(Table, Repository.__table__)

#: Personal access tokens start with this, so they are told apart from passwords without a lookup.
TOKEN_PREFIX = "dtrpat_"
#: Site settings and their defaults (DTR's names).
DEFAULT_SETTINGS: dict[str, Any] = {"createRepositoryOnPush": False}
#: Site settings are re-read at most this often (seconds): a change made on one replica takes
#: effect on every other within this (on the replica that made it, at once).
_SETTINGS_TTL = 1.0
_BAD = "invalid username or password"
_CREDENTIAL_CACHE_TTL = 60.0


class AuthError(Exception):
    """Authentication failed: ``status`` 401 (bad credentials) or 429 (slowed down)."""

    def __init__(self, status: int, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_access_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def default_service(cfg: Config) -> str:
    return cfg.auth.service or urlsplit(cfg.external_url).netloc


def _token_valid(row: Any, user_id: int) -> bool:
    """Whether access token ``row`` is ``user_id``'s, active and not expired."""
    return bool(row.user_id == user_id and row.is_active
                and (row.expires_at is None or row.expires_at > dt.datetime.now(dt.UTC)))


def _principal(row: Any, token_id: int | None = None) -> Principal:
    """The principal of account ``row``; ``token_id``: logged in with that personal access token."""
    return Principal(name=row.name, id=row.id, is_admin=row.is_admin, is_active=row.is_active,
                     by_token=token_id is not None, token_id=token_id or 0)


class AuthService:
    def __init__(self, cfg: Config, engine: AsyncEngine, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        """``key`` signs and checks tokens: the cluster's (``dtr.auth.setup``); None: a new key of
        this instance only (for use cases called without the token endpoint)."""
        self.cfg: AuthConfig = cfg.auth
        self.engine = engine
        self.realm = f"{cfg.external_url}/auth/token"
        self.service = default_service(cfg)
        external = urlsplit(cfg.external_url)
        #: The names this server goes by: a scope name starting with one is a GUN (see scope_repository).
        self.hosts = {self.service, external.netloc, external.hostname or ""} - {""}
        if key is None:
            key = ec.generate_private_key(ec.SECP256R1())
        self.signer = TokenSigner(key, self.cfg.issuer, self.service, self.cfg.token_ttl,
                                  self.cfg.refresh_token_ttl)
        a = self.cfg
        self.throttle = LoginThrottle(engine, a.failed_login_threshold, a.failed_login_address_threshold,
                                      a.failed_login_window, a.lockout_base, a.lockout_max)
        self._settings: tuple[float, dict[str, Any]] | None = None
        #: sha256(user NUL password) -> (principal, credential generation, expiry): API calls with
        #: Basic auth skip argon2 (a password change or deactivation anywhere ends the entry).
        self._credentials: dict[bytes, tuple[Principal, int, float]] = {}
        #: The directory settings in effect (saved ones over ``auth.ldap``), re-read every second.
        self.ldap = LDAPSettings(cfg, engine)
        self._directory: Any = None

    # -- the first admin ------------------------------------------------------------------

    async def bootstrap_admin(self, password: str | None) -> None:
        """Create the first site admin unless a site admin exists, with ``password`` (checked against
        the policy: ``dtr.auth.setup.first_admin_password``) or a random one printed once."""
        async with self.engine.connect() as conn:
            if (await conn.execute(select(accounts.c.id).where(accounts.c.is_admin).limit(1))).first():
                return
        printed = False
        if not password:
            password, printed = random_password(), True
        values = {"name": self.cfg.admin_username, "is_org": False, "full_name": "Administrator", "email": "",
                  "password_hash": await hash_password_async(password), "is_admin": True, "is_active": True,
                  "is_imported": False, "credential_gen": 0}
        async with self.engine.begin() as conn:
            res = await conn.execute(pg_insert(accounts).values(**values).on_conflict_do_nothing()
                                     .returning(accounts.c.id))
            created = res.scalar() is not None
        if created:
            log.info("created the first site admin", extra={"username": self.cfg.admin_username})
            if printed:
                sys.stdout.write(f"\n  dtr: the first site admin is {self.cfg.admin_username!r} with password "
                                 f"{password}\n  (shown once; change it with `dtr users reset-password`)\n\n")
                sys.stdout.flush()

    # -- authentication -------------------------------------------------------------------

    def forget_credentials(self) -> None:
        """Drop cached Basic credentials (after any account or token change)."""
        self._credentials.clear()

    async def principal(self, name: str) -> Principal | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.name == name,
                                                             accounts.c.is_org.is_(False)))).first()
        return _principal(row) if row is not None else None

    async def authenticate(self, username: str, secret: str, address: str, *, cache: bool = False) -> Principal:
        """The active user for a password or personal access token; AuthError otherwise.

        Failures are audited and slow down later attempts for the user and the address.
        """
        cache = cache and not secret.startswith(TOKEN_PREFIX)  # token checks are cheap and revocable
        ckey = hashlib.sha256(f"{username}\0{secret}".encode()).digest() if cache else b""
        if cache:
            hit = self._credentials.get(ckey)
            if hit is not None and hit[2] > time.monotonic() and await self._current(hit[0], hit[1]):
                return hit[0]
        wait, failed_before = await self.throttle.retry_after(username, address)
        if wait > 0:
            LOCKOUTS.inc()
            raise AuthError(429, f"too many failed logins; try again in {duration(int(wait) + 1)}", wait)
        principal, reason = await self._check(username, secret)
        if principal is None:
            if reason == _BAD:  # a right password for an inactive account is no guess
                await self.throttle.failure(username, address)
            audit.record_soon(self.engine, "login_failed", username[:255], address, "account", username[:255],
                              {"reason": reason})
            LOGIN_FAILURES.inc()
            raise AuthError(401, reason)
        if failed_before:
            await self.throttle.success(username)
        if cache:
            if len(self._credentials) > 4096:
                self._credentials.clear()
            self._credentials[ckey] = (principal, await self.generation(principal),
                                       time.monotonic() + _CREDENTIAL_CACHE_TTL)
        return principal

    async def _current(self, principal: Principal, generation: int) -> bool:
        """Whether a cached login still holds: same credential generation, still active."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(accounts.c.credential_gen, accounts.c.is_active, accounts.c.is_admin)
                                      .where(accounts.c.id == principal.id))).first()
        return row is not None and row.credential_gen == generation and row.is_active and \
            row.is_admin == principal.is_admin

    async def _check(self, username: str, secret: str) -> tuple[Principal | None, str]:
        bad = _BAD
        if not username or not secret or len(username) > 255:
            return None, bad
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.name == username))).first()
        if row is not None and row.is_org:
            return None, bad
        token_id = None
        if secret.startswith(TOKEN_PREFIX):
            token_id = await self._check_token(row.id, secret) if row is not None else None
            ok = token_id is not None
        elif (directory := await self.directory()) is not None and (row is None or row.is_imported):
            found = await directory.login(username, secret)
            ok = found is not None
            if found is not None:
                row = await self._upsert_directory_user(found)
        else:
            ok = await verify_password_async(row.password_hash if row is not None else None, secret)
        if not ok or row is None:
            return None, bad
        if not row.is_active:
            return None, f"the account {username} is inactive"
        return _principal(row, token_id), ""

    async def directory(self) -> Any:
        """The ``dtr.auth.ldap.Directory`` of the settings in effect (None: no directory)."""
        cfg = (await self.ldap.get()).config
        if cfg is None:
            return None
        if self._directory is None or self._directory.cfg != cfg:
            from dtr.auth.ldap import Directory

            self._directory = Directory(cfg)
        return self._directory

    async def _check_token(self, user_id: int, token: str) -> int | None:
        """The id of ``user_id``'s access token ``token`` if it is valid (its use noted), else None."""
        digest = hash_token(token)
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(access_tokens).where(access_tokens.c.token_hash == digest))).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest) or not _token_valid(row, user_id):
                return None
            await conn.execute(update(access_tokens).where(access_tokens.c.id == row.id)
                               .values(last_used_at=func.now()))
        return int(row.id)

    async def _upsert_directory_user(self, found: Any) -> Any:
        values = {"full_name": found.full_name[:255], "email": found.email[:255], "ldap_dn": found.dn,
                  "is_imported": True}
        async with self.engine.begin() as conn:
            stmt = pg_insert(accounts).values(name=found.username, is_org=False, password_hash=None,
                                              is_admin=False, is_active=True, credential_gen=0, **values)
            stmt = stmt.on_conflict_do_update(index_elements=[accounts.c.name], set_=values,
                                              where=accounts.c.is_imported.is_(True))
            await conn.execute(stmt)
            return (await conn.execute(select(accounts).where(accounts.c.name == found.username))).first()

    async def refresh(self, token: str) -> Principal:
        """The user of a refresh token still valid (same credential generation, active)."""
        try:
            subject, gen, token_id = self.signer.verify_refresh(token)
        except InvalidToken as e:
            raise AuthError(401, f"invalid refresh token: {e}") from None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.name == subject))).first()
            pat = None if token_id is None or row is None else \
                (await conn.execute(select(access_tokens).where(access_tokens.c.id == token_id))).first()
        if row is None or row.is_org or not row.is_active or row.credential_gen != gen or \
                (token_id is not None and (pat is None or not _token_valid(pat, row.id))):
            raise AuthError(401, "the refresh token is no longer valid; log in again")
        return _principal(row, token_id)

    async def generation(self, principal: Principal) -> int:
        async with self.engine.connect() as conn:
            gen = (await conn.execute(select(accounts.c.credential_gen).where(accounts.c.id == principal.id))).scalar()
        return int(gen or 0)

    # -- settings -------------------------------------------------------------------------

    async def settings(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._settings is not None and self._settings[0] > now:
            return self._settings[1]
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(settings_table))).all()
        values = {**DEFAULT_SETTINGS, **{r.key: r.value for r in rows if r.key in DEFAULT_SETTINGS}}
        self._settings = (now + _SETTINGS_TTL, values)
        return values

    async def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        async with self.engine.begin() as conn:
            for key, value in changes.items():
                stmt = pg_insert(settings_table).values(key=key, value=value)
                await conn.execute(stmt.on_conflict_do_update(index_elements=[settings_table.c.key],
                                                              set_={"value": value}))
        self._settings = None
        return await self.settings()

    # -- the facts the access decision needs ----------------------------------------------

    async def repo_facts(self, principal: Principal, name: str, conn: AsyncConnection | None = None) -> RepoFacts:
        if conn is None:
            async with self.engine.connect() as c:
                return await self.repo_facts(principal, name, c)
        namespace, sep, _ = name.partition("/")
        create_on_push = bool((await self.settings())["createRepositoryOnPush"])
        ns_row = None
        if sep:
            ns_row = (await conn.execute(select(accounts.c.id, accounts.c.is_org)
                                         .where(accounts.c.name == namespace))).first()
        kind: Literal["user", "org", "none"] = "none" if ns_row is None else ("org" if ns_row.is_org else "user")
        repo_row = (await conn.execute(
            select(repositories.c.id, repo_meta.c.visibility)
            .select_from(repositories.outerjoin(repo_meta, repo_meta.c.repository_id == repositories.c.id))
            .where(repositories.c.name == name))).first()
        org_owner = False
        team_level = ns_level = Level.NONE
        if kind == "org" and ns_row is not None and principal.authenticated and not principal.is_admin:
            owner = (await conn.execute(select(org_members.c.is_admin).where(
                org_members.c.org_id == ns_row.id, org_members.c.user_id == principal.id))).scalar()
            org_owner = bool(owner)
            q_ns = (select(ns_team_access.c.access_level, literal(True).label("ns"))
                    .join(team_members, team_members.c.team_id == ns_team_access.c.team_id)
                    .where(ns_team_access.c.namespace_id == ns_row.id, team_members.c.user_id == principal.id))
            queries = [q_ns]
            if repo_row is not None:
                queries.append(
                    select(repo_team_access.c.access_level, literal(False).label("ns"))
                    .join(team_members, team_members.c.team_id == repo_team_access.c.team_id)
                    .where(repo_team_access.c.repository_id == repo_row.id,
                           team_members.c.user_id == principal.id))
            for level_name, is_ns in (await conn.execute(union_all(*queries))).all():
                level = Level.parse(level_name)
                team_level = max(team_level, level)
                if is_ns:
                    ns_level = max(ns_level, level)
        return RepoFacts(name=name, namespace=namespace if sep else "", namespace_kind=kind,
                         exists=repo_row is not None,
                         public=repo_row is not None and repo_row.visibility == "public",
                         org_owner=org_owner, team_level=team_level, namespace_team_level=ns_level,
                         create_on_push=create_on_push)

    async def decide(self, principal: Principal, name: str, action: Action) -> tuple[bool, RepoFacts]:
        facts = await self.repo_facts(principal, name)
        return decide(principal, facts, action), facts

    async def scope_repository(self, conn: AsyncConnection, name: str) -> tuple[str, bool]:
        """The repository a ``repository`` scope's name is about and whether the name is a GUN
        (``dtr.trust``: the registry host, then the repository, e.g. ``127.0.0.1:5000/ns/app``).
        A name that is also a valid repository name (``dtr.example.com/ns/app``) is a GUN when
        its first component is this server's host or names no account."""
        repository = gun_repository(name)
        if repository is None:
            return name, False
        if not is_name(name):
            return repository, True
        host = name.partition("/")[0]
        if host in self.hosts:
            return repository, True
        account = (await conn.execute(select(accounts.c.id).where(accounts.c.name == host))).first()
        return (name, False) if account is not None else (repository, True)

    async def scope_decision(self, principal: Principal, name: str, action: str,
                             gun: bool = False) -> tuple[bool, str]:
        """Whether ``principal`` may ``action`` on the repository ``name`` (a GUN with ``gun``),
        and if not, why (for a 403)."""
        repository = gun_repository(name) if gun else name
        if repository is None:
            return False, f"{name} is not a registry host followed by a repository name"
        facts = await self.repo_facts(principal, repository)
        if action in token_actions(principal, facts, gun):
            return True, ""
        wanted = Action.ADMIN if action == "*" else Action(action)
        return False, explain(principal, facts, wanted)

    async def grant(self, principal: Principal, scopes: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
        """The spec's ``access`` claim: each requested scope narrowed to what ``principal`` may do.
        A GUN's scope is granted under the full GUN (the name the trust routes check)."""
        out: list[dict[str, Any]] = []
        async with self.engine.connect() as conn:
            for type_, name, wanted in scopes:
                granted: list[str] = []
                if type_ == "registry" and name == "catalog":
                    if principal.authenticated and principal.is_admin:
                        granted = [a for a in wanted if a == "*"]
                elif type_ == "repository":
                    repository, gun = await self.scope_repository(conn, name)
                    can = token_actions(principal, await self.repo_facts(principal, repository, conn), gun)
                    granted = [a for a in wanted if a in can]
                if granted or type_ == "repository":
                    out.append({"type": type_, "name": name, "actions": sorted(set(granted))})
        return out

    async def lookup_principal(self, subject: str) -> Principal:
        """The principal a token's subject names ("" or unknown: anonymous)."""
        if not subject:
            return ANONYMOUS
        found = await self.principal(subject)
        return found if found is not None else ANONYMOUS


def client_address(request: Any) -> str:
    return str(request.remote or "")
