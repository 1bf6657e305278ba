"""``concurrent_appends``: commits per second of single ``append`` calls, from 1 coroutine and
from 16 at once on one store (group commit shares a transaction among the calls waiting
together), next to raw single-row ``INSERT``s from 1 and from 16 connections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ...events import Event, new_event_id
from ...postgres import PostgresEventStore
from ..errors import BenchmarkError
from ..payloads import EVENT_TYPE, METADATA, Payloads
from ..results import BenchResult, rate_result
from ..runner import Rep, Run, Scope, Step, concurrent_rep, count_rows, expect, rep_of
from ._shared import EVENT_COPY_COLUMNS

NAME: Final = "concurrent_appends"
ORDER: Final = 75

CALLERS: Final = 16
SCALING_GOAL: Final = 4.0


class SingleAppender:
    """One caller of ``store.append``, one event per call, on a stream of its own."""

    def __init__(self, store: PostgresEventStore, stream: str, payloads: Payloads) -> None:
        self.store, self.stream, self.payloads = store, stream, payloads
        self.appended = 0

    async def step(self) -> int:
        event = Event(EVENT_TYPE, self.payloads.take(1)[0], metadata=METADATA)
        offset = await self.store.append(self.stream, event)
        if offset != self.appended:
            raise BenchmarkError(f"append to {self.stream} gave {offset}, not {self.appended}")
        self.appended += 1
        return 1


class RawInserter:
    """One connection doing a single-row ``INSERT`` per call (offsets counted client side)."""

    def __init__(self, conn: Any, schema: str, stream: str, payloads: Payloads) -> None:
        self.conn, self.stream, self.payloads = conn, stream, payloads
        self.sql = (
            f'INSERT INTO "{schema}".events ({", ".join(EVENT_COPY_COLUMNS)}) '
            "VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        self.appended = 0

    async def step(self) -> int:
        await self.conn.execute(
            self.sql,
            self.stream,
            self.appended,
            new_event_id(),
            EVENT_TYPE,
            self.payloads.take(1)[0],
            METADATA,
            None,
        )
        self.appended += 1
        return 1


async def run(bench: Run) -> list[BenchResult]:
    bench.say(f"concurrent_appends: 1 and {CALLERS} callers of a single append")
    cap = bench.settings.max_events_per_rep
    async with Scope(bench) as scope:
        ps_schema = scope.schema("group_ps")
        raw_schema = scope.schema("group_raw")
        store = await scope.store(ps_schema, max_pool_size=CALLERS)
        await scope.store(raw_schema)  # migrates the raw side's schema
        conns = [await scope.raw() for _ in range(CALLERS)]
        ps_sides = [SingleAppender(store, f"one-{i}", bench.payloads()) for i in range(CALLERS)]
        raw_sides = [
            RawInserter(conns[i], raw_schema, f"one-{i}", bench.payloads()) for i in range(CALLERS)
        ]

        def together(steps: Sequence[Step]) -> Rep:
            async def rep(seconds: float) -> tuple[int, float]:
                return await concurrent_rep(steps, seconds, cap)

            return rep

        rates = await bench.measure_rates(
            [
                ("pgstreams_1", rep_of(ps_sides[0].step, cap)),
                ("raw_1", rep_of(raw_sides[0].step, cap)),
                ("pgstreams_n", together([a.step for a in ps_sides])),
                ("raw_n", together([a.step for a in raw_sides])),
            ]
        )
        for name, schema, sides in (
            ("pgstreams", ps_schema, ps_sides),
            ("raw", raw_schema, raw_sides),
        ):
            stored = await count_rows(conns[0], f'SELECT count(*) FROM "{schema}".events')
            expect(f"{name} events stored", stored, sum(side.appended for side in sides))

    def scaling(name: str) -> list[float]:
        return [n / one for one, n in zip(rates[f"{name}_1"], rates[f"{name}_n"], strict=True)]

    raw_label = "asyncpg single-row INSERT, one connection per caller"
    scaling_row = rate_result(
        "concurrent_appends",
        f"scaling {CALLERS} vs 1 caller",
        "x",
        scaling("pgstreams"),
        scaling("raw"),
        "the same scaling of raw INSERTs",
        None,
        notes=f"commits/s with {CALLERS} callers / with 1: what group commit gives one process",
    )
    scaling_row.goal = f"pgstreams >= {SCALING_GOAL:g}x"
    scaling_row.met = scaling_row.pgstreams is not None and scaling_row.pgstreams >= SCALING_GOAL
    return [
        rate_result(
            "concurrent_appends",
            "1 caller, single append",
            "ev/s",
            rates["pgstreams_1"],
            rates["raw_1"],
            raw_label,
            None,
        ),
        rate_result(
            "concurrent_appends",
            f"{CALLERS} callers, single append",
            "ev/s",
            rates["pgstreams_n"],
            rates["raw_n"],
            raw_label,
            None,
        ),
        scaling_row,
    ]
