"""``read_stream``: ``async for`` over a long stream against asyncpg ``fetch`` pages of 1000,
both decoding every event; also reports how much each side's memory grows while reading."""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from typing import Final

from ..errors import BenchmarkError
from ..results import BenchResult, rate_result
from ..runner import Run, Scope, expect, peak_rss_bytes, rss_bytes
from ._shared import load_stream

NAME: Final = "read_stream"
ORDER: Final = 20

# What pgstreams reads into a StoredEvent; the raw side fetches the same columns.
EVENT_SELECT_COLUMNS: Final = (
    "stream_name, stream_offset, position, event_id, event_type, data, metadata, "
    "correlation_id, causation_id, created_at"
)


async def run(bench: Run) -> list[BenchResult]:
    count = bench.settings.read_events
    bench.say(f"read_stream: loading {count:,} events")
    stream = "orders-read"
    async with Scope(bench) as scope:
        schema = scope.schema("read")
        store = await scope.store(schema, event_data_index=False)
        conn = await scope.raw()
        await load_stream(conn, schema, stream, count, bench.payloads())
        expect("stream version", await store.get_stream_version(stream), count - 1)

        raw_sql = (
            f'SELECT {EVENT_SELECT_COLUMNS} FROM "{schema}".events '
            "WHERE stream_name = $1 AND stream_offset >= $2 ORDER BY stream_offset LIMIT 1000"
        )

        async def read_pgstreams() -> tuple[int, int]:
            seen = 0
            peak = base = rss_bytes()
            expected_offset = 0
            async for event in store.read_stream(stream):
                if event.offset != expected_offset or event.data is None:
                    raise BenchmarkError(f"read_stream gave offset {event.offset} at {seen}")
                expected_offset += 1
                seen += 1
                if seen % 1000 == 0:
                    peak = max(peak, rss_bytes())
            return seen, peak - base

        async def read_raw() -> tuple[int, int]:
            seen = 0
            peak = base = rss_bytes()
            offset = 0
            while True:
                rows = await conn.fetch(raw_sql, stream, offset)
                for row in rows:
                    if row["data"] is None:
                        raise BenchmarkError("raw read gave no data")
                    seen += 1
                peak = max(peak, rss_bytes())
                if len(rows) < 1000:
                    return seen, peak - base
                offset = rows[-1]["stream_offset"] + 1

        sides: list[tuple[str, Callable[[], Awaitable[tuple[int, int]]]]] = [
            ("pgstreams", read_pgstreams),
            ("raw", read_raw),
        ]
        rates: dict[str, list[float]] = {"pgstreams": [], "raw": []}
        rss_growth: dict[str, list[int]] = {"pgstreams": [], "raw": []}
        peak_growth: dict[str, int] = {"pgstreams": 0, "raw": 0}
        for index in range(bench.settings.read_repetitions + 1):  # the first is the warm-up
            shift = index % 2
            for name, read in [*sides[shift:], *sides[:shift]]:
                bench.say(f"read_stream: {name} rep {index}")
                gc.collect()
                peak_before = peak_rss_bytes()
                start = time.perf_counter()
                seen, growth = await read()
                elapsed = time.perf_counter() - start
                expect(f"{name} events read", seen, count)
                if index:
                    rates[name].append(seen / elapsed)
                    rss_growth[name].append(growth)
                peak_growth[name] = max(peak_growth[name], peak_rss_bytes() - peak_before)

    mib = 1024 * 1024
    ps_rss = max(rss_growth["pgstreams"]) / mib
    raw_rss = max(rss_growth["raw"]) / mib
    return [
        rate_result(
            "read_stream",
            f"{count:,} events decoded",
            "ev/s",
            rates["pgstreams"],
            rates["raw"],
            "asyncpg fetch LIMIT 1000 + orjson codec",
            1.2,
            extra={
                "pgstreams_rss_growth_mib": round(ps_rss, 2),
                "raw_rss_growth_mib": round(raw_rss, 2),
                "pgstreams_peak_rss_growth_mib": round(peak_growth["pgstreams"] / mib, 2),
                "raw_peak_rss_growth_mib": round(peak_growth["raw"] / mib, 2),
            },
            notes=(
                f"RSS growth while reading (sampled max / getrusage peak): pgstreams "
                f"{ps_rss:.1f} / {peak_growth['pgstreams'] / mib:.1f} MiB, raw {raw_rss:.1f} / "
                f"{peak_growth['raw'] / mib:.1f} MiB"
            ),
        )
    ]
