"""What several workloads share: the raw side's SQL pieces and the two appenders.

Not a workload itself (the leading underscore keeps discovery away from it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ...events import Event, new_event_id
from ...postgres import PostgresEventStore
from ..errors import BenchmarkError
from ..payloads import EVENT_TYPE, METADATA, Payloads, make_events
from ..runner import Run, Scope, count_rows, expect

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


@dataclass
class QueueBench:
    """Both sides of a queue benchmark: pgstreams' store and the raw side's hand-made table,
    a raw connection per consumer, and the raw dequeue/ack statements for batches of ``batch``."""

    bench: Run
    stream: str
    store: PostgresEventStore
    admin: Any
    conns: list[Any]
    ps_schema: str
    raw_schema: str
    raw_table: str
    dequeue_sql: str
    ack_sql: str

    @classmethod
    async def open(
        cls, bench: Run, scope: Scope, tag: str, consumers: int, batch: int
    ) -> QueueBench:
        ps_schema, raw_schema = scope.schema(f"{tag}_ps"), scope.schema(f"{tag}_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # creates the raw side's schema
        admin = await scope.raw()
        conns = [await scope.raw() for _ in range(consumers)]
        table = await create_raw_queue(admin, raw_schema)
        return cls(
            bench,
            "jobs",
            store,
            admin,
            conns,
            ps_schema,
            raw_schema,
            table,
            raw_dequeue_sql(table, batch),
            f"DELETE FROM {table} WHERE id = ANY($1::uuid[])",
        )

    async def preload(self, messages: int) -> None:
        """Enqueues the same ``messages`` on both sides (pgstreams through ``enqueue_batch``,
        the raw side into its table), then analyzes both tables."""
        payloads = self.bench.payloads()
        for start in range(0, messages, ENQUEUE_BATCH):
            chunk = min(ENQUEUE_BATCH, messages - start)
            events = make_events(payloads.take(chunk), f"job-{start}")
            await self.store.enqueue_batch(self.stream, events)
            await raw_enqueue(self.admin, self.raw_schema, self.stream, events)
        for table in (f'"{self.ps_schema}".queue_events', self.raw_table):
            await self.admin.execute(f"VACUUM ANALYZE {table}")

    async def compare(
        self,
        name: str,
        drain_pgstreams: Callable[[int], Awaitable[list[uuid.UUID]]],
        drain_raw: Callable[[int], Awaitable[list[uuid.UUID]]],
    ) -> dict[str, list[float]]:
        """Drains a preloaded queue with each side in turn (order rotating), every message
        delivered once and none left; returns each side's rates (msg/s), warm-up left out."""
        sides = [
            ("pgstreams", f'"{self.ps_schema}".queue_events', drain_pgstreams),
            ("raw", self.raw_table, drain_raw),
        ]
        settings = self.bench.settings
        rates: dict[str, list[float]] = {"pgstreams": [], "raw": []}
        for index in range(settings.queue_repetitions + 1):  # the first is the warm-up
            messages = min(1000, settings.queue_messages) if index == 0 else settings.queue_messages
            self.bench.say(f"{name}: rep {index}, {messages:,} messages")
            await self.preload(messages)
            shift = index % 2
            for side, table, drain in [*sides[shift:], *sides[:shift]]:
                start = time.perf_counter()
                seen = await drain(messages)
                elapsed = time.perf_counter() - start
                expect(f"{side} messages delivered", len(seen), messages)
                expect(f"{side} distinct messages", len(set(seen)), messages)
                left = await count_rows(self.admin, f"SELECT count(*) FROM {table}")
                expect(f"{side} messages left after acks", left, 0)
                if index:
                    rates[side].append(messages / elapsed)
        return rates


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
