"""``/api/v0/meta/ldap``: the directory (LDAP) settings in effect, for site admins. ``GET`` shows
them (whether a bind password is set, never the password), ``PUT`` saves them for every replica
(checked as the configuration loader checks ``auth.ldap``; no ``bindPassword`` keeps the saved
one), ``DELETE`` drops the saved ones (the configuration file's ``auth.ldap`` is in effect again).
Each calls its use case in ``dtr.accounts.ldapadmin``.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web
from pydantic import Field
from typing_extensions import TypedDict

from dtr.accounts import ldapadmin
from dtr.accounts.views import caller
from dtr.api.errors import codes
from dtr.api.operations import Body, operation
from dtr.auth.ldapsettings import Effective, Source


class LDAPSettings(TypedDict):
    """The directory in effect: ``source`` ``stored`` (saved through this API), ``file``
    (``auth.ldap`` of the configuration file) or ``none`` (the other fields then absent)."""

    source: Source
    bindPasswordSet: bool
    url: str | None
    userSearchBase: str | None
    startTls: bool | None
    caFile: str | None
    verifyTls: bool | None
    bindDn: str | None
    userFilter: str | None
    usernameAttr: str | None
    fullnameAttr: str | None
    emailAttr: str | None
    timeout: float | None


class LDAPSettingsChanges(Body):
    """The directory settings to save (all of them; a field left out takes its default). No
    ``bindPassword`` (or an empty one) keeps the saved password."""

    url: str = Field(max_length=2048, description="ldap://host:389 or ldaps://host:636")
    user_search_base: str = Field(max_length=2048)
    start_tls: bool = False
    ca_file: str | None = Field(None, max_length=4096)
    verify_tls: bool = True
    bind_dn: str = Field("", max_length=2048)
    bind_password: str | None = Field(None, max_length=1024, description="write-only")
    user_filter: str = Field("(objectClass=person)", max_length=2048)
    username_attr: str = Field("uid", max_length=255)
    fullname_attr: str = Field("cn", max_length=255)
    email_attr: str = Field("mail", max_length=255)
    timeout: float = Field(10.0, gt=0, le=3600, description="seconds")


def _json(found: Effective) -> LDAPSettings:
    cfg = found.config
    values = dataclasses.asdict(cfg) if cfg is not None else {}
    return {"source": found.source,
            "bindPasswordSet": found.password_set,
            "url": values.get("url"), "userSearchBase": values.get("user_search_base"),
            "startTls": values.get("start_tls"), "caFile": values.get("ca_file"),
            "verifyTls": values.get("verify_tls"), "bindDn": values.get("bind_dn"),
            "userFilter": values.get("user_filter"), "usernameAttr": values.get("username_attr"),
            "fullnameAttr": values.get("fullname_attr"), "emailAttr": values.get("email_attr"),
            "timeout": values.get("timeout")}


@operation(codes.FORBIDDEN, codes.INVALID_OPERATION)
async def get_ldap(request: web.Request) -> LDAPSettings:
    """The directory (LDAP) settings in effect (site admins); never the bind password."""
    return _json(await ldapadmin.settings(caller(request)))


@operation(codes.FORBIDDEN, codes.INVALID_OPERATION, codes.INVALID_PARAMETER)
async def put_ldap(request: web.Request, body: LDAPSettingsChanges) -> LDAPSettings:
    """Save the directory (LDAP) settings for every replica (site admins), over ``auth.ldap`` of
    the configuration file; in effect everywhere within about a second."""
    values = body.model_dump(exclude={"bind_password"})
    return _json(await ldapadmin.save_settings(caller(request), values, body.bind_password))


@operation(codes.FORBIDDEN, codes.INVALID_OPERATION)
async def delete_ldap(request: web.Request) -> LDAPSettings:
    """Drop the saved directory settings (site admins): ``auth.ldap`` of the configuration file
    (or no directory) is in effect again; the settings then in effect."""
    return _json(await ldapadmin.clear_settings(caller(request)))


ROUTES = (("GET", "/meta/ldap", get_ldap), ("PUT", "/meta/ldap", put_ldap), ("DELETE", "/meta/ldap", delete_ldap))
