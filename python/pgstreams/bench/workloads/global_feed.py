"""``global_feed``: 1 appender against 4 concurrent ones on one store, next to raw COPY on 1 and
4 connections; the ``scaling`` row shows what the global append lock costs concurrent writers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..results import BenchResult, rate_result
from ..runner import Rep, Run, Scope, Step, concurrent_rep, count_rows, expect, rep_of
from ._shared import CopyAppender, StoreAppender

NAME: Final = "global_feed"
ORDER: Final = 70

FEED_APPENDERS: Final = 4
FEED_BATCH: Final = 100


async def run(bench: Run) -> list[BenchResult]:
    bench.say("global_feed")
    cap = bench.settings.max_events_per_rep
    async with Scope(bench) as scope:
        ps_schema = scope.schema("feed_ps")
        raw_schema = scope.schema("feed_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # migrates the raw side's schema
        conns = [await scope.raw() for _ in range(FEED_APPENDERS)]
        ps_sides = [
            StoreAppender(store, [f"feed-{i}"], FEED_BATCH, bench.payloads())
            for i in range(FEED_APPENDERS)
        ]
        raw_sides = [
            CopyAppender(conns[i], raw_schema, [f"feed-{i}"], FEED_BATCH, bench.payloads())
            for i in range(FEED_APPENDERS)
        ]

        def concurrent(steps: Sequence[Step]) -> Rep:
            async def rep(seconds: float) -> tuple[int, float]:
                return await concurrent_rep(steps, seconds, cap)

            return rep

        rates = await bench.measure_rates(
            [
                ("pgstreams_1", rep_of(ps_sides[0].step, cap)),
                ("raw_1", rep_of(raw_sides[0].step, cap)),
                ("pgstreams_4", concurrent([a.step for a in ps_sides])),
                ("raw_4", concurrent([a.step for a in raw_sides])),
            ]
        )
        for name, schema, appenders in (
            ("pgstreams", ps_schema, ps_sides),
            ("raw", raw_schema, raw_sides),
        ):
            stored = await count_rows(conns[0], f'SELECT count(*) FROM "{schema}".events')
            expect(f"{name} events stored", stored, sum(a.appended for a in appenders))

    def scaling(name: str) -> list[float]:
        return [
            four / one for one, four in zip(rates[f"{name}_1"], rates[f"{name}_4"], strict=True)
        ]

    ps_scaling, raw_scaling = scaling("pgstreams"), scaling("raw")
    raw_label = "asyncpg COPY into pgstreams' events (no global lock)"
    return [
        rate_result(
            "global_feed",
            f"1 appender, batch {FEED_BATCH}",
            "ev/s",
            rates["pgstreams_1"],
            rates["raw_1"],
            raw_label,
            None,
        ),
        rate_result(
            "global_feed",
            f"{FEED_APPENDERS} appenders, {FEED_APPENDERS} streams",
            "ev/s",
            rates["pgstreams_4"],
            rates["raw_4"],
            raw_label,
            None,
        ),
        rate_result(
            "global_feed",
            f"scaling {FEED_APPENDERS} vs 1 appender",
            "x",
            ps_scaling,
            raw_scaling,
            "the same scaling of raw COPY",
            None,
            notes="total rate with 4 appenders / rate with 1: the cost of the global append lock",
        ),
    ]
