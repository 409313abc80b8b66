"""Promotion by scan results, with a real scan (``tests.scanning.service_data``): an image of this
machine's Debian files and two real PyPI packages' metadata, matched against real advisories, is
promoted after its scan completes by the policies whose counts, components and licenses it meets."""

from __future__ import annotations

import importlib.metadata

from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.jobs.service import JobService
from dtr.scanning.service import queue_scan
from tests.promotion.conftest import Client, create_policy, new_repo, rule, settle, tags
from tests.scanning.service_data import DPKG_STATUS, OPEN, add_advisories, dpkg_layer, os_layer, plain, push, tar_layer


def python_layer() -> bytes:
    """The real METADATA of requests (``License: Apache-2.0``) and urllib3 (``License-Expression: MIT``)."""
    files = []
    for name in ("requests", "urllib3"):
        d = importlib.metadata.distribution(name)
        files.append((f"usr/lib/python3/dist-packages/{d.metadata['Name']}-{d.version}.dist-info/METADATA",
                      (d.read_text("METADATA") or "").encode()))
    return tar_layer(files)


# (rules, promoted?) of one policy each: tar's CVE-2005-2541 is critical (CVSS 10), coreutils'
# major, glibc's major; no minor one.
POLICIES = [
    ([rule("vulnerability_critical", "gte", "1")], True),
    ([rule("vulnerability_all", "eq", "0")], False),
    ([rule("vulnerability_major", "lt", "1000"), rule("vulnerability_minor", "lte", "0")], True),
    ([rule("vulnerability_critical", "gt", "1000")], False),
    ([rule("component_name", "eq", "coreutils")], True),
    ([rule("component_name", "c", "urllib")], True),
    ([rule("component_name", "oneof", "no-such-package", "requests")], True),
    ([rule("component_name", "noneof", "coreutils")], False),
    ([rule("license_name", "eq", "Apache-2.0")], True),
    ([rule("license_name", "oneof", "MIT", "BSD-3-Clause")], True),
    ([rule("license_name", "c", "GPL-3.0-only-never")], False),
    ([rule("license_name", "noneof", "Apache-2.0")], False),
    ([rule("tag", "eq", "v1"), rule("component_name", "eq", "tar")], True),
    ([rule("tag", "eq", "v2"), rule("component_name", "eq", "tar")], False),
]


async def test_policies_on_scan_results_promote_once_the_scan_completes(app_client: Client, app_base: str,
                                                                        engine_: AsyncEngine) -> None:
    await add_advisories(engine_, OPEN)
    source = await new_repo(app_client, app_base)
    targets = []
    for rules, _ in POLICIES:
        targets.append(await new_repo(app_client, app_base))
        await create_policy(app_client, source, targets[-1], rules)
    layers = plain(os_layer(), dpkg_layer(DPKG_STATUS.read_bytes()), python_layer())
    digest = await push(app_client.session, app_base, source, "v1", layers)
    await settle(engine_)
    for target in targets:
        assert await tags(engine_, target) == {}  # not scanned yet: no rule on scans holds

    async with engine_.begin() as conn:
        await queue_scan(JobService(engine_), conn, source, "v1")
    await settle(engine_)
    for target, (rules, promoted) in zip(targets, POLICIES, strict=True):
        assert await tags(engine_, target) == ({"v1": digest} if promoted else {}), rules
