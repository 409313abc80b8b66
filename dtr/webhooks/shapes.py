"""The JSON of ``/api/v0/webhooks`` (DTR's field names; camelCase); the OpenAPI document is made
from these. No answer carries a webhook's secret but the one that made it (``httpSecret``, once)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict

from dtr.api.operations import Body, PageQuery

#: DTR's webhook types (``dtr.webhooks.payloads.TYPES``).
WebhookType = Literal["TAG_PUSH", "TAG_DELETE", "MANIFEST_PUSH", "MANIFEST_DELETE", "REPO_CREATED", "REPO_DELETED",
                      "SCAN_COMPLETED", "SCAN_FAILED", "SCANNER_UPDATE_COMPLETED", "PROMOTION", "PUSH_MIRRORING",
                      "POLL_MIRRORING"]
Endpoint = Annotated[str, Field(min_length=1, max_length=2048, description="an http:// or https:// URL")]
TLSCert = Annotated[str, Field(max_length=65536, description="a PEM CA bundle the endpoint's TLS certificate "
                                                             "chains to ('' or absent: the system's CAs)")]
Secret = Annotated[str, Field(min_length=1, max_length=256, description="the HMAC-SHA256 key of X-Dtr-Signature")]


class Webhook(TypedDict):
    id: str
    type: str
    #: ``namespace/repository``, ``namespace``, or '' (SCANNER_UPDATE_COMPLETED).
    key: str
    endpoint: str
    tlsCert: str
    httpSecretSet: bool
    inactive: bool
    author: str
    createdAt: str
    lastSuccessfulAt: str | None


class CreatedWebhook(Webhook):
    #: The secret deliveries are signed with: shown here only.
    httpSecret: str


class WebhookList(TypedDict):
    webhooks: list[Webhook]


class Delivery(TypedDict):
    id: int
    webhookId: str
    eventType: str
    #: The registry event it announces (null for none).
    eventId: int | None
    #: ``pending``, ``succeeded`` or ``failed``.
    status: str
    attempts: int
    lastStatusCode: int | None
    lastError: str | None
    durationMs: int | None
    createdAt: str
    lastAttemptAt: str | None
    #: When a pending delivery is tried next.
    nextAttemptAt: str | None
    #: The delivery this one sends again.
    redeliveryOf: int | None


class DeliveryList(TypedDict):
    deliveries: list[Delivery]


class TestResult(TypedDict):
    #: The receiver's status code (null: no answer).
    statusCode: int | None
    error: str | None
    durationMs: int


class NewWebhook(Body):
    type: WebhookType
    key: Annotated[str, Field(max_length=255, description="namespace/repository or namespace; none for "
                                                          "SCANNER_UPDATE_COMPLETED")] = ""
    endpoint: Endpoint
    tls_cert: TLSCert = ""
    http_secret: Secret | None = None


class WebhookChange(Body):
    endpoint: Endpoint | None = None
    inactive: bool | None = None
    tls_cert: TLSCert | None = None
    http_secret: Secret | None = None


class WebhookTest(Body):
    type: WebhookType
    endpoint: Endpoint
    tls_cert: TLSCert = ""
    http_secret: Secret | None = None


class WebhooksQuery(PageQuery):
    key: str | None = Field(None, max_length=255, description="only the webhooks of this key")
    type: WebhookType | None = Field(None, description="only the webhooks of this type")
