"""``eventsourcing``: the eventsourcing library's recorders on pgstreams
(``pgstreams.eventsourcing``) next to its own PostgreSQL recorders (psycopg 3), on the same
server, called the way an eventsourcing application calls them: synchronously, from threads.

The cases are those the library's own recorder tests time: one event per insert (aggregate,
application and process recorders, the last with a tracking record), several threads inserting
batches of 50 events of new aggregates at once, and two reads (an aggregate's events; the
notification log a page at a time). Both sides use their defaults (eventsourcing's pool of 5
+ 10 connections, pgstreams' pool of up to 100); ratios are pgstreams / eventsourcing.

Needs the ``bench`` extra (eventsourcing with psycopg); they are imported when the workload
runs, never when the benchmarks are listed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from ..errors import BenchmarkError, require
from ..results import BenchResult, rate_result
from ..runner import Run, Scope

NAME: Final = "eventsourcing"
ORDER: Final = 80

TOPIC: Final = "bench.domain:Account.Credited"
THREADS: Final = 4
BATCH: Final = 50  # events per insert in the concurrent case (the library's own test's)
AGGREGATE_EVENTS: Final = 10
AGGREGATES_READ: Final = 100
PAGE: Final = 100
RAW_LABEL: Final = "eventsourcing's own PostgreSQL recorders (psycopg 3), same server"

Step = Callable[[], int]


def timed(step: Step, seconds: float, cap: int) -> tuple[int, float]:
    """Runs ``step`` until ``seconds`` passed or ``cap`` units were done (at least once)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += step()
        now = time.perf_counter()
        if now >= deadline or done >= cap:
            return done, now - start


def timed_together(steps: list[Step], seconds: float, cap: int) -> tuple[int, float]:
    """Runs each step in a thread of its own until the shared deadline or cap."""
    lock = threading.Lock()
    total = 0
    start = time.perf_counter()
    deadline = start + seconds

    def worker(step: Step) -> None:
        nonlocal total
        while True:
            done = step()
            with lock:
                total += done
                if time.perf_counter() >= deadline or total >= cap:
                    return

    with ThreadPoolExecutor(len(steps)) as pool:
        for future in [pool.submit(worker, step) for step in steps]:
            future.result()
    return total, time.perf_counter() - start


class Side:
    """One side's recorders and the steps of each case over them (run in threads)."""

    def __init__(self, factory: Any, states: list[bytes]) -> None:
        from eventsourcing.persistence import StoredEvent, Tracking

        self.stored_event, self.tracking = StoredEvent, Tracking
        self.factory = factory
        self.aggregates = factory.aggregate_recorder(purpose="aggregates")
        self.application = factory.application_recorder()
        self.process = factory.process_recorder()
        self.states = itertools.cycle(states)
        self.notification_ids = itertools.count(1)
        self.read_ids: list[uuid.UUID] = []
        self.next_read = 0
        self.last_page = 0

    def new_event(self, originator_id: uuid.UUID | None = None, version: int = 1) -> Any:
        return self.stored_event(originator_id or uuid.uuid4(), version, TOPIC, next(self.states))

    def aggregate_insert(self) -> int:
        self.aggregates.insert_events([self.new_event()])
        return 1

    def application_insert(self) -> int:
        ids = self.application.insert_events([self.new_event()])
        if ids is None or len(ids) != 1:
            raise BenchmarkError(f"an application insert returned notification ids {ids!r}")
        return 1

    def process_insert(self) -> int:
        tracking = self.tracking("upstream", next(self.notification_ids))
        self.process.insert_events([self.new_event()], tracking=tracking)
        return 1

    def batch_insert(self) -> int:
        originator_id = uuid.uuid4()
        events = [self.new_event(originator_id, v) for v in range(1, BATCH + 1)]
        ids = self.application.insert_events(events)
        if ids is None or len(ids) != BATCH:
            raise BenchmarkError(f"a batch of {BATCH} got {0 if ids is None else len(ids)} ids")
        return BATCH

    def load_aggregates(self) -> None:
        for _ in range(AGGREGATES_READ):
            originator_id = uuid.uuid4()
            self.aggregates.insert_events(
                [self.new_event(originator_id, v) for v in range(1, AGGREGATE_EVENTS + 1)]
            )
            self.read_ids.append(originator_id)

    def read_aggregate(self) -> int:
        originator_id = self.read_ids[self.next_read % len(self.read_ids)]
        self.next_read += 1
        events = self.aggregates.select_events(originator_id)
        if len(events) != AGGREGATE_EVENTS or events[-1].originator_version != AGGREGATE_EVENTS:
            raise BenchmarkError(f"select_events gave {len(events)} events")
        return 1

    def read_page(self) -> int:
        page = self.application.select_notifications(self.last_page, PAGE, inclusive_of_start=False)
        if not page:  # the end of the log: from the start again
            self.last_page = 0
            page = self.application.select_notifications(0, PAGE, inclusive_of_start=False)
            if not page:
                raise BenchmarkError("the notification log is empty")
        self.last_page = page[-1].id
        return len(page)

    def close(self) -> None:
        self.factory.close()


def _states(bench: Run, count: int) -> list[bytes]:
    """Serialized event states as the library's JSON transcoder makes them: compact JSON."""
    payloads = bench.payloads().take(count)
    return [json.dumps(p, separators=(",", ":")).encode() for p in payloads]


def _eventsourcing_factory(bench: Run, schema: str) -> Any:
    from eventsourcing.postgres import PostgresFactory

    config = bench.options.to_core_config()
    return PostgresFactory(
        {
            "POSTGRES_DBNAME": config["database"],
            "POSTGRES_HOST": config["host"],
            "POSTGRES_PORT": str(config["port"]),
            "POSTGRES_USER": config["user"],
            "POSTGRES_PASSWORD": config["password"] or "",
            "POSTGRES_SCHEMA": schema,
        }
    )


def _pgstreams_factory(bench: Run, schema: str) -> Any:
    from ...eventsourcing import PgStreamsFactory

    return PgStreamsFactory({"PGSTREAMS_DSN": bench.dsn, "PGSTREAMS_SCHEMA": schema})


async def run(bench: Run) -> list[BenchResult]:
    require("eventsourcing")
    require("psycopg")
    bench.say("eventsourcing: its recorders on pgstreams and on its own PostgreSQL module")
    s = bench.settings
    # Shorter reps than the other workloads: six cases, two sides each, in a few seconds.
    rep_seconds = max(0.1, s.rep_seconds / 5)
    repetitions = min(s.repetitions, 3)
    cap = s.max_events_per_rep
    states = _states(bench, 1000)
    async with Scope(bench) as scope:
        ps_schema = scope.schema("es_ps")
        es_schema = scope.schema("es_es")
        conn = await scope.raw()
        await conn.execute(f'CREATE SCHEMA "{es_schema}"')
        pgstreams = await asyncio.to_thread(
            lambda: Side(_pgstreams_factory(bench, ps_schema), states)
        )
        try:
            library = await asyncio.to_thread(
                lambda: Side(_eventsourcing_factory(bench, es_schema), states)
            )
            try:
                sides = {"pgstreams": pgstreams, "eventsourcing": library}
                for side in sides.values():
                    await asyncio.to_thread(side.load_aggregates)
                return await _measure_cases(sides, rep_seconds, repetitions, cap)
            finally:
                await asyncio.to_thread(library.close)
        finally:
            await asyncio.to_thread(pgstreams.close)


async def _measure_cases(
    sides: dict[str, Side], rep_seconds: float, repetitions: int, cap: int
) -> list[BenchResult]:
    cases: list[tuple[str, str, Callable[[Side], Callable[[float], tuple[int, float]]]]] = [
        (
            "aggregate insert, 1 event",
            "inserts/s",
            lambda side: lambda secs: timed(side.aggregate_insert, secs, cap),
        ),
        (
            "application insert, 1 event",
            "inserts/s",
            lambda side: lambda secs: timed(side.application_insert, secs, cap),
        ),
        (
            "process insert, 1 event + tracking",
            "inserts/s",
            lambda side: lambda secs: timed(side.process_insert, secs, cap),
        ),
        (
            f"{THREADS} threads, inserts of {BATCH} events",
            "ev/s",
            lambda side: lambda secs: timed_together([side.batch_insert] * THREADS, secs, cap),
        ),
        (
            f"select_events, aggregates of {AGGREGATE_EVENTS}",
            "reads/s",
            lambda side: lambda secs: timed(side.read_aggregate, secs, cap),
        ),
        (
            f"select_notifications, pages of {PAGE}",
            "ev/s",
            lambda side: lambda secs: timed(side.read_page, secs, cap),
        ),
    ]
    results = []
    for case, unit, rep_of_side in cases:
        reps = [(name, rep_of_side(side)) for name, side in sides.items()]
        rates = await _rates(reps, rep_seconds, repetitions)
        results.append(
            rate_result(
                NAME, case, unit, rates["pgstreams"], rates["eventsourcing"], RAW_LABEL, None
            )
        )
    return results


async def _rates(
    reps: list[tuple[str, Callable[[float], tuple[int, float]]]],
    rep_seconds: float,
    repetitions: int,
) -> dict[str, list[float]]:
    """A warm-up of each side, then timed reps, rotating which side goes first (as
    ``Run.measure_rates``, with this workload's shorter reps), each in a worker thread."""
    for _, rep in reps:
        await asyncio.to_thread(rep, min(0.1, rep_seconds))
    rates: dict[str, list[float]] = {name: [] for name, _ in reps}
    for index in range(repetitions):
        shift = index % len(reps)
        for name, rep in [*reps[shift:], *reps[:shift]]:
            done, elapsed = await asyncio.to_thread(rep, rep_seconds)
            rates[name].append(done / elapsed)
    return rates
