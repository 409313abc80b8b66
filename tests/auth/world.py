"""A populated auth server for matrix tests: an organisation, teams with every level, users in every role."""

from __future__ import annotations

import dataclasses
import json
import uuid

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD
from tests.oci import OCI_MANIFEST, digest_of, image

#: Roles a user may have on the organisation's private repository ``app``.
ROLES = ("anonymous", "outsider", "inactive", "ro", "rw", "adm", "nsrw", "owner", "admin")


@dataclasses.dataclass
class World:
    org: str
    users: dict[str, tuple[str, str] | None]

    @property
    def app(self) -> str:
        return f"{self.org}/app"

    @property
    def pub(self) -> str:
        return f"{self.org}/pub"


def push_image(client: Client, repo: str, tag: str, auth: tuple[str, str] | None) -> str:
    """Push a one-layer OCI image over raw HTTP; returns the manifest digest."""
    token = client.bearer([f"repository:{repo}:pull,push"], auth)
    layer = uuid.uuid4().bytes * 8
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    for blob in (config, layer):
        r = client.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(blob)}", bearer=token, data=blob,
                           headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, r.body
    manifest = image(config, [layer])
    r = client.request("PUT", f"/v2/{repo}/manifests/{tag}", bearer=token, data=manifest,
                       headers={"Content-Type": OCI_MANIFEST})
    assert r.status == 201, r.body
    return digest_of(manifest)


def build_world(client: Client) -> World:
    suffix = uuid.uuid4().hex[:8]
    org = f"acme{suffix}"
    api = client.api
    users: dict[str, tuple[str, str] | None] = {"anonymous": None, "admin": ADMIN_AUTH}
    for role in ROLES[1:-1]:
        name = f"{role}{suffix}"
        api("POST", "/accounts", ADMIN_AUTH, {"name": name, "password": PASSWORD}, expect=201)
        users[role] = (name, PASSWORD)
    api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
    owner = users["owner"]
    assert owner is not None
    api("PUT", f"/accounts/{org}/members/{owner[0]}", ADMIN_AUTH, {"isAdmin": True}, expect=200)
    for repo, vis in (("app", "private"), ("pub", "public")):
        api("POST", f"/repositories/{org}", owner, {"name": repo, "visibility": vis}, expect=201)
    for role, level in (("ro", "read-only"), ("rw", "read-write"), ("adm", "admin"), ("inactive", "read-only")):
        team = f"t-{role}"
        api("POST", f"/accounts/{org}/teams", owner, {"name": team}, expect=201)
        member = users[role]
        assert member is not None
        api("PUT", f"/accounts/{org}/teams/{team}/members/{member[0]}", owner, {}, expect=200)
        api("PUT", f"/repositories/{org}/app/teamAccess/{team}", owner, {"accessLevel": level}, expect=200)
    api("POST", f"/accounts/{org}/teams", owner, {"name": "t-ns"}, expect=201)
    nsrw = users["nsrw"]
    assert nsrw is not None
    api("PUT", f"/accounts/{org}/teams/t-ns/members/{nsrw[0]}", owner, {}, expect=200)
    api("PUT", f"/repositoryNamespaces/{org}/teamAccess/t-ns", owner, {"accessLevel": "read-write"}, expect=200)
    inactive = users["inactive"]
    assert inactive is not None
    api("PATCH", f"/accounts/{inactive[0]}", ADMIN_AUTH, {"isActive": False}, expect=200)
    for repo in ("app", "pub"):
        push_image(client, f"{org}/{repo}", "v1", ADMIN_AUTH)
    return World(org, users)
