"""``queue``: concurrent consumers draining a queue with ``dequeue_batch`` (acks folded into the
next dequeue) against raw ``UPDATE … SKIP LOCKED RETURNING`` + ``DELETE``; exactly-once checked."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ...events import QueuedEvent
from ..results import BenchResult, rate_result
from ..runner import Run, Scope, count_rows, expect
from ._shared import create_raw_queue, preload_queues, raw_dequeue_sql

NAME: Final = "queue"
ORDER: Final = 30

QUEUE_CONSUMERS: Final = 4
QUEUE_BATCH: Final = 100


async def run(bench: Run) -> list[BenchResult]:
    s = bench.settings
    stream = "jobs"
    async with Scope(bench) as scope:
        ps_schema = scope.schema("q_ps")
        raw_schema = scope.schema("q_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # creates the raw side's schema
        admin = await scope.raw()
        conns = [await scope.raw() for _ in range(QUEUE_CONSUMERS)]
        qt = await create_raw_queue(admin, raw_schema)
        dequeue_sql = raw_dequeue_sql(qt, QUEUE_BATCH)
        ack_sql = f"DELETE FROM {qt} WHERE id = ANY($1::uuid[])"

        async def preload(messages: int) -> None:
            sides = (ps_schema, raw_schema, qt)
            await preload_queues(bench.payloads(), store, admin, sides, stream, messages)

        async def drain_pgstreams() -> list[uuid.UUID]:
            seen: list[uuid.UUID] = []

            async def consumer(index: int) -> None:
                previous: list[QueuedEvent] = []
                while True:
                    batch = await store.dequeue_batch(
                        stream, f"c{index}", QUEUE_BATCH, acknowledge=previous or None
                    )
                    seen.extend(m.id for m in batch)
                    for message in batch:
                        _ = message.data
                    if len(batch) < QUEUE_BATCH:
                        if batch:
                            acked = await store.acknowledge_batch(batch)
                            expect("pgstreams final acknowledge_batch", acked, len(batch))
                        return
                    previous = batch

            async with asyncio.TaskGroup() as group:
                for index in range(QUEUE_CONSUMERS):
                    group.create_task(consumer(index))
            return seen

        async def drain_raw() -> list[uuid.UUID]:
            seen: list[uuid.UUID] = []

            async def consumer(index: int, conn: Any) -> None:
                while True:
                    rows = await conn.fetch(dequeue_sql, stream, f"c{index}")
                    ids = [row["id"] for row in rows]
                    seen.extend(ids)
                    for row in rows:
                        _ = row["data"]
                    if ids:
                        status = await conn.execute(ack_sql, ids)
                        expect("raw DELETE status", status, f"DELETE {len(ids)}")
                    if len(rows) < QUEUE_BATCH:
                        return

            async with asyncio.TaskGroup() as group:
                for index, conn in enumerate(conns):
                    group.create_task(consumer(index, conn))
            return seen

        sides: list[tuple[str, str, Callable[[], Awaitable[list[uuid.UUID]]]]] = [
            ("pgstreams", f'"{ps_schema}".queue_events', drain_pgstreams),
            ("raw", qt, drain_raw),
        ]
        rates: dict[str, list[float]] = {"pgstreams": [], "raw": []}
        for index in range(s.queue_repetitions + 1):  # the first is the warm-up
            messages = min(1000, s.queue_messages) if index == 0 else s.queue_messages
            bench.say(f"queue: rep {index}, {messages:,} messages")
            await preload(messages)
            shift = index % 2
            for name, table, drain in [*sides[shift:], *sides[:shift]]:
                start = time.perf_counter()
                seen = await drain()
                elapsed = time.perf_counter() - start
                expect(f"{name} messages delivered", len(seen), messages)
                expect(f"{name} distinct messages", len(set(seen)), messages)
                left = await count_rows(admin, f"SELECT count(*) FROM {table}")
                expect(f"{name} messages left after acks", left, 0)
                if index:
                    rates[name].append(messages / elapsed)

    return [
        rate_result(
            "queue",
            f"{QUEUE_CONSUMERS} consumers, dequeue_batch({QUEUE_BATCH}) + ack",
            "msg/s",
            rates["pgstreams"],
            rates["raw"],
            "UPDATE ... SKIP LOCKED RETURNING + DELETE = ANY",
            1.2,
            notes=f"{s.queue_messages:,} messages per rep; pgstreams folds acks into dequeue",
        )
    ]
