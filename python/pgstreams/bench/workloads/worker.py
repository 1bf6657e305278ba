"""``worker``: queue workers (``store.run_worker``: leases, concurrent handlers, acks folded
into the next dequeue) against the loop a user writes by hand with asyncpg (lease a batch with
``UPDATE … SKIP LOCKED RETURNING``, run the handlers, ``DELETE`` the batch), each side with the
same number of consumers and the same trivial async handler; every message handled once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Final

from ...events import QueuedEvent
from ..results import BenchResult, rate_result
from ..runner import Run, Scope, expect
from ._shared import QueueBench

NAME: Final = "worker"
ORDER: Final = 33

WORKERS: Final = 4
BATCH: Final = 100


async def handle(_data: Any) -> None:
    """The handler both sides run per message: it yields once, as real async work does."""
    await asyncio.sleep(0)


async def run(bench: Run) -> list[BenchResult]:
    s = bench.settings
    async with Scope(bench) as scope:
        q = await QueueBench.open(bench, scope, "w", WORKERS, BATCH)
        store, stream, conns = q.store, q.stream, q.conns
        dequeue_sql, ack_sql = q.dequeue_sql, q.ack_sql

        async def drain_pgstreams(messages: int) -> list[uuid.UUID]:
            seen: list[uuid.UUID] = []
            workers: list[Any] = []

            async def handler(message: QueuedEvent) -> None:
                await handle(message.data)
                seen.append(message.id)
                if len(seen) == messages:
                    for worker in workers:
                        worker.stop()

            for index in range(WORKERS):
                workers.append(
                    store.worker(
                        stream,
                        handler,
                        consumer_id=f"w{index}",
                        concurrency=BATCH,
                        batch_size=BATCH,
                        poll_wait=0.05,
                    )
                )
            await asyncio.gather(*(worker.run() for worker in workers))
            return seen

        async def drain_raw(messages: int) -> list[uuid.UUID]:
            seen: list[uuid.UUID] = []

            async def consumer(index: int, conn: Any) -> None:
                while True:
                    rows = await conn.fetch(dequeue_sql, stream, f"c{index}")
                    await asyncio.gather(*(handle(row["data"]) for row in rows))
                    ids = [row["id"] for row in rows]
                    seen.extend(ids)
                    if ids:
                        status = await conn.execute(ack_sql, ids)
                        expect("raw DELETE status", status, f"DELETE {len(ids)}")
                    if len(rows) < BATCH:
                        return

            async with asyncio.TaskGroup() as group:
                for index, conn in enumerate(conns):
                    group.create_task(consumer(index, conn))
            return seen

        rates = await q.compare("worker", drain_pgstreams, drain_raw)

    return [
        rate_result(
            "worker",
            f"{WORKERS} workers, batches of {BATCH}, trivial async handler",
            "msg/s",
            rates["pgstreams"],
            rates["raw"],
            "hand-written asyncpg lease/handle/DELETE loop",
            None,
            notes=f"{s.queue_messages:,} messages per rep; workers fold acks into the next lease",
        )
    ]
