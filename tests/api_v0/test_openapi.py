"""The OpenAPI document at ``/api/v0/docs.json``, as a real ``dtr serve`` serves it: valid OpenAPI 3.1
(``openapi-spec-validator``), complete for every operation it lists, and usable: a Python client
generated from it (``openapi-python-client``) works against a real server, typed answers and all.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from tests.api_v0.conftest import Site
from tests.auth.client import Client, basic
from tests.servers import DtrProcess

_PARAM = re.compile(r"\{([^}]+)\}")


@pytest.fixture(scope="module")
def doc(dtr: DtrProcess) -> dict[str, Any]:
    r = Client(dtr.url).api("GET", "/docs.json", expect=200)
    assert r.headers["Content-Type"].startswith("application/json")
    return dict(r.json())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) for every operation of the document."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert method in ("get", "put", "post", "delete", "patch", "head", "options"), (path, method)
            yield path, method, op


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1.")
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert any(True for _ in operations(doc))


def test_every_operation_is_documented_in_full(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for path, method, op in operations(doc):
        where = f"{method.upper()} {path}"
        assert "{reponame}" not in path, where
        assert op.get("summary", "").strip(), where
        params = op.get("parameters", [])
        in_path = [p for p in params if p["in"] == "path"]
        assert sorted(p["name"] for p in in_path) == sorted(_PARAM.findall(path)), where
        assert all(p["required"] is True and "schema" in p for p in in_path), where
        for p in params:
            if p["in"] == "query":  # a query parameter is text or absent: never JSON null
                assert "null" not in json.dumps(p["schema"]), (where, p)
        successes = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert len(successes) == 1, where
        for status, response in successes.items():
            if status == "204":
                assert "content" not in response, where
                continue
            content = response.get("content")
            assert content and "application/json" in content, (where, status)
            assert all(media.get("schema") for media in content.values()), (where, status)
        for status, response in op["responses"].items():
            if not status.startswith("2"):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Errors"}
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["schema"], where
            assert "400" in op["responses"], where


def test_request_bodies_refuse_unknown_fields(doc: dict[str, Any]) -> None:
    """Every object a request body names is closed, as the server is: unknown fields answer 400."""
    schemas = doc["components"]["schemas"]
    for path, method, op in operations(doc):
        if "requestBody" not in op:
            continue
        ref = op["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            body = schemas[ref.rsplit("/", 1)[1]]
            if body.get("type") == "object":
                assert body.get("additionalProperties") is False, (method, path)


# -- a generated client ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``openapi-python-client`` run on the served document; the ``dtr_client`` package it made."""
    where = tmp_path_factory.mktemp("client")
    spec = where / "openapi.json"
    spec.write_text(json.dumps(Client(site.url).api("GET", "/docs.json", auth=site.admin, expect=200).json()))
    (where / "config.yaml").write_text("post_hooks: []\npackage_name_override: dtr_client\n")
    out = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
                          "--meta", "none", "--output-path", str(where / "dtr_client"),
                          "--config", str(where / "config.yaml")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Warning" not in out.stdout + out.stderr, out.stdout + out.stderr  # nothing skipped
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(where / "dtr_client")], check=True)
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("dtr_client")
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m == "dtr_client" or m.startswith("dtr_client.")]:
            del sys.modules[name]


def test_a_generated_client_works_against_a_real_server(site: Site, generated: Any) -> None:
    api = SimpleNamespace(**{name: importlib.import_module(f"dtr_client.api.default.{name}") for name in
                             ("me", "create_account", "create_repository", "list_namespace_repositories",
                              "get_account")})
    models = importlib.import_module("dtr_client.models")
    client = generated.AuthenticatedClient(base_url=site.url, token=basic(*site.admin).split()[1],
                                           prefix="Basic", raise_on_unexpected_status=True)

    me = api.me.sync(client=client)
    assert isinstance(me, models.Account) and me.name == site.admin[0] and me.is_admin

    org = api.create_account.sync(client=client, body=models.NewAccount(name="client-org", is_org=True))
    assert isinstance(org, models.Account) and org.is_org and org.name == "client-org"
    made = [api.create_repository.sync(namespace="client-org", client=client,
                                       body=models.NewRepository(name=f"app{i}", short_description=f"app {i}"))
            for i in range(3)]
    assert all(isinstance(r, models.Repository) for r in made)
    assert [r.full_name for r in made] == ["client-org/app0", "client-org/app1", "client-org/app2"]

    seen: list[str] = []
    start: Any = generated.types.UNSET
    while True:
        page = api.list_namespace_repositories.sync_detailed(namespace="client-org", client=client,
                                                             page_size=2, page_start=start)
        assert page.status_code == 200 and isinstance(page.parsed, models.RepositoryList)
        assert all(isinstance(r, models.Repository) for r in page.parsed.repositories)
        seen += [r.name for r in page.parsed.repositories]
        if "X-Next-Page-Start" not in page.headers:
            break
        start = page.headers["X-Next-Page-Start"]
    assert seen == ["app0", "app1", "app2"]

    missing = api.get_account.sync_detailed(name="nobody-here", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Errors)
    assert missing.parsed.errors[0].code == "NO_SUCH_ACCOUNT"
