"""What several workloads share: the raw side's SQL pieces and the two appenders.

Not a workload itself (the leading underscore keeps discovery away from it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ...events import Event, new_event_id
from ...postgres import PostgresEventStore
from ..errors import BenchmarkError
from ..payloads import EVENT_TYPE, METADATA, Payloads, make_events
from ..runner import expect

EVENT_COPY_COLUMNS: Final = (
    "stream_name",
    "stream_offset",
    "event_id",
    "event_type",
    "data",
    "metadata",
    "correlation_id",
)
# What pgstreams reads into a QueuedEvent; the raw side returns the same columns.
QUEUE_RETURNING_COLUMNS: Final = (
    "id, stream_name, event_type, data, metadata, correlation_id, causation_id, "
    "delivery_attempts, enqueued_at, consumer_id, visible_at, lease_token"
)
ENQUEUE_BATCH: Final = 1000


RAW_QUEUE_TABLE: Final = "raw_queue"
RAW_QUEUE_COPY_COLUMNS: Final = (
    "id",
    "stream_name",
    "event_type",
    "data",
    "metadata",
    "correlation_id",
)


async def create_raw_queue(conn: Any, schema: str) -> str:
    """The queue table a user writing it by hand would make (one index, in enqueue order,
    a NOT NULL visibility time), beside pgstreams' own in the raw side's schema; returns its
    qualified name. The raw side's queue benchmarks use it, so they measure hand-written SQL
    on a hand-made table, not pgstreams' table design."""
    table = f'"{schema}".{RAW_QUEUE_TABLE}'
    await conn.execute(
        f"CREATE TABLE {table} (id uuid PRIMARY KEY, seq bigserial NOT NULL, "
        "stream_name text NOT NULL, event_type text NOT NULL, data jsonb NOT NULL, "
        "metadata jsonb NOT NULL DEFAULT '{}'::jsonb, correlation_id text, causation_id text, "
        "enqueued_at timestamptz NOT NULL DEFAULT now(), "
        "visible_at timestamptz NOT NULL DEFAULT now(), "
        "delivery_attempts integer NOT NULL DEFAULT 0, lease_token uuid, consumer_id text, "
        f"leased_at timestamptz); CREATE INDEX ON {table} (stream_name, seq)"
    )
    return table


async def raw_enqueue(conn: Any, schema: str, stream: str, events: Sequence[Event]) -> None:
    """The raw side's enqueue into ``create_raw_queue``'s table: binary COPY."""
    records = [(e.id, stream, e.type, e.data, dict(e.metadata), e.correlation_id) for e in events]
    status = await conn.copy_records_to_table(
        RAW_QUEUE_TABLE, records=records, columns=RAW_QUEUE_COPY_COLUMNS, schema_name=schema
    )
    expect("raw COPY status", status, f"COPY {len(records)}")


def raw_dequeue_sql(table: str, limit: int) -> str:
    """The raw side's dequeue: one ``UPDATE … SKIP LOCKED … RETURNING`` that leases up to
    ``limit`` visible messages of stream ``$1`` to consumer ``$2``."""
    return (
        f"UPDATE {table} SET delivery_attempts = delivery_attempts + 1, "
        "lease_token = gen_random_uuid(), consumer_id = $2, leased_at = now(), "
        "visible_at = now() + interval '30 seconds' "
        f"WHERE id IN (SELECT id FROM {table} WHERE stream_name = $1 AND visible_at <= now() "
        f"ORDER BY seq LIMIT {limit} FOR UPDATE SKIP LOCKED) "
        f"RETURNING {QUEUE_RETURNING_COLUMNS}"
    )


class StoreAppender:
    """pgstreams ``append_batch``, rotating over streams, checking the offsets it gets back."""

    def __init__(
        self, store: PostgresEventStore, streams: Sequence[str], batch: int, payloads: Payloads
    ) -> None:
        self.store = store
        self.streams = streams
        self.batch = batch
        self.payloads = payloads
        self.turn = 0
        self.next_offset = dict.fromkeys(streams, 0)
        self.appended = 0

    async def step(self) -> int:
        stream = self.streams[self.turn % len(self.streams)]
        self.turn += 1
        events = make_events(self.payloads.take(self.batch), f"corr-{self.turn}")
        offsets = await self.store.append_batch(stream, events)
        expected = self.next_offset[stream]
        if len(offsets) != len(events) or offsets[0] != expected:
            raise BenchmarkError(
                f"append_batch to {stream} returned offsets {offsets[:3]}..., expected {expected}.."
            )
        self.next_offset[stream] = expected + len(events)
        self.appended += len(events)
        return len(events)


class CopyAppender:
    """Raw binary COPY into an ``events`` table, offsets computed client side."""

    def __init__(
        self,
        conn: Any,
        schema: str,
        streams: Sequence[str],
        batch: int,
        payloads: Payloads,
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.streams = streams
        self.batch = batch
        self.payloads = payloads
        self.turn = 0
        self.next_offset = dict.fromkeys(streams, 0)
        self.appended = 0

    async def step(self) -> int:
        stream = self.streams[self.turn % len(self.streams)]
        self.turn += 1
        correlation_id = f"corr-{self.turn}"
        base = self.next_offset[stream]
        records = [
            (stream, base + k, new_event_id(), EVENT_TYPE, p, METADATA, correlation_id)
            for k, p in enumerate(self.payloads.take(self.batch))
        ]
        status = await self.conn.copy_records_to_table(
            "events", records=records, columns=EVENT_COPY_COLUMNS, schema_name=self.schema
        )
        expect("COPY status", status, f"COPY {len(records)}")
        self.next_offset[stream] = base + len(records)
        self.appended += len(records)
        return len(records)


async def preload_queues(
    payloads: Payloads,
    store: PostgresEventStore,
    admin: Any,
    sides: tuple[str, str, str],
    stream: str,
    messages: int,
) -> None:
    """Enqueues the same ``messages`` on both sides of a queue benchmark (pgstreams through
    ``enqueue_batch``, the raw side into its hand-made table), then analyzes both tables.
    ``sides``: pgstreams' schema, the raw side's schema, the raw queue table."""
    ps_schema, raw_schema, raw_table = sides
    for start in range(0, messages, ENQUEUE_BATCH):
        chunk = min(ENQUEUE_BATCH, messages - start)
        events = make_events(payloads.take(chunk), f"job-{start}")
        await store.enqueue_batch(stream, events)
        await raw_enqueue(admin, raw_schema, stream, events)
    for table in (f'"{ps_schema}".queue_events', raw_table):
        await admin.execute(f"VACUUM ANALYZE {table}")


async def load_stream(conn: Any, schema: str, stream: str, count: int, payloads: Payloads) -> None:
    """Writes ``count`` events into ``stream`` by raw COPY (fast, outside what is timed), sets
    its version row as an append would, and analyzes the table."""
    loader = CopyAppender(conn, schema, [stream], 5000, payloads)
    while loader.appended < count:
        loader.batch = min(5000, count - loader.appended)
        await loader.step()
    await conn.execute(
        f'INSERT INTO "{schema}".streams (stream_name, version) VALUES ($1, $2)', stream, count - 1
    )
    await conn.execute(f'VACUUM ANALYZE "{schema}".events')
