"""The county-node client library: a local outbox that stores events and forwards them to the
hub's ingest over a flaky link, idempotently (the hub answers DUPLICATE for what it already
holds, so resending is always safe).

    from duhub.node import Outbox

    with Outbox("/var/lib/county/outbox.db") as box:
        box.add(events)                   # durable locally; adding an event again is a no-op
        report = box.forward("hub:50051")  # retries with backoff until every event is answered
        for row in box.rejected():         # kept, with the hub's reason, for the operator
            ...
"""

from duhub.node.outbox import (
    Backoff,
    ForwardReport,
    Outbox,
    Stored,
    Unreachable,
    default_path,
)

__all__ = ["Backoff", "ForwardReport", "Outbox", "Stored", "Unreachable", "default_path"]
