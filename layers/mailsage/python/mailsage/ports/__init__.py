"""The ports the domain talks to. Each has an embedded (SQLite/SMTP) and an AWS adapter, and one
contract suite in tests/contract runs against every adapter (ARCHITECTURE.md lists them)."""

from mailsage.ports.metrics import Meter, NoMeter
from mailsage.ports.pacing import Change, PacingState, PacingStore
from mailsage.ports.queues import Queue, Received, Scheduler
from mailsage.ports.stores import (
    AccountStore,
    ApiKeyAdmin,
    ApiKeyStore,
    CampaignStore,
    ChunkStore,
    IdempotencyStore,
    JobStore,
    MessageStore,
    RetentionStore,
    Store,
    SuppressionStore,
    TemplateStore,
    WebhookDeliveryStore,
    WebhookStore,
)
from mailsage.ports.transport import Transport, TransportSession
from mailsage.ports.webhooks import Resolver, WebhookClient, WebhookResponse, WebhookStores

__all__ = [
    "AccountStore",
    "ApiKeyAdmin",
    "ApiKeyStore",
    "CampaignStore",
    "Change",
    "ChunkStore",
    "IdempotencyStore",
    "JobStore",
    "Meter",
    "MessageStore",
    "NoMeter",
    "PacingState",
    "PacingStore",
    "Queue",
    "Received",
    "Resolver",
    "RetentionStore",
    "Scheduler",
    "Store",
    "SuppressionStore",
    "TemplateStore",
    "Transport",
    "TransportSession",
    "WebhookClient",
    "WebhookDeliveryStore",
    "WebhookResponse",
    "WebhookStore",
    "WebhookStores",
]
