"""PyPI's oras client (``oras.client.OrasClient``) against dtr with auth on: it pushes an artifact
whose ``subject`` is an image, which the referrers API then lists, and pulls it back.

oras-py (0.2.43) answers a 401 by resending the token it holds; only a 403 makes it fetch a new
one. So after the pull token its first blob HEAD earns, it cannot follow the
``insufficient_scope`` challenge that dtr (like the reference registry, per Docker's token spec)
answers to its upload POST. It gets its push token the way it would from that challenge: its own
token request (``TokenAuth.request_token``) for the challenge dtr sends to the POST.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import oras.auth.utils
import oras.client
import oras.oci

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH
from tests.auth.world import World, push_image
from tests.servers import DtrProcess

SBOM = "application/spdx+json"


def test_oras_pushes_an_artifact_with_a_subject_and_pulls_it_back(auth_dtr: DtrProcess, client: Client,
                                                                   world: World, tmp_path: Path) -> None:
    rw = world.users["rw"]
    assert rw is not None
    image = push_image(client, world.app, "oras-subject", ADMIN_AUTH)
    manifest = client.request("GET", f"/v2/{world.app}/manifests/{image}",
                              bearer=client.bearer([f"repository:{world.app}:pull"], ADMIN_AUTH))
    work = tmp_path / "work"
    work.mkdir()
    (work / "sbom.spdx.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": image}))
    cwd = os.getcwd()
    os.chdir(work)  # oras refuses files outside the working directory
    try:
        orc = oras.client.OrasClient(hostname=auth_dtr.host, insecure=True)
        orc.auth.set_basic_auth(*rw)
        challenge = client.request("POST", f"/v2/{world.app}/blobs/uploads/")
        assert challenge.status == 401
        token = orc.auth.request_token(oras.auth.utils.parse_auth_header(challenge.headers["WWW-Authenticate"]))
        assert token
        orc.auth.set_token_auth(token)
        subject = oras.oci.Subject(mediaType=manifest.headers["Content-Type"], digest=image,
                                   size=len(manifest.body))
        target = f"{auth_dtr.host}/{world.app}:sbom"
        pushed = orc.push(target, files=[f"sbom.spdx.json:{SBOM}"], subject=subject)
        assert pushed.status_code == 201, pushed.text
        assert pushed.headers["OCI-Subject"] == image
        index = client.request("GET", f"/v2/{world.app}/referrers/{image}",
                               bearer=client.bearer([f"repository:{world.app}:pull"], rw)).json()
        assert [d["digest"] for d in index["manifests"]] == [pushed.headers["Docker-Content-Digest"]]
        fresh = oras.client.OrasClient(hostname=auth_dtr.host, insecure=True)
        fresh.auth.set_basic_auth(*rw)
        files = fresh.pull(target, outdir=str(tmp_path / "out"))
    finally:
        os.chdir(cwd)
    assert [Path(f).name for f in files] == ["sbom.spdx.json"]
    assert Path(files[0]).read_bytes() == (work / "sbom.spdx.json").read_bytes()
