"""``append_batch``: pgstreams' ``append_batch`` of 1, 100 and 1000 events (and 1000 without the
GIN index) against binary COPY into pgstreams' own table and into the seed's reference table."""

from __future__ import annotations

from typing import Any, Final

from ..errors import BenchmarkError
from ..results import BenchResult, rate_result
from ..runner import Rep, Run, Scope, count_rows, expect, rep_of
from ._shared import CopyAppender, StoreAppender

NAME: Final = "append_batch"
ORDER: Final = 10

APPEND_BATCH_SIZES: Final = (1, 100, 1000)
APPEND_STREAMS: Final = 10


async def run(bench: Run) -> list[BenchResult]:
    results: list[BenchResult] = []
    for batch in APPEND_BATCH_SIZES:
        results.extend(await _append_variant(bench, batch, gin=True))
    results.extend(await _append_variant(bench, 1000, gin=False))
    return results


async def _append_variant(bench: Run, batch: int, *, gin: bool) -> list[BenchResult]:
    label = f"batch {batch}" + ("" if gin else ", no GIN")
    bench.say(f"append_batch: {label}")
    cap = bench.settings.max_events_per_rep
    streams = [f"orders-{i}" for i in range(APPEND_STREAMS)]
    tag = f"{batch}{'' if gin else 'ng'}"
    async with Scope(bench) as scope:
        ps_schema = scope.schema(f"app{tag}_ps")
        own_schema = scope.schema(f"app{tag}_own")
        store = await scope.store(ps_schema, event_data_index=gin)
        migrator_store = await scope.store(own_schema)
        await migrator_store.close()
        own = await scope.raw()
        if not gin:
            await own.execute(f'DROP INDEX "{own_schema}".events_data_idx')
        ps_has_gin = await _has_data_index(own, ps_schema)
        if ps_has_gin != gin:
            raise BenchmarkError(
                f"event_data_index={gin} but the GIN index is {'present' if ps_has_gin else 'gone'}"
            )
        ps_side = StoreAppender(store, streams, batch, bench.payloads())
        own_side = CopyAppender(own, own_schema, streams, batch, bench.payloads())
        sides: list[tuple[str, Rep]] = [
            ("pgstreams", rep_of(ps_side.step, cap)),
            ("raw_own", rep_of(own_side.step, cap)),
        ]
        seed_side: CopyAppender | None = None
        seed_schema = ""
        if gin:
            seed_schema = scope.schema(f"app{tag}_seed")
            seed = await scope.raw()
            await _create_seed_table(seed, seed_schema)
            seed_side = CopyAppender(seed, seed_schema, streams, batch, bench.payloads())
            sides.append(("raw_seed", rep_of(seed_side.step, cap)))

        rates = await bench.measure_rates(sides)

        expect(
            "pgstreams events stored",
            await count_rows(own, f'SELECT count(*) FROM "{ps_schema}".events'),
            ps_side.appended,
        )
        expect(
            "pgstreams stream versions",
            await count_rows(
                own, f'SELECT coalesce(sum(version + 1), 0) FROM "{ps_schema}".streams'
            ),
            ps_side.appended,
        )
        expect(
            "raw events stored (own table)",
            await count_rows(own, f'SELECT count(*) FROM "{own_schema}".events'),
            own_side.appended,
        )
        if seed_side is not None:
            expect(
                "raw events stored (seed table)",
                await count_rows(own, f'SELECT count(*) FROM "{seed_schema}".events'),
                seed_side.appended,
            )

    gin_note = "" if gin else " (no GIN)"
    results = [
        rate_result(
            "append_batch",
            f"{label} vs raw own table",
            "ev/s",
            rates["pgstreams"],
            rates["raw_own"],
            f"asyncpg COPY into pgstreams' events{gin_note}",
            1.0,
        )
    ]
    if "raw_seed" in rates:
        results.append(
            rate_result(
                "append_batch",
                f"{label} vs raw seed table",
                "ev/s",
                rates["pgstreams"],
                rates["raw_seed"],
                "asyncpg COPY into the seed table (GIN jsonb_ops)",
                1.25,
            )
        )
    return results


async def _create_seed_table(conn: Any, schema: str) -> None:
    """The seed's reference table: B-trees on correlation id, type, time; GIN jsonb_ops."""
    s = f'"{schema}"'
    await conn.execute(
        f"""
        CREATE SCHEMA {s};
        CREATE TABLE {s}.events (
            id bigserial PRIMARY KEY,
            stream_name text,
            stream_offset bigint,
            event_id uuid UNIQUE,
            event_type text,
            data jsonb,
            metadata jsonb,
            correlation_id text,
            causation_id text,
            created_at timestamptz DEFAULT now(),
            UNIQUE (stream_name, stream_offset)
        );
        CREATE INDEX ON {s}.events (correlation_id);
        CREATE INDEX ON {s}.events (event_type);
        CREATE INDEX ON {s}.events (created_at);
        CREATE INDEX ON {s}.events USING gin (data);
        """
    )


async def _has_data_index(conn: Any, schema: str) -> bool:
    found = await conn.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'events_data_idx'",
        schema,
    )
    return bool(found)
