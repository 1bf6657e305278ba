"""``worker``: queue workers (``store.run_worker``: leases, concurrent handlers, acks folded
into the next dequeue) against the loop a user writes by hand with asyncpg (lease a batch with
``UPDATE … SKIP LOCKED RETURNING``, run the handlers, ``DELETE`` the batch), each side with the
same number of consumers and the same trivial async handler; every message handled once."""

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

NAME: Final = "worker"
ORDER: Final = 33

WORKERS: Final = 4
BATCH: Final = 100


async def handle(_data: Any) -> None:
    """The handler both sides run per message: it yields once, as real async work does."""
    await asyncio.sleep(0)


async def run(bench: Run) -> list[BenchResult]:
    s = bench.settings
    stream = "jobs"
    async with Scope(bench) as scope:
        ps_schema = scope.schema("w_ps")
        raw_schema = scope.schema("w_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # creates the raw side's schema
        admin = await scope.raw()
        conns = [await scope.raw() for _ in range(WORKERS)]
        qt = await create_raw_queue(admin, raw_schema)
        dequeue_sql = raw_dequeue_sql(qt, BATCH)
        ack_sql = f"DELETE FROM {qt} WHERE id = ANY($1::uuid[])"

        async def preload(messages: int) -> None:
            sides = (ps_schema, raw_schema, qt)
            await preload_queues(bench.payloads(), store, admin, sides, stream, messages)

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

        sides: list[tuple[str, str, Callable[[int], Awaitable[list[uuid.UUID]]]]] = [
            ("pgstreams", f'"{ps_schema}".queue_events', drain_pgstreams),
            ("raw", qt, drain_raw),
        ]
        rates: dict[str, list[float]] = {"pgstreams": [], "raw": []}
        for index in range(s.queue_repetitions + 1):  # the first is the warm-up
            messages = min(1000, s.queue_messages) if index == 0 else s.queue_messages
            bench.say(f"worker: rep {index}, {messages:,} messages")
            await preload(messages)
            shift = index % 2
            for name, table, drain in [*sides[shift:], *sides[:shift]]:
                start = time.perf_counter()
                seen = await drain(messages)
                elapsed = time.perf_counter() - start
                expect(f"{name} messages handled", len(seen), messages)
                expect(f"{name} distinct messages", len(set(seen)), messages)
                left = await count_rows(admin, f"SELECT count(*) FROM {table}")
                expect(f"{name} messages left after acks", left, 0)
                if index:
                    rates[name].append(messages / elapsed)

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
