"""The config's schema: one frozen dataclass per section, defaults and per-section checks.

``dtr.config.loader`` fills it from YAML and the environment; a new section is a field of ``Config``.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal

from dtr.schedule import Schedule, ScheduleError
from dtr.sections import DURATION, ConfigError
from dtr.storage.config import StorageConfig

#: Seconds, written as a number or a duration (``90s``, ``30m``, ``24h``, ``1h30m``, ``2d``).
Seconds = Annotated[float, DURATION]
#: Whole seconds, written the same way.
WholeSeconds = Annotated[int, DURATION]


def default_data_dir() -> str:
    """``/var/lib/dtr`` for root (the systemd service), else ``$XDG_DATA_HOME/dtr`` (~/.local/share/dtr)."""
    if os.geteuid() == 0:
        return "/var/lib/dtr"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dtr")


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    certificate: str
    key: str


@dataclasses.dataclass(frozen=True)
class HTTPConfig:
    addr: str = "127.0.0.1:5000"
    #: The URL clients use to reach dtr (token realm, Location headers). Default: derived from addr.
    external_url: str | None = None
    #: ``auto`` (a certificate from the internal CA in data_dir), explicit files, or plain HTTP.
    tls: Literal["auto"] | TLSFiles | None = None
    #: Seconds in-flight requests get to finish after SIGTERM (once dtr stops accepting).
    drain_timeout: Seconds = 30.0
    #: Seconds after SIGTERM during which /_ping and /health answer 503 while everything else is still
    #: served, so load balancers take this replica out of rotation before it stops accepting (0: none).
    drain_delay: Seconds = 5.0
    #: CIDRs of load balancers whose X-Forwarded-For/-Proto/-Host dtr believes (``dtr.ops.proxies``);
    #: empty: nobody's (the TCP peer is the client).
    trusted_proxies: tuple[str, ...] = ()
    #: The CA (certificate and key files) that issues the ``tls: auto`` certificate; give every
    #: replica the same one. Absent: a CA of this replica's own under data_dir/ca.
    tls_ca: TLSFiles | None = None

    def __post_init__(self) -> None:
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ConfigError(f"http.trusted_proxies: {cidr!r} is not an address or CIDR "
                                  "(such as 10.0.0.0/8)") from None

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])


@dataclasses.dataclass(frozen=True)
class DatabaseConfig:
    #: ``postgresql://user:pass@host:port/db``; absent: an embedded PostgreSQL under data_dir.
    url: str | None = None
    pool_size: int = 10
    #: Seconds to wait for a new connection to Postgres (TCP and startup) before answering 503.
    connect_timeout: Seconds = 5.0
    #: Seconds a statement may run: Postgres cancels it past this (its ``statement_timeout``), and
    #: dtr stops waiting for a server that does not answer at all (hung) a little later; either
    #: way a 503. 0: no limit. Migrations are not limited.
    statement_timeout: Seconds = 30.0
    #: Seconds a request waits for a free pooled connection (all ``2 * pool_size`` busy) before 503.
    pool_timeout: Seconds = 10.0

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ConfigError("database.pool_size: must be at least 1")
        for name in ("connect_timeout", "pool_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"database.{name}: must be greater than 0")
        if self.statement_timeout < 0:
            raise ConfigError("database.statement_timeout: must not be negative (0: no limit)")


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    #: Manifests larger than this are refused (bytes).
    max_manifest_size: int = 4 * 1024 * 1024
    #: Largest page for tag and catalog listings.
    max_page_size: int = 10000


@dataclasses.dataclass(frozen=True)
class JobCapacity:
    """How many jobs of each action one process runs at once (0: this process never runs it)."""

    gc: int = 1
    upload_cleanup: int = 1
    prune: int = 2
    usage: int = 1
    noop: int = 4
    #: Scanning (``dtr.scanning``): index a layer / match an image; refresh the vulnerability
    #: database; re-match the images a database change touches.
    scan: int = 2
    update_vuln_db: int = 1
    rematch: int = 1
    #: Webhooks (``dtr.webhooks``): a job sending due deliveries, several at once (``webhooks.concurrency``).
    webhook_deliver: int = 1
    #: Mirroring (``dtr.mirroring``): push a tag to a push mirror; poll a poll mirror.
    push_mirror: int = 2
    poll_mirror: int = 1
    #: Promotion policies (``dtr.promotion``): evaluate and promote after pushes, scans and runs.
    promote: int = 2
    #: The directory sync (``dtr.accounts.ldapadmin``: "Sync now" in the web UI).
    ldap_sync: int = 1


@dataclasses.dataclass(frozen=True)
class JobsConfig:
    """The job runner every dtr process starts (see dtr.jobs). Times are durations (seconds)."""

    #: Run a worker in this process; replicas with ``false`` only queue jobs.
    worker: bool = True
    capacity: JobCapacity = dataclasses.field(default_factory=JobCapacity)
    #: How often a worker looks for jobs, cancel requests and due schedules.
    poll_interval: Seconds = 1.0
    heartbeat_interval: Seconds = 5.0
    #: A worker silent this long is dead: its jobs become ``worker_dead`` and are picked up again.
    worker_timeout: Seconds = 30.0
    #: First retry delay; doubles with each attempt up to ``retry_backoff_max``.
    retry_backoff: Seconds = 10.0
    retry_backoff_max: Seconds = 600.0
    #: Default seconds a job gets to stop by itself before it is cut off.
    stop_timeout: Seconds = 30.0
    #: Blobs and manifests younger than this are never collected (overridable per GC run).
    gc_grace_period: Seconds = 86400.0
    #: Uploads untouched this long are abandoned and deleted.
    upload_max_age: Seconds = 86400.0
    #: Finished jobs (and their logs) older than this are deleted.
    job_retention: Seconds = 30 * 86400.0

    def __post_init__(self) -> None:
        for name in ("poll_interval", "heartbeat_interval", "worker_timeout", "retry_backoff",
                     "retry_backoff_max", "stop_timeout", "job_retention"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"jobs.{name}: must be greater than 0")
        for name in ("gc_grace_period", "upload_max_age"):
            if getattr(self, name) < 0:
                raise ConfigError(f"jobs.{name}: must not be negative")
        if self.worker_timeout <= self.heartbeat_interval:
            raise ConfigError("jobs.worker_timeout: must be longer than jobs.heartbeat_interval")
        for f in dataclasses.fields(self.capacity):
            if getattr(self.capacity, f.name) < 0:
                raise ConfigError(f"jobs.capacity.{f.name}: must not be negative")


@dataclasses.dataclass(frozen=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"


@dataclasses.dataclass(frozen=True)
class LDAPConfig:
    """A directory (LDAP or Active Directory) users log in against; see docs/auth.md."""

    #: ``ldap://host:389`` or ``ldaps://host:636``.
    url: str
    user_search_base: str
    start_tls: bool = False
    #: CA bundle for LDAPS/StartTLS; absent: the system's trust store.
    ca_file: str | None = None
    verify_tls: bool = True
    #: The service account that searches the directory (empty: anonymous bind).
    bind_dn: str = ""
    bind_password: str | None = None
    bind_password_file: str | None = None
    user_filter: str = "(objectClass=person)"
    username_attr: str = "uid"
    fullname_attr: str = "cn"
    email_attr: str = "mail"
    timeout: Seconds = 10.0


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    """Users, tokens and access control (``dtr.auth``). Off only for protocol tests."""

    enabled: bool = True
    #: The first site admin, created at first start.
    admin_username: str = "admin"
    #: Its password, or a file holding it; neither: a random one printed once at first start.
    admin_password: str | None = None
    admin_password_file: str | None = None
    #: The ``service`` (JWT audience) of issued tokens; default: the host:port of the external URL.
    service: str | None = None
    issuer: str = "dtr"
    #: Lifetime of registry bearer tokens and of refresh tokens (durations).
    token_ttl: WholeSeconds = 300
    refresh_token_ttl: WholeSeconds = 30 * 86400
    min_password_length: int = 8
    #: Failed logins for one user (or, ``address_threshold``, from one client address) before
    #: further attempts are refused for ``lockout_base`` seconds, doubling per failure up to ``lockout_max``.
    failed_login_threshold: int = 5
    failed_login_address_threshold: int = 20
    failed_login_window: Seconds = 900.0
    lockout_base: Seconds = 1.0
    lockout_max: Seconds = 300.0
    ldap: LDAPConfig | None = None


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """Who may read ``/metrics`` and ``/health``, and where they are served (``dtr.ops.metrics``)."""

    #: A bearer token both require, or a file holding it; neither: anyone who reaches them may read.
    token: str | None = None
    token_file: str | None = None
    #: ``HOST:PORT`` of a plain-HTTP listener serving only /metrics, /health and /_ping; then the
    #: main address no longer serves /metrics and /health.
    listen: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and self.token_file is not None:
            raise ConfigError("metrics: give token or token_file, not both")
        if self.token is not None and not self.token.strip():
            raise ConfigError("metrics.token: must not be empty")
        if self.listen is not None:
            host, _, port = self.listen.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"metrics.listen: got {self.listen!r}, expected HOST:PORT with a port "
                                  "from 1 to 65535")

    @property
    def listen_host(self) -> str:
        return (self.listen or "").rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int((self.listen or "").rpartition(":")[2])


@dataclasses.dataclass(frozen=True)
class FeedsConfig:
    """Where the vulnerability feeds are fetched from (a mirror's URL works the same); an empty
    URL turns that feed off."""

    #: OSV's bucket: ``<osv>/<Ecosystem>/all.zip`` for each of ``osv_ecosystems``.
    osv: str = "https://osv-vulnerabilities.storage.googleapis.com"
    osv_ecosystems: tuple[str, ...] = ("Debian", "Ubuntu", "Alpine", "Rocky Linux", "AlmaLinux", "PyPI", "npm",
                                       "Maven", "RubyGems", "Go", "crates.io")
    #: The Debian security tracker's JSON (source package -> CVE -> release -> status).
    debian: str = "https://security-tracker.debian.org/tracker/data/json"
    #: Alpine's secdb: ``<alpine>/v3.N/main.json`` and ``community.json`` for each of ``alpine_branches``.
    alpine: str = "https://secdb.alpinelinux.org"
    alpine_branches: tuple[str, ...] = ("v3.17", "v3.18", "v3.19", "v3.20", "v3.21", "v3.22", "v3.23")
    #: NVD's CVE API 2.0 (CVSS scores); an API key raises its rate limit.
    nvd: str = "https://services.nvd.nist.gov/rest/json/cves/2.0"
    nvd_api_key: str | None = None
    #: Seconds one feed download may take.
    timeout: Seconds = 600.0


@dataclasses.dataclass(frozen=True)
class ScanningConfig:
    """The built-in scanner (``dtr.scanning``)."""

    enabled: bool = True
    #: scanOnPush of a repository that never set it.
    scan_on_push: bool = False
    feeds: FeedsConfig = dataclasses.field(default_factory=FeedsConfig)
    #: When the vulnerability database is refreshed (DTR: daily at 03:00 UTC); six-field cron.
    update_schedule: str = "0 0 3 * * *"
    #: PEM public keys (files) an offline bundle (``dtr vulndb import``) must be signed with.
    bundle_trusted_keys: tuple[str, ...] = ()
    #: The PEM private key ``dtr vulndb export`` signs with; absent: ``data_dir/scanning/bundle-signing.pem``
    #: (made on first export; its public half is printed for importers to trust).
    bundle_signing_key: str | None = None

    def __post_init__(self) -> None:
        try:
            Schedule.parse(self.update_schedule)
        except ScheduleError as e:
            raise ConfigError(f"scanning.update_schedule: {e}") from None


@dataclasses.dataclass(frozen=True)
class MirroringConfig:
    """Push and poll mirroring (``dtr.mirroring``)."""

    #: When poll policies are checked (six-field cron); a policy's own schedule is read at each tick.
    poll_tick: str = "0 */15 * * * *"
    #: Blobs up to this many bytes are pushed in one request, larger ones in chunks of ``chunk_size``
    #: (each resumed from where the remote says it stands after a failure).
    monolithic_max: int = 16 << 20
    chunk_size: int = 64 << 20

    def __post_init__(self) -> None:
        try:
            Schedule.parse(self.poll_tick)
        except ScheduleError as e:
            raise ConfigError(f"mirroring.poll_tick: {e}") from None
        for name in ("monolithic_max", "chunk_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"mirroring.{name}: must be at least 1 byte")


@dataclasses.dataclass(frozen=True)
class TrustConfig:
    """The built-in Notary (``dtr.trust``) and OCI signature checks (``dtr.signatures``)."""

    #: Serve ``/v2/<gun>/_trust/`` (Docker Content Trust) on the registry's port.
    notary: bool = True
    #: A file holding the key that seals the server-held Notary keys at rest (32 random bytes,
    #: base64). Absent: ``data_dir/trust/sealing.key``, made on first use. Replicas must share it.
    sealing_key_file: str | None = None
    #: How long a server-signed timestamp is valid (notary: 14 days); it is re-signed before then.
    timestamp_expiry: Seconds = 14 * 86400.0
    #: How long a server-signed snapshot is valid (notary: 3 years).
    snapshot_expiry: Seconds = 3 * 365 * 86400.0


@dataclasses.dataclass(frozen=True)
class WebhooksConfig:
    """Webhook deliveries (``dtr.webhooks``)."""

    #: Seconds one delivery attempt may take (connect, send, the receiver's answer).
    timeout: Seconds = 10.0
    #: Attempts per delivery before it is ``failed``.
    max_attempts: int = 5
    #: Delay before the first retry; doubles with each attempt up to ``retry_backoff_max``.
    retry_backoff: Seconds = 10.0
    retry_backoff_max: Seconds = 600.0
    #: Deliveries one job sends at once.
    concurrency: int = 8
    #: Finished deliveries (and their outcome) older than this are deleted.
    delivery_retention: Seconds = 30 * 86400.0
    #: Networks no delivery is sent to (checked on every address an endpoint resolves to, when sent).
    deny_networks: tuple[str, ...] = ("169.254.0.0/16", "fe80::/10", "169.254.169.254/32", "fd00:ec2::254/128")

    def __post_init__(self) -> None:
        for name in ("timeout", "retry_backoff", "retry_backoff_max", "delivery_retention"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"webhooks.{name}: must be greater than 0")
        for name in ("max_attempts", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"webhooks.{name}: must be at least 1")
        for i, net in enumerate(self.deny_networks):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ConfigError(f"webhooks.deny_networks[{i}]: {net!r} is not a network (CIDR)") from None


@dataclasses.dataclass(frozen=True)
class UIConfig:
    """The web admin UI (``dtr.ui``) at ``/``."""

    #: Serve the UI; off, ``/`` is a 404 and only the APIs are served.
    enabled: bool = True
    #: A browser session ends after this long without a request...
    session_idle: Seconds = 3600.0
    #: ... and this long after its login, however active.
    session_max: Seconds = 12 * 3600.0


@dataclasses.dataclass(frozen=True)
class Config:
    data_dir: str = dataclasses.field(default_factory=default_data_dir)
    http: HTTPConfig = dataclasses.field(default_factory=HTTPConfig)
    database: DatabaseConfig = dataclasses.field(default_factory=DatabaseConfig)
    storage: StorageConfig | None = None
    registry: RegistryConfig = dataclasses.field(default_factory=RegistryConfig)
    log: LogConfig = dataclasses.field(default_factory=LogConfig)
    jobs: JobsConfig = dataclasses.field(default_factory=JobsConfig)
    auth: AuthConfig = dataclasses.field(default_factory=AuthConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    scanning: ScanningConfig = dataclasses.field(default_factory=ScanningConfig)
    trust: TrustConfig = dataclasses.field(default_factory=TrustConfig)
    webhooks: WebhooksConfig = dataclasses.field(default_factory=WebhooksConfig)
    mirroring: MirroringConfig = dataclasses.field(default_factory=MirroringConfig)
    ui: UIConfig = dataclasses.field(default_factory=UIConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @functools.cached_property
    def storage_config(self) -> StorageConfig:
        """The storage section, defaulting to the filesystem under data_dir (made once: a blob GET
        reads it)."""
        if self.storage is not None:
            return self.storage
        return StorageConfig("filesystem", {"rootdirectory": str(self.data_path / "registry")})

    @property
    def external_url(self) -> str:
        if self.http.external_url:
            return self.http.external_url.rstrip("/")
        scheme = "https" if self.http.tls else "http"
        return f"{scheme}://{self.http.addr}"
