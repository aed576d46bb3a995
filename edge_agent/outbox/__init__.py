"""Durable, bounded store-and-forward for everything a subscriber must not miss.

docs/delivery.md states the guarantees in an operator's words; the modules here say how.

The pipeline enqueues; the MQTT publisher claims rows, publishes them and acknowledges
(deletes) what the broker acknowledged. paho only queues in RAM, so this SQLite file is
what makes delivery survive broker outages, agent crashes and power loss.

Layered as persist-queue puts its ``sqlbase`` under its queues:

- :mod:`~edge_agent.outbox.sqlite`: the file: schema, PRAGMAs, recovery at open, errors.
- :mod:`~edge_agent.outbox.records`: classes and priorities, stored rows, stats.
- :mod:`~edge_agent.outbox.gaps`: the gap ledger (dropped seqs until a notice reports them).
- :mod:`~edge_agent.outbox.dead_letters`: messages the broker refused, kept aside.
- :mod:`~edge_agent.outbox.lifecycles`: events and alerts a crash left open.
- :mod:`~edge_agent.outbox.base`: opening and recovery, the counters, one write
  transaction at a time, write failures (as persist-queue's ``sqlbase``).
- :mod:`~edge_agent.outbox.store`: :class:`Outbox`, the queue on that base (one object,
  one lock) that uses them all, in one transaction per write.
"""

from __future__ import annotations

from edge_agent.outbox.gaps import GAP_REASONS
from edge_agent.outbox.records import (
    DURABLE_CLASSES,
    EVICTION_PRIORITY,
    LIFECYCLE_CLASSES,
    NOTICE_CLASS,
    DeadLetter,
    OutboxStats,
    StoredMessage,
)
from edge_agent.outbox.sqlite import OutboxError, OutboxFull, disk_free_bytes
from edge_agent.outbox.store import Outbox

__all__ = [
    "DURABLE_CLASSES",
    "EVICTION_PRIORITY",
    "GAP_REASONS",
    "LIFECYCLE_CLASSES",
    "NOTICE_CLASS",
    "DeadLetter",
    "Outbox",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "StoredMessage",
    "disk_free_bytes",
]
