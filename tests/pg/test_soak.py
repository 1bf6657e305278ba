"""A bounded soak: appends, reads, enqueues and consumers all at once for a while (15 s in
CI; ``PGSTREAMS_SOAK_SECONDS`` for longer), with the process's memory and the store's server
connections sampled along the way. After a warm-up neither may keep growing: a leak of
objects, tasks or connections shows up here long before it does in production."""

from __future__ import annotations

import asyncio
import os
import uuid

import pgstreams
from pgstreams import Event, PostgresOptions
from support import run_sql

SECONDS = float(os.environ.get("PGSTREAMS_SOAK_SECONDS", "15"))
POOL = 6
MIB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def backends(dsn: str, application: str) -> int:
    rows = await run_sql(
        dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", [application]
    )
    return int(rows[0][0])


async def test_a_mixed_load_grows_neither_memory_nor_connections(
    pg_dsn: str, pg_options: PostgresOptions
) -> None:
    application = f"soak_{uuid.uuid4().hex[:8]}"
    dsn = f"{pg_dsn}{'&' if '?' in pg_dsn else '?'}application_name={application}"
    stop = asyncio.Event()
    counts = {"appended": 0, "read": 0, "enqueued": 0, "consumed": 0}
    async with pgstreams.connect(
        dsn, schema_name=pg_options.schema_name, max_pool_size=POOL
    ) as store:

        async def appender(number: int) -> None:
            while not stop.is_set():
                batch = [Event("Tick", {"n": i, "pad": "x" * 200}) for i in range(50)]
                await store.append_batch(f"stream-{number}-{counts['appended'] % 7}", batch)
                counts["appended"] += len(batch)

        async def reader() -> None:
            position = None
            while not stop.is_set():
                async for event in store.read_all(after_position=position, max_count=500):
                    position = event.position
                    counts["read"] += 1
                await asyncio.sleep(0.01)

        async def enqueuer() -> None:
            while not stop.is_set():
                await store.enqueue_batch("jobs", [Event("Job", {"n": i}) for i in range(100)])
                counts["enqueued"] += 100
                await asyncio.sleep(0.005)

        async def consumer(name: str) -> None:
            previous: list[pgstreams.QueuedEvent] = []
            while not stop.is_set():
                previous = await store.dequeue_batch(
                    "jobs", name, 50, wait=0.2, acknowledge=previous or None
                )
                counts["consumed"] += len(previous)
            if previous:
                await store.acknowledge_batch(previous)

        workers = [
            asyncio.create_task(work)
            for work in (
                appender(1),
                appender(2),
                reader(),
                enqueuer(),
                consumer("a"),
                consumer("b"),
            )
        ]
        memory: list[int] = []
        connections: list[int] = []
        samples = max(8, int(SECONDS))
        for _ in range(samples):
            await asyncio.sleep(SECONDS / samples)
            memory.append(rss_bytes())
            connections.append(await backends(pg_dsn, application))
        stop.set()
        await asyncio.gather(*workers)

    warm = len(memory) // 4
    # Growth after the warm-up, in MiB: the batches in flight are a few MiB at most.
    assert max(memory[warm:]) - memory[warm] < 40 * MIB, [m // MIB for m in memory]
    # The pool plus the LISTEN connection, never more, and no creeping count.
    assert max(connections) <= POOL + 1, connections
    assert connections[-1] <= max(connections[warm:]), connections
    assert min(counts.values()) > 0, counts
    # Everything closed with the store.
    for _ in range(100):
        if await backends(pg_dsn, application) == 0:
            break
        await asyncio.sleep(0.1)
    assert await backends(pg_dsn, application) == 0
