"""``queue``: concurrent consumers draining a queue with ``dequeue_batch`` (acks folded into the
next dequeue) against raw ``UPDATE … SKIP LOCKED RETURNING`` + ``DELETE``; exactly-once checked."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

from ...events import QueuedEvent
from ..results import BenchResult, rate_result
from ..runner import Run, Scope, expect
from ._shared import QueueBench

NAME: Final = "queue"
ORDER: Final = 30

QUEUE_CONSUMERS: Final = 4
QUEUE_BATCH: Final = 100


async def run(bench: Run) -> list[BenchResult]:
    s = bench.settings
    async with Scope(bench) as scope:
        q = await QueueBench.open(bench, scope, "q", QUEUE_CONSUMERS, QUEUE_BATCH)
        store, stream, conns = q.store, q.stream, q.conns
        dequeue_sql, ack_sql = q.dequeue_sql, q.ack_sql

        async def drain_pgstreams(_messages: int) -> list[uuid.UUID]:
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

        async def drain_raw(_messages: int) -> list[uuid.UUID]:
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

        rates = await q.compare("queue", drain_pgstreams, drain_raw)

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
