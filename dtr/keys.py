"""Typed application keys: the one place where shared resources are named."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from dtr.auth.service import AuthService
    from dtr.cluster.service import Membership
    from dtr.config import Config
    from dtr.db.engine import Database
    from dtr.db.listen import Notifications
    from dtr.jobs.runner import JobWorker
    from dtr.pullcache.cache import PullThrough
    from dtr.registry.events import Actor
    from dtr.registry.service import RegistryService
    from dtr.signatures.policy import PolicyCache
    from dtr.storage.wrapper import StorageWrapper
    from dtr.trust.store import TrustStore
    from dtr.ui.sessions import SessionStore

CONFIG: web.AppKey[Config] = web.AppKey("config")
DATABASE: web.AppKey[Database] = web.AppKey("database")
#: The process's one listening connection (caches and the job worker subscribe to it).
NOTIFICATIONS: web.AppKey[Notifications] = web.AppKey("notifications")
STORAGE: web.AppKey[StorageWrapper] = web.AppKey("storage")
REGISTRY: web.AppKey[RegistryService] = web.AppKey("registry")
#: ``None`` when ``auth.enabled`` is false (everyone may do everything).
AUTH: web.AppKey[AuthService | None] = web.AppKey("auth")
#: The built-in Notary's store (``None`` when ``trust.notary`` is false: no trust routes).
TRUST: web.AppKey[TrustStore | None] = web.AppKey("trust")
#: The job worker of this process (``None`` when ``jobs.worker`` is false).
JOB_WORKER: web.AppKey[JobWorker | None] = web.AppKey("job_worker")
#: This process's entry in the cluster's list of replicas.
REPLICA: web.AppKey[Membership] = web.AppKey("replica")
#: The scopes under the "signed images only" policy, as this process knows them.
SIGNING_POLICY: web.AppKey[PolicyCache] = web.AppKey("signing_policy")
#: The pull-through cache (the registry's miss handler, ``dtr.pullcache``).
PULL_THROUGH: web.AppKey[PullThrough] = web.AppKey("pull_through")
#: The web UI's browser sessions (absent when ``ui.enabled`` is false).
UI_SESSIONS: web.AppKey[SessionStore] = web.AppKey("ui_sessions")

#: Per request: its id (``X-Request-Id``) and the repository it is about, for the access line.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
REPOSITORY: web.RequestKey[str] = web.RequestKey("repository", str)
#: Per request: who it says it is (a token's subject, a Basic user), for the access line; set by
#: the auth checks before they decide, so refused requests name it too.
USER: web.RequestKey[str] = web.RequestKey("user", str)
#: Per /v2 request: the route table entry's metrics area (read by the request metrics).
AREA: web.RequestKey[str] = web.RequestKey("area", str)
#: Per /v2 request that passed the token check: who acts (name "" for anonymous or auth off).
ACTOR: web.RequestKey[Actor] = web.RequestKey("actor")
#: Per cross-repository mount request (set by the token check): whether the requester may pull
#: from a repository; None when auth is off (any repository may serve). Absent: no mount.
MAY_PULL: web.RequestKey[Callable[[str], Awaitable[bool]] | None] = web.RequestKey("may_pull")
