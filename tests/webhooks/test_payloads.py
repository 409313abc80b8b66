"""Every DTR webhook type has an outbox event, a sample, and a payload in DTR's shape."""

from __future__ import annotations

import json

import pytest

from dtr.registry import events
from dtr.webhooks import payloads


@pytest.mark.parametrize("kind", payloads.TYPES)
def test_every_type_has_a_payload(kind: str) -> None:
    doc = json.loads(payloads.body(kind, payloads.sample(kind)))
    assert list(doc) == ["type", "createdAt", "contents", "location"]
    assert doc["type"] == kind and doc["createdAt"].endswith("Z") and doc["location"].startswith("/")
    if kind not in payloads.SITE_TYPES:
        assert (doc["contents"]["namespace"], doc["contents"]["repository"]) == ("test", "test")


def test_the_mapping_covers_the_outbox() -> None:
    assert set(payloads.FROM_OUTBOX.values()) == set(payloads.TYPES)
    unmapped = {v for k, v in vars(events).items() if k.isupper() and isinstance(v, str) and v.islower()
                and "_" in v} - set(payloads.FROM_OUTBOX)
    assert unmapped == {events.BLOB_UNLINKED}
    failed = payloads.contents(payloads.PUSH_MIRRORING, events.Event(
        events.PUSH_MIRROR_FAILED, "acme/app", "v1", None, {"policy": "p1", "remote": "r/x", "tags": ["v1"],
                                                            "error": "refused"}))
    assert (failed["success"], failed["error"], failed["remote"], failed["policyId"]) == (False, "refused", "r/x", "p1")
