"""``pgstreams bench --sweep``: the settings that are fastest on this server.

Where the side-by-side benchmarks compare pgstreams with the raw driver, the sweep compares
pgstreams with itself under different settings: append batch sizes, ``read_batch_size``,
dequeue batch sizes with 1..n consumers, and ``max_pool_size`` under 16 concurrent appenders.
Each point is one timed run (checked like the benchmarks: every event read, every message
delivered once); the recommendation is the fastest value of each knob, as a ready
``PostgresOptions(...)`` line, the connection-string keys, and what to do in the code for the
knobs that are call arguments (batch sizes, consumers).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..events import Event
from .errors import BenchDependencyError
from .payloads import make_events
from .runner import Run, Scope, expect
from .settings import BenchSettings
from .workloads._shared import load_stream


@dataclass(frozen=True)
class SweepSizes:
    """The values tried, and how much work each point does."""

    append_batches: tuple[int, ...]
    read_batches: tuple[int, ...]
    dequeue_batches: tuple[int, ...]
    consumers: tuple[int, ...]
    pool_sizes: tuple[int, ...]
    seconds: float
    read_events: int
    queue_messages: int

    @classmethod
    def for_mode(cls, quick: bool) -> SweepSizes:
        if quick:
            return cls((1, 100), (100, 1000), (10, 100), (1, 2), (2, 8), 0.3, 5_000, 1_000)
        return cls(
            (1, 10, 100, 1000),
            (100, 500, 1000, 5000),
            (1, 10, 100, 500),
            (1, 2, 4, 8),
            (2, 4, 8, 20),
            1.0,
            50_000,
            10_000,
        )


@dataclass(frozen=True)
class SweepPoint:
    knob: str
    value: int
    rate: float
    unit: str
    consumers: int | None = None


@dataclass
class SweepReport:
    points: list[SweepPoint] = field(default_factory=list)

    def best(self, knob: str) -> SweepPoint:
        return max((p for p in self.points if p.knob == knob), key=lambda p: p.rate)

    def recommendation(self) -> dict[str, Any]:
        dequeue = self.best("dequeue batch size")
        return {
            "read_batch_size": self.best("read_batch_size").value,
            "max_pool_size": self.best("max_pool_size").value,
            "append_batch_size": self.best("append batch size").value,
            "dequeue_batch_size": dequeue.value,
            "consumers": dequeue.consumers,
        }


async def run_sweep(
    dsn: str, *, quick: bool = False, progress: Callable[[str], None] | None = None
) -> SweepReport:
    sizes = SweepSizes.for_mode(quick)
    bench = Run(dsn, BenchSettings.for_mode(quick), progress)
    report = SweepReport()
    async with Scope(bench) as scope:
        await _sweep_appends(bench, scope, sizes, report)
        await _sweep_reads(bench, scope, sizes, report)
        await _sweep_dequeues(bench, scope, sizes, report)
        await _sweep_pools(bench, scope, sizes, report)
    return report


async def _timed(seconds: float, step: Callable[[], Awaitable[int]]) -> float:
    """Units per second of ``step`` repeated for ``seconds`` (at least once)."""
    done = 0
    start = time.perf_counter()
    while True:
        done += await step()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


async def _sweep_appends(bench: Run, scope: Scope, sizes: SweepSizes, report: SweepReport) -> None:
    store = await scope.store(scope.schema("sw_append"))
    payloads = bench.payloads()
    for batch in sizes.append_batches:
        bench.say(f"sweep: append_batch of {batch}")

        async def append(batch: int = batch) -> int:
            events = make_events(payloads.take(batch), "sweep")
            return len(await store.append_batch(f"sweep-{batch}", events))

        rate = await _timed(sizes.seconds, append)
        report.points.append(SweepPoint("append batch size", batch, rate, "ev/s"))


async def _sweep_reads(bench: Run, scope: Scope, sizes: SweepSizes, report: SweepReport) -> None:
    schema = scope.schema("sw_read")
    await scope.store(schema, event_data_index=False)
    stream = "sweep-read"
    await load_stream(await scope.raw(), schema, stream, sizes.read_events, bench.payloads())
    for batch in sizes.read_batches:
        bench.say(f"sweep: read_stream with read_batch_size={batch}")
        store = await scope.store(schema, read_batch_size=batch)
        start = time.perf_counter()
        seen = sum([1 async for _ in store.read_stream(stream)])
        rate = seen / (time.perf_counter() - start)
        expect("events read", seen, sizes.read_events)
        report.points.append(SweepPoint("read_batch_size", batch, rate, "ev/s"))


async def _sweep_dequeues(bench: Run, scope: Scope, sizes: SweepSizes, report: SweepReport) -> None:
    store = await scope.store(scope.schema("sw_queue"))
    payloads = bench.payloads()
    for consumers in sizes.consumers:
        for batch in sizes.dequeue_batches:
            bench.say(f"sweep: dequeue_batch({batch}) with {consumers} consumer(s)")
            queue = f"sweep-{consumers}-{batch}"
            for start in range(0, sizes.queue_messages, 1000):
                count = min(1000, sizes.queue_messages - start)
                await store.enqueue_batch(queue, make_events(payloads.take(count), "job"))
            seen: list[Any] = []

            async def consume(
                index: int, queue: str = queue, batch: int = batch, seen: list[Any] = seen
            ) -> None:
                previous: list[Any] = []
                while True:
                    got = await store.dequeue_batch(
                        queue, f"c{index}", batch, acknowledge=previous or None
                    )
                    seen.extend(m.id for m in got)
                    if not got:
                        return
                    previous = got

            started = time.perf_counter()
            await asyncio.gather(*(consume(i) for i in range(consumers)))
            rate = sizes.queue_messages / (time.perf_counter() - started)
            expect("distinct messages", len(set(seen)), sizes.queue_messages)
            report.points.append(
                SweepPoint("dequeue batch size", batch, rate, "msg/s", consumers=consumers)
            )


async def _sweep_pools(bench: Run, scope: Scope, sizes: SweepSizes, report: SweepReport) -> None:
    schema = scope.schema("sw_pool")
    for pool in sizes.pool_sizes:
        bench.say(f"sweep: 16 concurrent appenders, max_pool_size={pool}")
        store = await scope.store(schema, max_pool_size=pool, min_pool_size=1)
        done = 0
        stop = time.perf_counter() + sizes.seconds

        async def appender(index: int, store: Any = store, stop: float = stop) -> None:
            nonlocal done
            while time.perf_counter() < stop:
                await store.append(f"pool-{index}", Event("Swept", {"i": index}))
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(appender(i) for i in range(16)))
        rate = done / (time.perf_counter() - started)
        report.points.append(SweepPoint("max_pool_size", pool, rate, "ev/s"))


# ---------------------------------------------------------------------------------- output


def format_sweep(report: SweepReport) -> str:
    """The points as a table, then the recommendation."""
    lines = [f"{'knob':<20} {'value':>7} {'consumers':>9} {'rate':>12}  unit"]
    lines.append("-" * len(lines[0]))
    for p in report.points:
        consumers = "" if p.consumers is None else str(p.consumers)
        lines.append(f"{p.knob:<20} {p.value:>7} {consumers:>9} {p.rate:>12,.0f}  {p.unit}")
    best = report.recommendation()
    lines += [
        "",
        "fastest on this server:",
        f"  PostgresOptions(dsn, read_batch_size={best['read_batch_size']}, "
        f"max_pool_size={best['max_pool_size']})",
        f"  connection string: Maximum Pool Size={best['max_pool_size']}  "
        "(read_batch_size has no connection-string key: pass it to connect())",
        f"  append in batches of {best['append_batch_size']}; dequeue_batch("
        f"{best['dequeue_batch_size']}) with {best['consumers']} consumer(s)",
    ]
    return "\n".join(lines)


def sweep_to_json(report: SweepReport) -> str:
    return json.dumps(
        {
            "points": [asdict(p) for p in report.points],
            "recommendation": report.recommendation(),
        },
        indent=2,
    )


def plot_sweep(report: SweepReport, path: str) -> None:
    """One panel per knob, rate against value (log scale), the fastest point marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise BenchDependencyError(
            "--plot needs matplotlib: pip install 'pgstreams[plot]'"
        ) from error
    knobs = list(dict.fromkeys(p.knob for p in report.points))
    figure, axes = plt.subplots(1, len(knobs), figsize=(4.5 * len(knobs), 3.8))
    for axis, knob in zip(axes, knobs, strict=True):
        points = [p for p in report.points if p.knob == knob]
        for consumers in dict.fromkeys(p.consumers for p in points):
            line = [p for p in points if p.consumers == consumers]
            label = None if consumers is None else f"{consumers} consumer(s)"
            axis.plot([p.value for p in line], [p.rate for p in line], marker="o", label=label)
        best = report.best(knob)
        axis.plot([best.value], [best.rate], marker="*", markersize=14, color="crimson")
        values = sorted({p.value for p in points})
        axis.set_xscale("log")
        axis.set_xticks(values, [str(v) for v in values])
        axis.minorticks_off()
        axis.set_title(knob)
        axis.set_xlabel(knob)
        axis.set_ylabel(points[0].unit)
        axis.grid(True, alpha=0.3)
        if points[0].consumers is not None:
            axis.legend(fontsize="small")
    figure.suptitle("pgstreams bench --sweep: rate by setting (star: fastest)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
