"""Every operation of ``/api/v0/docs.json`` fuzzed by schemathesis against a real ``dtr serve`` (auth on,
a site admin's Basic credentials): valid and invalid inputs made from the document itself, and each
answer checked against it: never a 5xx, only documented statuses and content types, bodies and
headers as their schemas say, invalid input refused.

Each operation is fuzzed with generated path parameters (mostly unknown names: 404s) and with those of
seeded resources (a user, an organisation, its team, a repository, a token), re-made before each
operation so that a fuzzed DELETE leaves the next one something to work on. Bounded and repeatable:
a fixed number of examples per operation and mode, derandomized. The site admin the requests run as
has a name nothing generated can hit (``tests/api_v0/conftest.py``), so the run stays authenticated.

Schemathesis is driven through its Python API (``as_strategy``) with hypothesis: its pytest plugin's
``parametrize`` does not run on pytest 9 (it sets ``Node._nodeid``, which pytest 9 no longer has).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from tests.api_v0.conftest import Site
from tests.auth.client import Client, basic
from tests.auth.constants import PASSWORD

MAX_EXAMPLES = 10
#: Examples per mode with generated path parameters: they mostly name nothing (404s).
GENERATED_PATH_EXAMPLES = 4
PARTS = 4
CHECKS = [checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_schema_conformance,
          openapi_checks.response_headers_conformance, openapi_checks.negative_data_rejection]
#: Refusing input as too large (413: a long string of escaped astral characters passes 1 MiB) is
#: refusing it too.
REFUSED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
_PARAM = re.compile(r"\{([^}]+)\}")
#: Headers that frame the HTTP message: the HTTP client's to set, not the API's input. A generated
#: ``Content-Length: j`` is not HTTP at all, refused by the server's HTTP parser before any route.
FRAMING = {"content-length", "transfer-encoding", "host", "connection"}


@pytest.fixture(scope="module")
def api_schema(site: Site) -> Any:
    doc = Client(site.url).api("GET", "/docs.json", auth=site.admin, expect=200).json()
    config = {"base-url": site.url, "checks": {"negative_data_rejection": {"expected-statuses": REFUSED}}}
    return schemathesis.openapi.from_dict(doc, config=SchemathesisConfig.from_dict(config))


def seed(site: Site) -> dict[str, str]:
    """Path parameters naming resources that exist, (re)made now."""
    api = Client(site.url)
    for method, path, body in (
        ("POST", "/accounts", {"name": "fuzz-user", "password": PASSWORD}),
        ("POST", "/accounts", {"name": "fuzz-org", "isOrg": True}),
        ("POST", "/accounts/fuzz-org/teams", {"name": "fuzz-team"}),
        ("PUT", "/accounts/fuzz-org/teams/fuzz-team/members/fuzz-user", {}),
        ("POST", "/repositories/fuzz-org", {"name": "fuzz-repo"}),
        ("PUT", "/repositories/fuzz-org/fuzz-repo/teamAccess/fuzz-team", {"accessLevel": "read-write"}),
        ("PATCH", "/accounts/fuzz-user", {"isActive": True}),
    ):
        r = api.api(method, path, auth=site.admin, body=body)
        assert r.status in (200, 201, 409), (method, path, r.status, r.body)
    token = api.api("POST", "/api_tokens", auth=site.admin, body={"tokenLabel": "fuzz"}, expect=201).json()
    return {"name": "fuzz-user", "org": "fuzz-org", "namespace": "fuzz-org", "team": "fuzz-team",
            "member": "fuzz-user", "repo": "fuzz-repo", "hash": token["hashedToken"]}


def fuzz(operation: Any, mode: GenerationMode, path: dict[str, str], examples: int, session: requests.Session,
         auth: dict[str, str]) -> None:
    """``examples`` cases of ``operation`` in ``mode`` (``path``: fixed path parameters), each
    sent and checked; no shrinking (each failure reports the request to replay)."""
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=False,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(mode, path_parameters=path))
    def run(case: Any) -> None:
        if case.headers:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() not in FRAMING}
        case.call_and_validate(session=session, headers=auth, checks=CHECKS)

    run()


@pytest.mark.parametrize("part", range(PARTS))
def test_every_operation_answers_as_documented(site: Site, api_schema: Any, part: int) -> None:
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()][part::PARTS]
    assert operations
    auth = {"Authorization": basic(*site.admin)}
    with requests.Session() as session:
        for operation in operations:
            fixed = seed(site)
            names = _PARAM.findall(operation.path)
            runs = [({}, "generated path", GENERATED_PATH_EXAMPLES if names else MAX_EXAMPLES)] + (
                [({n: fixed[n] for n in names if n in fixed}, "seeded path", MAX_EXAMPLES)] if names else [])
            for path, which, examples in runs:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    try:
                        fuzz(operation, mode, path, examples, session, auth)
                    except (Exception, BaseExceptionGroup) as e:  # all run; all failures reported at the end
                        failures.append(f"{operation.label} ({mode.value}, {which}): {e}")
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)
