"""What ``dtr serve`` checks and takes before it creates anything, and ``dtr config check`` reports.

``problems(cfg)``: the files the config names are readable, data_dir (and a filesystem storage
root) can be created and written, each as one line a person reads. ``bind(cfg)``: the listening
sockets, bound before the database is opened or the first admin created, so a port in use or an
address of another machine fails at once with one line and nothing made.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from pathlib import Path

from dtr.config import Config, TLSFiles


class StartupError(Exception):
    """dtr cannot start; the message is the one line the admin reads."""


def _unreadable(path: str, key: str) -> str | None:
    """A line saying why ``path`` (config key ``key``) cannot be read, or None when it can."""
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        return f"{key}: {path}: no such file"
    except IsADirectoryError:
        return f"{key}: {path}: is a directory, not a file"
    except OSError as e:
        return f"{key}: {path}: cannot read it: {e.strerror or e}"
    return None


def _unwritable_dir(path: Path, key: str) -> str | None:
    """A line saying why directory ``path`` cannot be created or written, or None; creates nothing."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{key}: {path}: {probe} is not a directory" if probe != path else f"{key}: {path}: not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{key}: {path}: not writable" if probe == path else f"{key}: {path}: cannot create it in {probe}"
    return None


def problems(cfg: Config) -> list[str]:
    """One line per thing in ``cfg`` that stops dtr from starting, found without starting it."""
    found: list[str | None] = [_unwritable_dir(cfg.data_path, "data_dir")]
    storage = cfg.storage_config
    if storage.driver == "filesystem" and "rootdirectory" in storage.params:
        found.append(_unwritable_dir(Path(str(storage.params["rootdirectory"])), "storage.filesystem.rootdirectory"))
    if isinstance(cfg.http.tls, TLSFiles):
        found += [_unreadable(cfg.http.tls.certificate, "http.tls.certificate"),
                  _unreadable(cfg.http.tls.key, "http.tls.key")]
    auth = cfg.auth
    if auth.enabled:
        if auth.admin_password_file:
            found.append(_unreadable(auth.admin_password_file, "auth.admin_password_file"))
        if auth.ldap is not None:
            if auth.ldap.bind_password_file:
                found.append(_unreadable(auth.ldap.bind_password_file, "auth.ldap.bind_password_file"))
            if auth.ldap.ca_file:
                found.append(_unreadable(auth.ldap.ca_file, "auth.ldap.ca_file"))
    return [p for p in found if p is not None]


def _why(e: OSError, host: str) -> str:
    if e.errno == errno.EADDRINUSE:
        return "address already in use"
    if e.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine"
    if e.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    return e.strerror or str(e)


def bind(cfg: Config) -> list[socket.socket]:
    """Sockets bound to every address ``http.addr`` names (not yet listening), or StartupError."""
    host, port = cfg.http.host, cfg.http.port
    where = f"cannot listen on {cfg.http.addr}"
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise StartupError(f"{where}: {host} does not resolve to an address") from None
    socks: list[socket.socket] = []
    for family, kind, proto, _, address in dict.fromkeys(infos):
        s = socket.socket(family, kind, proto)
        socks.append(s)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(address)
        except OSError as e:
            for t in socks:
                t.close()
            raise StartupError(f"{where}: {_why(e, host)}") from None
    return socks


def _tls_problem(cfg: Config, e: Exception) -> str:
    """The line saying why the certificate files ``http.tls`` names did not load (``e``)."""
    tls = cfg.http.tls
    files = f"{tls.certificate} with the key {tls.key}" if isinstance(tls, TLSFiles) else \
        f"under {cfg.data_path / 'ca'}"
    why = "not a PEM certificate and its private key" if isinstance(e, ssl.SSLError) else \
        getattr(e, "strerror", None) or str(e)
    return f"http.tls: cannot load the certificate {files}: {why}"


def server_ssl(cfg: Config) -> ssl.SSLContext | None:
    """The TLS context ``http.tls`` asks for; StartupError naming the files when they do not load."""
    from dtr.tls import server_ssl_context

    try:
        return server_ssl_context(cfg)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise StartupError(_tls_problem(cfg, e)) from None


def reload_ssl(cfg: Config, ctx: ssl.SSLContext) -> str | None:
    """Load the certificate files again into the live ``ctx`` (SIGHUP); the line saying why they
    did not load (``ctx`` unchanged), or None."""
    from dtr.tls import reload_cert_chain

    try:
        reload_cert_chain(cfg, ctx)
    except (OSError, ssl.SSLError, ValueError) as e:
        return _tls_problem(cfg, e)
    return None


def check(cfg: Config) -> list[str]:
    """``problems(cfg)`` and whether ``http.addr`` can be listened on now (``dtr config check``)."""
    found = problems(cfg)
    try:
        for s in bind(cfg):
            s.close()
    except StartupError as e:
        found.append(str(e))
    return found
