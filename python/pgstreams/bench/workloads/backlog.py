"""``backlog``: dequeueing with a large backlog of delayed messages ahead of the visible ones
(enqueued first, due in an hour), and an empty poll behind the same backlog. pgstreams reads
only deliverable messages (its ready and waiting indexes); the raw side is the hand-written
dequeue on a hand-made table, whose one index in enqueue order walks the whole backlog."""

from __future__ import annotations

import time
from typing import Final

from ...events import QueuedEvent
from ..payloads import make_events
from ..results import BenchResult, latency_rows, rate_result
from ..runner import Run, Scope, alternating_samples, count_rows, expect
from ._shared import ENQUEUE_BATCH, create_raw_queue, raw_dequeue_sql, raw_enqueue

NAME: Final = "backlog"
ORDER: Final = 35

BATCH: Final = 100
VISIBLE: Final = 5_000
DELAY_SECONDS: Final = 3600.0


async def run(bench: Run) -> list[BenchResult]:
    delayed = bench.settings.backlog_delayed
    stream = "jobs"
    async with Scope(bench) as scope:
        ps_schema = scope.schema("bl_ps")
        raw_schema = scope.schema("bl_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)
        conn = await scope.raw()
        qt = await create_raw_queue(conn, raw_schema)
        payloads = bench.payloads()

        bench.say(f"backlog: {delayed:,} delayed messages ahead on each side")
        for start in range(0, delayed, ENQUEUE_BATCH):
            chunk = make_events(payloads.take(min(ENQUEUE_BATCH, delayed - start)), "later")
            await store.enqueue_batch(stream, chunk, delay=DELAY_SECONDS)
            await raw_enqueue(conn, raw_schema, stream, chunk)
        await conn.execute(f"UPDATE {qt} SET visible_at = now() + interval '1 hour'")
        dequeue_sql = raw_dequeue_sql(qt, BATCH)
        ack_sql = f"DELETE FROM {qt} WHERE id = ANY($1::uuid[])"

        async def load_visible() -> None:
            for start in range(0, VISIBLE, ENQUEUE_BATCH):
                chunk = make_events(payloads.take(min(ENQUEUE_BATCH, VISIBLE - start)), "now")
                await store.enqueue_batch(stream, chunk)
                await raw_enqueue(conn, raw_schema, stream, chunk)
            for table in (f'"{ps_schema}".queue_events', qt):
                await conn.execute(f"VACUUM ANALYZE {table}")

        async def drain_pgstreams() -> int:
            taken, previous = 0, list[QueuedEvent]()
            while True:
                batch = await store.dequeue_batch(stream, "c", BATCH, acknowledge=previous or None)
                taken += len(batch)
                if len(batch) < BATCH:
                    if batch:
                        expect("final ack", await store.acknowledge_batch(batch), len(batch))
                    return taken
                previous = batch

        async def drain_raw() -> int:
            taken = 0
            while True:
                rows = await conn.fetch(dequeue_sql, stream, "c")
                taken += len(rows)
                if rows:
                    await conn.execute(ack_sql, [row["id"] for row in rows])
                if len(rows) < BATCH:
                    return taken

        rates: dict[str, list[float]] = {"pgstreams": [], "raw": []}
        sides = [("pgstreams", drain_pgstreams), ("raw", drain_raw)]
        for rep in range(bench.settings.queue_repetitions):
            await load_visible()
            shift = rep % 2
            for name, drain in [*sides[shift:], *sides[:shift]]:
                began = time.perf_counter()
                taken = await drain()
                elapsed = time.perf_counter() - began
                expect(f"{name} messages drained", taken, VISIBLE)
                rates[name].append(VISIBLE / elapsed)

        async def ps_poll() -> float:
            began = time.perf_counter()
            batch = await store.dequeue_batch(stream, "c", BATCH)
            elapsed = time.perf_counter() - began
            expect("pgstreams empty poll", len(batch), 0)
            return elapsed * 1000

        async def raw_poll() -> float:
            began = time.perf_counter()
            rows = await conn.fetch(dequeue_sql, stream, "c")
            elapsed = time.perf_counter() - began
            expect("raw empty poll", len(rows), 0)
            return elapsed * 1000

        polls = await alternating_samples(
            [("pgstreams", ps_poll), ("raw", raw_poll)], bench.settings.latency_samples // 5, 10
        )
        for schema_table in (f'"{ps_schema}".queue_events', qt):
            left = await count_rows(conn, f"SELECT count(*) FROM {schema_table}")
            expect(f"{schema_table} delayed messages left", left, delayed)

    return [
        rate_result(
            "backlog",
            f"dequeue_batch({BATCH}) + ack, {delayed:,} delayed ahead",
            "msg/s",
            rates["pgstreams"],
            rates["raw"],
            "UPDATE ... SKIP LOCKED on (stream, seq) + DELETE",
            None,
            notes=f"{VISIBLE:,} visible messages per rep behind {delayed:,} delayed ones",
        ),
        *latency_rows(
            "backlog",
            f"empty poll, {delayed:,} delayed",
            polls,
            "the same UPDATE finding nothing",
        ),
    ]
