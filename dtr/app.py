"""``create_app(config)``: the aiohttp application, its resources opened in ``cleanup_ctx``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from dtr.accounts.ldapadmin import register_actions as register_ldap_actions
from dtr.accounts.views import register as register_accounts
from dtr.activity.views import register as register_activity
from dtr.api.app import create_api_app
from dtr.audit.service import record_registry_events
from dtr.auth.api import api_auth
from dtr.auth.middleware import registry_auth
from dtr.auth.setup import setup_auth
from dtr.cluster.secrets import token_signing_key
from dtr.cluster.service import replica_registered
from dtr.cluster.views import register as register_cluster
from dtr.config import Config, redacted
from dtr.db.engine import Database
from dtr.db.listen import Notifications
from dtr.images.views import register as register_images
from dtr.jobs.events import RegistryEvents, queue_pruning
from dtr.jobs.runner import jobs_running
from dtr.jobs.service import JobService
from dtr.jobs.views import register as register_jobs
from dtr.keys import CONFIG, DATABASE, NOTIFICATIONS, PULL_THROUGH, REGISTRY, SIGNING_POLICY, STORAGE, TRUST
from dtr.mirroring.jobs import push_on_push
from dtr.mirroring.jobs import register_actions as register_mirroring_actions
from dtr.mirroring.views import register as register_mirroring
from dtr.ops import views as ops
from dtr.ops.metrics import setup_metrics
from dtr.ops.proxies import proxy_middlewares
from dtr.ops.runtime import name_the_server
from dtr.ops.tasks import background
from dtr.promotion.jobs import register_actions as register_promotion_actions
from dtr.promotion.promote import promote_on_events
from dtr.promotion.views import register as register_promotion
from dtr.pullcache.cache import PullThrough
from dtr.pullcache.settings import ConfigCache
from dtr.pullcache.views import register as register_pull_through
from dtr.registry.cache import keep_coherent
from dtr.registry.events import Outbox
from dtr.registry.service import RegistryService
from dtr.registry.views import add_registry_routes
from dtr.scanning.jobs import register_actions as register_scan_actions
from dtr.scanning.service import scan_on_push
from dtr.scanning.views import register as register_scanning
from dtr.signatures.policy import PolicyCache, SignedOnlyGate
from dtr.signatures.policyviews import register as register_signing_policy
from dtr.signatures.verify import has_trusted_signature
from dtr.signatures.views import register as register_signatures
from dtr.storage.factory import create_driver
from dtr.trust.sealing import Sealer
from dtr.trust.store import TrustStore
from dtr.trust.views import trust_routes
from dtr.ui.app import setup_ui
from dtr.webhooks.delivery import queue_deliveries
from dtr.webhooks.delivery import register_actions as register_webhook_actions
from dtr.webhooks.views import register as register_webhooks

log = logging.getLogger("dtr")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    log.debug("configuration (secrets left out)", extra={"config": redacted(cfg)})
    storage = create_driver(cfg.storage_config)
    log.debug("storage driver %s", cfg.storage_config.driver, extra={
        "max_concurrency": cfg.storage_config.max_concurrency, "redirect": cfg.storage_config.redirect})
    db = await Database.open(cfg)
    app[STORAGE] = storage
    app[DATABASE] = db
    app[TRUST] = trust = TrustStore(db.engine, cfg) if cfg.trust.notary else None
    app[REGISTRY] = service = RegistryService(db.engine, storage, renew_links_after=cfg.jobs.gc_grace_period / 2)
    app[SIGNING_POLICY] = policies = PolicyCache(db.engine)
    service.pull_gates.append(SignedOnlyGate(
        db.engine, policies, lambda repository, digest: has_trusted_signature(db.engine, storage, repository, digest)))
    app[PULL_THROUGH] = service.misses = PullThrough(
        service, ConfigCache(db.engine, lambda: Sealer.from_config(cfg)), cfg.registry.max_manifest_size)
    # The registry's events: changes through the outbox, to their subscribers after commit;
    # tag pulls batched in memory (they change nothing the registry owns).
    outbox = Outbox(db.engine)
    outbox.subscribe("audit", record_registry_events)
    jobs = JobService(db.engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout)
    outbox.subscribe("prune-on-push", queue_pruning(jobs))
    outbox.subscribe("push-mirror-on-push", push_on_push(jobs))
    outbox.subscribe("promote", promote_on_events(jobs))
    if cfg.scanning.enabled:
        outbox.subscribe("scan-on-push", scan_on_push(jobs, cfg.scanning.scan_on_push))
    outbox.subscribe("webhooks", queue_deliveries(jobs, storage))
    pulls = RegistryEvents(db.engine)
    service.tag_pulled.append(pulls.pulled)
    # One listening connection: the caches subscribe here, the job worker when it starts; it
    # runs once they have (last in the chain below).
    app[NOTIFICATIONS] = notifications = Notifications(db.url)
    keep_coherent(notifications, [service.cache, *([trust.files.cache] if trust is not None else [])])
    try:
        async with outbox.running(), pulls.running(), jobs_running(app), app[PULL_THROUGH].running(), \
                background(notifications.run()):
            yield
    finally:
        await db.close()
        await storage.close()


async def _v2_redirect(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/v2/")


def create_app(config: Config) -> web.Application:
    name_the_server()
    register_scan_actions()
    register_webhook_actions()
    register_mirroring_actions()
    register_promotion_actions()
    register_ldap_actions()
    # Request bodies reach dtr as sent (a blob is hashed as received, dtr.registry.inputs; /api/v0
    # decodes gzip itself, with its size limit on the decoded bytes).
    proxies = proxy_middlewares(config.http.trusted_proxies, config.http.external_url)
    app = web.Application(middlewares=[*proxies, ops.request_middleware], client_max_size=1 << 20,
                          handler_args={"auto_decompress": False})
    app[CONFIG] = config
    app.cleanup_ctx.append(_resources)
    setup_auth(app, token_signing_key)
    app.cleanup_ctx.append(replica_registered)
    app.router.add_get("/_ping", ops.ping)
    setup_metrics(app)
    app.router.add_get("/v2", _v2_redirect)
    add_registry_routes(app, registry_auth, trust_routes() if config.trust.notary else ())
    app.add_subapp("/api/v0/", create_api_app([register_accounts, register_jobs, register_cluster,
                                                    register_scanning, register_signatures,
                                                    register_signing_policy, register_activity,
                                                    register_webhooks, register_mirroring,
                                                    register_pull_through, register_promotion,
                                                    register_images], api_auth))
    setup_ui(app)
    return app
