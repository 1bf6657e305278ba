"""``enqueue_batch``: pgstreams' ``enqueue_batch`` of 1000 against binary COPY of the same rows
into ``queue_events``."""

from __future__ import annotations

from typing import Final

from ...events import new_event_id
from ..payloads import EVENT_TYPE, METADATA, make_events
from ..results import BenchResult, rate_result
from ..runner import Run, Scope, count_rows, expect, rep_of
from ._shared import ENQUEUE_BATCH

NAME: Final = "enqueue_batch"
ORDER: Final = 40

QUEUE_COPY_COLUMNS: Final = (
    "id",
    "stream_name",
    "event_type",
    "data",
    "metadata",
    "correlation_id",
)


async def run(bench: Run) -> list[BenchResult]:
    bench.say("enqueue_batch")
    stream = "jobs"
    cap = bench.settings.max_events_per_rep
    async with Scope(bench) as scope:
        ps_schema = scope.schema("enq_ps")
        raw_schema = scope.schema("enq_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # migrates the raw side's schema
        conn = await scope.raw()
        ps_payloads, raw_payloads = bench.payloads(), bench.payloads()
        counts = {"pgstreams": 0, "raw": 0}

        async def ps_step() -> int:
            events = make_events(ps_payloads.take(ENQUEUE_BATCH), "enqueue")
            ids = await store.enqueue_batch(stream, events)
            expect("ids returned", len(ids), ENQUEUE_BATCH)
            counts["pgstreams"] += ENQUEUE_BATCH
            return ENQUEUE_BATCH

        async def raw_step() -> int:
            records = [
                (new_event_id(), stream, EVENT_TYPE, p, METADATA, "enqueue")
                for p in raw_payloads.take(ENQUEUE_BATCH)
            ]
            status = await conn.copy_records_to_table(
                "queue_events", records=records, columns=QUEUE_COPY_COLUMNS, schema_name=raw_schema
            )
            expect("COPY status", status, f"COPY {ENQUEUE_BATCH}")
            counts["raw"] += ENQUEUE_BATCH
            return ENQUEUE_BATCH

        rates = await bench.measure_rates(
            [("pgstreams", rep_of(ps_step, cap)), ("raw", rep_of(raw_step, cap))]
        )
        for name, schema in (("pgstreams", ps_schema), ("raw", raw_schema)):
            stored = await count_rows(conn, f'SELECT count(*) FROM "{schema}".queue_events')
            expect(f"{name} messages queued", stored, counts[name])

    return [
        rate_result(
            "enqueue_batch",
            f"batch {ENQUEUE_BATCH}",
            "msg/s",
            rates["pgstreams"],
            rates["raw"],
            "asyncpg COPY into queue_events",
            0.9,
        )
    ]
