"""[keep] The durable queue of accepted events and their deliveries (SQLite).

`facade.Spool` is the spool; `writer` commits in groups; `sql` holds every statement;
`records` the plain records that go in and come out.
"""

from mailhooks.spool.facade import Spool
from mailhooks.spool.records import (
    Added,
    AttemptResult,
    Delivery,
    DeliveryRecord,
    NewEvent,
    ShareOutcome,
    SpoolError,
    SpoolFull,
    SpoolStats,
    WebhookState,
)

__all__ = [
    "Added", "AttemptResult", "Delivery", "DeliveryRecord", "NewEvent", "ShareOutcome", "Spool",
    "SpoolError", "SpoolFull", "SpoolStats", "WebhookState",
]
