"""Side-by-side benchmarks: pgstreams against the fastest raw-driver way to do the same work.

Each benchmark runs pgstreams and the raw driver (asyncpg with binary COPY and an orjson jsonb
codec) in the same run, each in fresh ``bench_<run>_<tag>`` schemas that are dropped at the
end, even on error. Every measurement has a warm-up, several repetitions (the median is
reported; the two sides alternate so drift hits both) and a time and count bound per
repetition. Each side's work is checked afterwards (rows counted, offsets and ids compared),
so a broken run reports an error instead of a fast number.

``ratio`` is always "higher is better": pgstreams / raw for rates, raw / pgstreams for
latencies. The goals are DESIGN.md's "Speed goals"; they are targets to beat, not assertions.

Used by ``pgstreams bench`` and ``python benches/run.py``; asyncpg and orjson (the ``bench``
extra) are imported only when a benchmark runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import json
import os
import platform
import random
import resource
import ssl
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, TextIO

from ._core import __version__
from .events import Event, QueuedEvent, new_event_id
from .options import PostgresOptions
from .postgres import PostgresEventStore, connect

__all__ = [
    "BENCHMARKS",
    "DEFAULT_DSN",
    "BenchDependencyError",
    "BenchResult",
    "BenchSettings",
    "BenchmarkError",
    "describe_environment",
    "format_table",
    "main",
    "make_payload",
    "print_results",
    "results_to_json",
    "run",
    "run_benchmarks",
]

BENCHMARKS: Final = (
    "append_batch",
    "read_stream",
    "queue",
    "enqueue_batch",
    "latency",
    "wake_latency",
    "global_feed",
)
"""The benchmark names, in the order they run (``only=`` takes a subset)."""

DEFAULT_DSN: Final = "postgresql://postgres@127.0.0.1:5432/postgres"

EVENT_TYPE: Final = "OrderPlaced"
METADATA: Final[dict[str, Any]] = {"source": "bench", "user": "u-42"}
EVENT_COPY_COLUMNS: Final = (
    "stream_name",
    "stream_offset",
    "event_id",
    "event_type",
    "data",
    "metadata",
    "correlation_id",
)
QUEUE_COPY_COLUMNS: Final = (
    "id",
    "stream_name",
    "event_type",
    "data",
    "metadata",
    "correlation_id",
)
# What pgstreams reads into a StoredEvent / QueuedEvent; the raw side fetches the same columns.
EVENT_SELECT_COLUMNS: Final = (
    "stream_name, stream_offset, position, event_id, event_type, data, metadata, "
    "correlation_id, causation_id, created_at"
)
QUEUE_RETURNING_COLUMNS: Final = (
    "id, stream_name, event_type, data, metadata, correlation_id, causation_id, "
    "delivery_attempts, enqueued_at, consumer_id, visible_at, lease_token"
)

APPEND_BATCH_SIZES: Final = (1, 100, 1000)
APPEND_STREAMS: Final = 10
QUEUE_CONSUMERS: Final = 4
QUEUE_BATCH: Final = 100
ENQUEUE_BATCH: Final = 1000
FEED_APPENDERS: Final = 4
FEED_BATCH: Final = 100
RAW_POLL_SECONDS: Final = 0.010
WAKE_GOAL_MS: Final = 2.0


class BenchmarkError(Exception):
    """A benchmark found its own work wrong (a count, an offset, a missing message)."""


class BenchDependencyError(ImportError):
    """asyncpg or orjson (the ``bench`` extra) is not installed."""


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise BenchDependencyError(
            f"the benchmarks need {module}, which is not installed: "
            "pip install 'pgstreams[bench]' (asyncpg and orjson)"
        ) from error


# ---------------------------------------------------------------------------------- results


@dataclass
class BenchResult:
    """One row of the table. ``ratio`` is "higher is better" (see ``ratio_kind``)."""

    benchmark: str
    case: str
    unit: str
    pgstreams: float | None
    raw: float | None
    raw_label: str
    ratio: float | None
    ratio_kind: str
    goal: str = ""
    met: bool | None = None
    repetitions: int = 0
    pgstreams_samples: list[float] = field(default_factory=list)
    raw_samples: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and bounds of one run (``for_mode(quick)``)."""

    quick: bool
    repetitions: int
    rep_seconds: float
    warmup_seconds: float
    max_events_per_rep: int
    read_events: int
    read_repetitions: int
    queue_messages: int
    queue_repetitions: int
    latency_samples: int
    wake_samples: int
    payload_pool: int
    benchmark_timeout: float

    @classmethod
    def for_mode(cls, quick: bool) -> BenchSettings:
        if quick:
            return cls(
                quick=True,
                repetitions=3,
                rep_seconds=0.25,
                warmup_seconds=0.1,
                max_events_per_rep=25_000,
                read_events=20_000,
                read_repetitions=3,
                queue_messages=5_000,
                queue_repetitions=3,
                latency_samples=200,
                wake_samples=50,
                payload_pool=5_000,
                benchmark_timeout=120.0,
            )
        return cls(
            quick=False,
            repetitions=5,
            rep_seconds=1.0,
            warmup_seconds=0.3,
            max_events_per_rep=100_000,
            read_events=100_000,
            read_repetitions=3,
            queue_messages=20_000,
            queue_repetitions=5,
            latency_samples=1000,
            wake_samples=200,
            payload_pool=20_000,
            benchmark_timeout=400.0,
        )


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise BenchmarkError("no samples")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rate_result(
    benchmark: str,
    case: str,
    unit: str,
    pgstreams: list[float],
    raw: list[float],
    raw_label: str,
    goal_ratio: float | None,
    **more: Any,
) -> BenchResult:
    """A rate row: medians, pgstreams/raw, goal met when the ratio reaches ``goal_ratio``."""
    ps, rw = _median(pgstreams), _median(raw)
    ratio = ps / rw if ps is not None and rw else None
    return BenchResult(
        benchmark=benchmark,
        case=case,
        unit=unit,
        pgstreams=ps,
        raw=rw,
        raw_label=raw_label,
        ratio=ratio,
        ratio_kind="pgstreams/raw",
        goal="" if goal_ratio is None else f">= {goal_ratio:.2f}x",
        met=None if goal_ratio is None or ratio is None else ratio >= goal_ratio,
        repetitions=len(pgstreams),
        pgstreams_samples=pgstreams,
        raw_samples=raw,
        **more,
    )


def _latency_result(
    benchmark: str,
    case: str,
    pgstreams_ms: float,
    raw_ms: float,
    raw_label: str,
    *,
    goal: str = "",
    met: bool | None = None,
    samples: int = 0,
    **more: Any,
) -> BenchResult:
    """A latency row (ms): ratio raw/pgstreams, so higher is still better."""
    return BenchResult(
        benchmark=benchmark,
        case=case,
        unit="ms",
        pgstreams=pgstreams_ms,
        raw=raw_ms,
        raw_label=raw_label,
        ratio=raw_ms / pgstreams_ms if pgstreams_ms > 0 else None,
        ratio_kind="raw/pgstreams",
        goal=goal,
        met=met,
        repetitions=samples,
        **more,
    )


def _error_result(benchmark: str, error: BaseException) -> BenchResult:
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return BenchResult(
        benchmark=benchmark,
        case="(failed)",
        unit="",
        pgstreams=None,
        raw=None,
        raw_label="",
        ratio=None,
        ratio_kind="",
        error=message,
    )


# ---------------------------------------------------------------------------------- payloads

_FIRST_NAMES: Final = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken")
_LAST_NAMES: Final = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton")
_CITIES: Final = (
    ("London", "GB"),
    ("Paris", "FR"),
    ("Berlin", "DE"),
    ("Lisbon", "PT"),
    ("Oslo", "NO"),
    ("Madrid", "ES"),
)
_TAGS: Final = ("priority", "gift", "repeat-customer", "wholesale", "express", "fragile", "promo")


def make_payload(index: int, rng: random.Random) -> dict[str, Any]:
    """A realistic ~250-byte event body: ids, names, an amount, a nested address, tags."""
    city, country = rng.choice(_CITIES)
    return {
        "order_id": 10_000_000 + index,
        "customer_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer_name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        "amount": round(rng.uniform(1.0, 2000.0), 2),
        "quantity": rng.randint(1, 9),
        "address": {
            "street": f"{rng.randint(1, 999)} Main St",
            "city": city,
            "postcode": str(rng.randint(10_000, 99_999)),
            "country": country,
        },
        "tags": rng.sample(_TAGS, k=rng.randint(1, 3)),
    }


class _Payloads:
    """Cycles through a pool of distinct payloads (so the GIN index sees real variety)."""

    def __init__(self, pool: list[dict[str, Any]]) -> None:
        self._pool = pool
        self._next = 0

    def take(self, count: int) -> list[dict[str, Any]]:
        start = self._next
        end = start + count
        if end <= len(self._pool):
            chunk = self._pool[start:end]
        else:
            chunk = [self._pool[(start + i) % len(self._pool)] for i in range(count)]
        self._next = end % len(self._pool)
        return chunk


def _events(payloads: Iterable[dict[str, Any]], correlation_id: str) -> list[Event]:
    return [
        Event(EVENT_TYPE, p, metadata=METADATA, correlation_id=correlation_id) for p in payloads
    ]


# ---------------------------------------------------------------------------------- the run


def _rss_bytes() -> int:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


Step = Callable[[], Awaitable[int]]
Rep = Callable[[float], Awaitable[tuple[int, float]]]


async def _timed_rep(step: Step, seconds: float, cap: int) -> tuple[int, float]:
    """Runs ``step`` until ``seconds`` passed or ``cap`` units were done (at least once)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += await step()
        now = time.perf_counter()
        if now >= deadline or done >= cap:
            return done, now - start


async def _concurrent_rep(steps: Sequence[Step], seconds: float, cap: int) -> tuple[int, float]:
    """Runs the steps side by side until the shared deadline or cap; total units, elapsed."""
    start = time.perf_counter()
    deadline = start + seconds
    total = 0

    async def worker(step: Step) -> None:
        nonlocal total
        while True:
            total += await step()
            if time.perf_counter() >= deadline or total >= cap:
                return

    async with asyncio.TaskGroup() as group:
        for step in steps:
            group.create_task(worker(step))
    return total, time.perf_counter() - start


class _Run:
    """What every benchmark of one run shares: DSN, settings, payloads, raw connections."""

    def __init__(
        self, dsn: str, settings: BenchSettings, progress: Callable[[str], None] | None
    ) -> None:
        self.asyncpg = _require("asyncpg")
        self.orjson = _require("orjson")
        self.dsn = dsn
        self.settings = settings
        self.options = PostgresOptions(dsn)
        self.run_id = uuid.uuid4().hex[:8]
        self._progress = progress
        rng = random.Random(20240601)
        self.payload_pool = [make_payload(i, rng) for i in range(settings.payload_pool)]
        self.rng = random.Random(7)
        self.schemas_created: list[str] = []

    def say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def payloads(self) -> _Payloads:
        return _Payloads(self.payload_pool)

    def _connect_kwargs(self) -> dict[str, Any]:
        config = self.options.to_core_config()
        mode = config["ssl_mode"]
        tls: Any = mode
        if mode in ("verify-ca", "verify-full"):
            context = ssl.create_default_context(cafile=config["ssl_root_cert"])
            context.check_hostname = mode == "verify-full"
            tls = context
        return {
            "host": config["host"],
            "port": config["port"],
            "user": config["user"],
            "password": config["password"],
            "database": config["database"],
            "ssl": tls,
            "timeout": config["connect_timeout"] or 30.0,
            "command_timeout": 120.0,
        }

    async def raw_connect(self) -> Any:
        """An asyncpg connection with the orjson jsonb codec (binary), as DESIGN.md's raw."""
        conn = await self.asyncpg.connect(**self._connect_kwargs())
        orjson = self.orjson
        try:
            await conn.set_type_codec(
                "jsonb",
                encoder=lambda value: b"\x01" + orjson.dumps(value),
                decoder=lambda data: orjson.loads(data[1:]),
                schema="pg_catalog",
                format="binary",
            )
        except BaseException:
            await conn.close()
            raise
        return conn

    async def measure_rates(self, sides: Sequence[tuple[str, Rep]]) -> dict[str, list[float]]:
        """Warm-up each side, then ``repetitions`` timed reps, rotating which side goes first."""
        s = self.settings
        for _, rep in sides:
            await rep(s.warmup_seconds)
        rates: dict[str, list[float]] = {name: [] for name, _ in sides}
        for index in range(s.repetitions):
            shift = index % len(sides)
            for name, rep in [*sides[shift:], *sides[:shift]]:
                done, elapsed = await rep(s.rep_seconds)
                rates[name].append(done / elapsed)
        return rates


class _Scope:
    """Schemas, stores and connections of one benchmark; all closed and dropped on exit."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self._schemas: list[str] = []
        self._stores: list[PostgresEventStore] = []
        self._conns: list[Any] = []

    async def __aenter__(self) -> _Scope:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for store in self._stores:
            with contextlib.suppress(Exception):
                await store.close()
        for conn in self._conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 10)
        if self._schemas:
            await _drop_schemas(self.run, self._schemas)

    def schema(self, tag: str) -> str:
        name = f"bench_{self.run.run_id}_{tag}"
        self._schemas.append(name)
        self.run.schemas_created.append(name)
        return name

    async def store(self, schema: str, **overrides: Any) -> PostgresEventStore:
        """A pgstreams store on ``schema`` (connect() migrates it)."""
        store = await connect(self.run.dsn, schema_name=schema, **overrides)
        self._stores.append(store)
        return store

    async def raw(self) -> Any:
        conn = await self.run.raw_connect()
        self._conns.append(conn)
        return conn


async def _drop_schemas(run: _Run, schemas: Iterable[str]) -> None:
    conn = await run.asyncpg.connect(**run._connect_kwargs())
    try:
        await conn.execute("SET lock_timeout = '20s'")
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _count(conn: Any, sql: str, *args: Any) -> int:
    return int(await conn.fetchval(sql, *args))


def _expect(what: str, actual: object, expected: object) -> None:
    if actual != expected:
        raise BenchmarkError(f"{what}: expected {expected!r}, got {actual!r}")


# ---------------------------------------------------------------------------------- appenders


class _StoreAppender:
    """pgstreams ``append_batch``, rotating over streams, checking the offsets it gets back."""

    def __init__(
        self, store: PostgresEventStore, streams: Sequence[str], batch: int, payloads: _Payloads
    ) -> None:
        self.store = store
        self.streams = streams
        self.batch = batch
        self.payloads = payloads
        self.turn = 0
        self.next_offset = dict.fromkeys(streams, 0)
        self.appended = 0

    async def step(self) -> int:
        stream = self.streams[self.turn % len(self.streams)]
        self.turn += 1
        events = _events(self.payloads.take(self.batch), f"corr-{self.turn}")
        offsets = await self.store.append_batch(stream, events)
        expected = self.next_offset[stream]
        if len(offsets) != len(events) or offsets[0] != expected:
            raise BenchmarkError(
                f"append_batch to {stream} returned offsets {offsets[:3]}..., expected {expected}.."
            )
        self.next_offset[stream] = expected + len(events)
        self.appended += len(events)
        return len(events)


class _CopyAppender:
    """Raw binary COPY into an ``events`` table, offsets computed client side."""

    def __init__(
        self,
        conn: Any,
        schema: str,
        streams: Sequence[str],
        batch: int,
        payloads: _Payloads,
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.streams = streams
        self.batch = batch
        self.payloads = payloads
        self.turn = 0
        self.next_offset = dict.fromkeys(streams, 0)
        self.appended = 0

    async def step(self) -> int:
        stream = self.streams[self.turn % len(self.streams)]
        self.turn += 1
        correlation_id = f"corr-{self.turn}"
        base = self.next_offset[stream]
        records = [
            (stream, base + k, new_event_id(), EVENT_TYPE, p, METADATA, correlation_id)
            for k, p in enumerate(self.payloads.take(self.batch))
        ]
        status = await self.conn.copy_records_to_table(
            "events", records=records, columns=EVENT_COPY_COLUMNS, schema_name=self.schema
        )
        _expect("COPY status", status, f"COPY {len(records)}")
        self.next_offset[stream] = base + len(records)
        self.appended += len(records)
        return len(records)


def _rep_of(step: Step, cap: int) -> Rep:
    async def rep(seconds: float) -> tuple[int, float]:
        return await _timed_rep(step, seconds, cap)

    return rep


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


# ---------------------------------------------------------------------------------- 1. append


async def bench_append_batch(run: _Run) -> list[BenchResult]:
    results: list[BenchResult] = []
    for batch in APPEND_BATCH_SIZES:
        results.extend(await _append_variant(run, batch, gin=True))
    results.extend(await _append_variant(run, 1000, gin=False))
    return results


async def _append_variant(run: _Run, batch: int, *, gin: bool) -> list[BenchResult]:
    label = f"batch {batch}" + ("" if gin else ", no GIN")
    run.say(f"append_batch: {label}")
    cap = run.settings.max_events_per_rep
    streams = [f"orders-{i}" for i in range(APPEND_STREAMS)]
    tag = f"{batch}{'' if gin else 'ng'}"
    async with _Scope(run) as scope:
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
        ps_side = _StoreAppender(store, streams, batch, run.payloads())
        own_side = _CopyAppender(own, own_schema, streams, batch, run.payloads())
        sides: list[tuple[str, Rep]] = [
            ("pgstreams", _rep_of(ps_side.step, cap)),
            ("raw_own", _rep_of(own_side.step, cap)),
        ]
        seed_side: _CopyAppender | None = None
        seed_schema = ""
        if gin:
            seed_schema = scope.schema(f"app{tag}_seed")
            seed = await scope.raw()
            await _create_seed_table(seed, seed_schema)
            seed_side = _CopyAppender(seed, seed_schema, streams, batch, run.payloads())
            sides.append(("raw_seed", _rep_of(seed_side.step, cap)))

        rates = await run.measure_rates(sides)

        _expect(
            "pgstreams events stored",
            await _count(own, f'SELECT count(*) FROM "{ps_schema}".events'),
            ps_side.appended,
        )
        _expect(
            "pgstreams stream versions",
            await _count(own, f'SELECT coalesce(sum(version + 1), 0) FROM "{ps_schema}".streams'),
            ps_side.appended,
        )
        _expect(
            "raw events stored (own table)",
            await _count(own, f'SELECT count(*) FROM "{own_schema}".events'),
            own_side.appended,
        )
        if seed_side is not None:
            _expect(
                "raw events stored (seed table)",
                await _count(own, f'SELECT count(*) FROM "{seed_schema}".events'),
                seed_side.appended,
            )

    gin_note = "" if gin else " (no GIN)"
    results = [
        _rate_result(
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
            _rate_result(
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


# ---------------------------------------------------------------------------------- 2. read


async def bench_read_stream(run: _Run) -> list[BenchResult]:
    count = run.settings.read_events
    run.say(f"read_stream: loading {count:,} events")
    stream = "orders-read"
    async with _Scope(run) as scope:
        schema = scope.schema("read")
        store = await scope.store(schema, event_data_index=False)
        conn = await scope.raw()
        loader = _CopyAppender(conn, schema, [stream], 5000, run.payloads())
        while loader.appended < count:
            loader.batch = min(5000, count - loader.appended)
            await loader.step()
        await conn.execute(
            f'INSERT INTO "{schema}".streams (stream_name, version) VALUES ($1, $2)',
            stream,
            count - 1,
        )
        await conn.execute(f'VACUUM ANALYZE "{schema}".events')
        _expect("stream version", await store.get_stream_version(stream), count - 1)

        raw_sql = (
            f'SELECT {EVENT_SELECT_COLUMNS} FROM "{schema}".events '
            "WHERE stream_name = $1 AND stream_offset >= $2 ORDER BY stream_offset LIMIT 1000"
        )

        async def read_pgstreams() -> tuple[int, int]:
            seen = 0
            peak = base = _rss_bytes()
            expected_offset = 0
            async for event in store.read_stream(stream):
                if event.offset != expected_offset or event.data is None:
                    raise BenchmarkError(f"read_stream gave offset {event.offset} at {seen}")
                expected_offset += 1
                seen += 1
                if seen % 1000 == 0:
                    peak = max(peak, _rss_bytes())
            return seen, peak - base

        async def read_raw() -> tuple[int, int]:
            seen = 0
            peak = base = _rss_bytes()
            offset = 0
            while True:
                rows = await conn.fetch(raw_sql, stream, offset)
                for row in rows:
                    if row["data"] is None:
                        raise BenchmarkError("raw read gave no data")
                    seen += 1
                peak = max(peak, _rss_bytes())
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
        for index in range(run.settings.read_repetitions + 1):  # the first is the warm-up
            shift = index % 2
            for name, read in [*sides[shift:], *sides[:shift]]:
                run.say(f"read_stream: {name} rep {index}")
                gc.collect()
                peak_before = _peak_rss_bytes()
                start = time.perf_counter()
                seen, growth = await read()
                elapsed = time.perf_counter() - start
                _expect(f"{name} events read", seen, count)
                if index:
                    rates[name].append(seen / elapsed)
                    rss_growth[name].append(growth)
                peak_growth[name] = max(peak_growth[name], _peak_rss_bytes() - peak_before)

    mib = 1024 * 1024
    ps_rss = max(rss_growth["pgstreams"]) / mib
    raw_rss = max(rss_growth["raw"]) / mib
    return [
        _rate_result(
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


# ---------------------------------------------------------------------------------- 3. queue


async def bench_queue(run: _Run) -> list[BenchResult]:
    s = run.settings
    stream = "jobs"
    async with _Scope(run) as scope:
        ps_schema = scope.schema("q_ps")
        raw_schema = scope.schema("q_raw")
        store = await scope.store(ps_schema)
        raw_loader = await scope.store(raw_schema)
        admin = await scope.raw()
        conns = [await scope.raw() for _ in range(QUEUE_CONSUMERS)]
        qt = f'"{raw_schema}".queue_events'
        dequeue_sql = (
            f"UPDATE {qt} SET delivery_attempts = delivery_attempts + 1, "
            "lease_token = gen_random_uuid(), consumer_id = $2, leased_at = now(), "
            "visible_at = now() + interval '30 seconds' "
            f"WHERE id IN (SELECT id FROM {qt} WHERE stream_name = $1 AND visible_at <= now() "
            f"ORDER BY seq LIMIT {QUEUE_BATCH} FOR UPDATE SKIP LOCKED) "
            f"RETURNING {QUEUE_RETURNING_COLUMNS}"
        )
        ack_sql = f"DELETE FROM {qt} WHERE id = ANY($1::uuid[])"

        async def preload(messages: int) -> None:
            payloads = run.payloads()
            for start in range(0, messages, ENQUEUE_BATCH):
                chunk = min(ENQUEUE_BATCH, messages - start)
                events = _events(payloads.take(chunk), f"job-{start}")
                await store.enqueue_batch(stream, events)
                await raw_loader.enqueue_batch(stream, events)
            for schema in (ps_schema, raw_schema):
                await admin.execute(f'VACUUM ANALYZE "{schema}".queue_events')

        async def drain_pgstreams() -> list[uuid.UUID]:
            seen: list[uuid.UUID] = []

            async def consumer(index: int) -> None:
                previous: list[QueuedEvent] = []
                while True:
                    batch = await store.dequeue_batch(
                        stream, f"c{index}", QUEUE_BATCH, acknowledge=previous or None
                    )
                    seen.extend(m.id for m in batch)
                    for message in batch:
                        _ = message.data
                    if len(batch) < QUEUE_BATCH:
                        if batch:
                            acked = await store.acknowledge_batch(batch)
                            _expect("pgstreams final acknowledge_batch", acked, len(batch))
                        return
                    previous = batch

            async with asyncio.TaskGroup() as group:
                for index in range(QUEUE_CONSUMERS):
                    group.create_task(consumer(index))
            return seen

        async def drain_raw() -> list[uuid.UUID]:
            seen: list[uuid.UUID] = []

            async def consumer(index: int, conn: Any) -> None:
                while True:
                    rows = await conn.fetch(dequeue_sql, stream, f"c{index}")
                    ids = [row["id"] for row in rows]
                    seen.extend(ids)
                    for row in rows:
                        _ = row["data"]
                    if ids:
                        status = await conn.execute(ack_sql, ids)
                        _expect("raw DELETE status", status, f"DELETE {len(ids)}")
                    if len(rows) < QUEUE_BATCH:
                        return

            async with asyncio.TaskGroup() as group:
                for index, conn in enumerate(conns):
                    group.create_task(consumer(index, conn))
            return seen

        sides: list[tuple[str, str, Callable[[], Awaitable[list[uuid.UUID]]]]] = [
            ("pgstreams", ps_schema, drain_pgstreams),
            ("raw", raw_schema, drain_raw),
        ]
        rates: dict[str, list[float]] = {"pgstreams": [], "raw": []}
        for index in range(s.queue_repetitions + 1):  # the first is the warm-up
            messages = min(1000, s.queue_messages) if index == 0 else s.queue_messages
            run.say(f"queue: rep {index}, {messages:,} messages")
            await preload(messages)
            shift = index % 2
            for name, schema, drain in [*sides[shift:], *sides[:shift]]:
                start = time.perf_counter()
                seen = await drain()
                elapsed = time.perf_counter() - start
                _expect(f"{name} messages delivered", len(seen), messages)
                _expect(f"{name} distinct messages", len(set(seen)), messages)
                left = await _count(admin, f'SELECT count(*) FROM "{schema}".queue_events')
                _expect(f"{name} messages left after acks", left, 0)
                if index:
                    rates[name].append(messages / elapsed)

    return [
        _rate_result(
            "queue",
            f"{QUEUE_CONSUMERS} consumers, dequeue_batch({QUEUE_BATCH}) + ack",
            "msg/s",
            rates["pgstreams"],
            rates["raw"],
            "UPDATE ... SKIP LOCKED RETURNING + DELETE = ANY",
            1.2,
            notes=f"{s.queue_messages:,} messages per rep; pgstreams folds acks into dequeue",
        )
    ]


# ---------------------------------------------------------------------------------- 4. enqueue


async def bench_enqueue_batch(run: _Run) -> list[BenchResult]:
    run.say("enqueue_batch")
    stream = "jobs"
    cap = run.settings.max_events_per_rep
    async with _Scope(run) as scope:
        ps_schema = scope.schema("enq_ps")
        raw_schema = scope.schema("enq_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # migrates the raw side's schema
        conn = await scope.raw()
        ps_payloads, raw_payloads = run.payloads(), run.payloads()
        counts = {"pgstreams": 0, "raw": 0}

        async def ps_step() -> int:
            events = _events(ps_payloads.take(ENQUEUE_BATCH), "enqueue")
            ids = await store.enqueue_batch(stream, events)
            _expect("ids returned", len(ids), ENQUEUE_BATCH)
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
            _expect("COPY status", status, f"COPY {ENQUEUE_BATCH}")
            counts["raw"] += ENQUEUE_BATCH
            return ENQUEUE_BATCH

        rates = await run.measure_rates(
            [("pgstreams", _rep_of(ps_step, cap)), ("raw", _rep_of(raw_step, cap))]
        )
        for name, schema in (("pgstreams", ps_schema), ("raw", raw_schema)):
            stored = await _count(conn, f'SELECT count(*) FROM "{schema}".queue_events')
            _expect(f"{name} messages queued", stored, counts[name])

    return [
        _rate_result(
            "enqueue_batch",
            f"batch {ENQUEUE_BATCH}",
            "msg/s",
            rates["pgstreams"],
            rates["raw"],
            "asyncpg COPY into queue_events",
            0.9,
        )
    ]


# ---------------------------------------------------------------------------------- 5. latency


async def _alternating_samples(
    sides: Sequence[tuple[str, Callable[[], Awaitable[float]]]],
    samples: int,
    warmup: int,
    block: int = 100,
) -> dict[str, list[float]]:
    """Latency samples (ms) of each side, in alternating blocks so drift hits both."""
    for _, op in sides:
        for _ in range(warmup):
            await op()
    result: dict[str, list[float]] = {name: [] for name, _ in sides}
    done = 0
    turn = 0
    while done < samples:
        size = min(block, samples - done)
        shift = turn % len(sides)
        for name, op in [*sides[shift:], *sides[:shift]]:
            for _ in range(size):
                result[name].append(await op())
        done += size
        turn += 1
    return result


def _latency_rows(
    benchmark: str,
    case: str,
    samples: dict[str, list[float]],
    raw_label: str,
    *,
    goal_p50: float | None = None,
) -> list[BenchResult]:
    ps, rw = samples["pgstreams"], samples["raw"]
    rows = []
    for q in (50, 99):
        ps_ms, raw_ms = _percentile(ps, q), _percentile(rw, q)
        goal = ""
        met = None
        if q == 50 and goal_p50 is not None:
            goal = f">= {goal_p50:.2f}x (p50 <= {1 / goal_p50:.2f}x raw)"
            met = raw_ms / ps_ms >= goal_p50
        rows.append(
            _latency_result(
                benchmark,
                f"{case} p{q}",
                ps_ms,
                raw_ms,
                raw_label,
                goal=goal,
                met=met,
                samples=len(ps),
            )
        )
    return rows


async def bench_latency(run: _Run) -> list[BenchResult]:
    samples = run.settings.latency_samples
    warmup = 50
    results: list[BenchResult] = []
    async with _Scope(run) as scope:
        ps_schema = scope.schema("lat_ps")
        raw_schema = scope.schema("lat_raw")
        store = await scope.store(ps_schema)
        raw_loader = await scope.store(raw_schema)
        conn = await scope.raw()
        payloads = run.payloads()

        # single append
        run.say("latency: single append")
        stream = "orders-latency"
        ps_count = raw_count = 0
        insert_sql = (
            f'INSERT INTO "{raw_schema}".events ({", ".join(EVENT_COPY_COLUMNS)}) '
            "VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )

        async def ps_append() -> float:
            nonlocal ps_count
            event = Event(EVENT_TYPE, payloads.take(1)[0], metadata=METADATA, correlation_id="one")
            start = time.perf_counter()
            offset = await store.append(stream, event)
            elapsed = time.perf_counter() - start
            _expect("append offset", offset, ps_count)
            ps_count += 1
            return elapsed * 1000

        async def raw_append() -> float:
            nonlocal raw_count
            payload = payloads.take(1)[0]
            start = time.perf_counter()
            await conn.execute(
                insert_sql, stream, raw_count, new_event_id(), EVENT_TYPE, payload, METADATA, "one"
            )
            elapsed = time.perf_counter() - start
            raw_count += 1
            return elapsed * 1000

        appends = await _alternating_samples(
            [("pgstreams", ps_append), ("raw", raw_append)], samples, warmup
        )
        _expect(
            "pgstreams events",
            await _count(conn, f'SELECT count(*) FROM "{ps_schema}".events'),
            ps_count,
        )
        _expect(
            "raw events",
            await _count(conn, f'SELECT count(*) FROM "{raw_schema}".events'),
            raw_count,
        )
        results += _latency_rows(
            "latency",
            "single append",
            appends,
            "asyncpg INSERT (offset client side)",
            goal_p50=1 / 1.1,
        )

        # single dequeue + ack
        run.say("latency: dequeue + ack")
        queue = "jobs-latency"
        messages = 2 * (samples + warmup) + 10
        for start_at in range(0, messages, ENQUEUE_BATCH):
            chunk = _events(payloads.take(min(ENQUEUE_BATCH, messages - start_at)), "lat")
            await store.enqueue_batch(queue, chunk)
            await raw_loader.enqueue_batch(queue, chunk)
        qt = f'"{raw_schema}".queue_events'
        dequeue_one_sql = (
            f"UPDATE {qt} SET delivery_attempts = delivery_attempts + 1, "
            "lease_token = gen_random_uuid(), consumer_id = $2, leased_at = now(), "
            "visible_at = now() + interval '30 seconds' "
            f"WHERE id IN (SELECT id FROM {qt} WHERE stream_name = $1 AND visible_at <= now() "
            "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {QUEUE_RETURNING_COLUMNS}"
        )
        delete_one_sql = f"DELETE FROM {qt} WHERE id = $1"

        async def ps_dequeue_ack() -> float:
            start = time.perf_counter()
            message = await store.dequeue(queue, "c")
            if message is None:
                raise BenchmarkError("pgstreams dequeue found the queue empty")
            acked = await store.acknowledge(message)
            elapsed = time.perf_counter() - start
            _expect("pgstreams acknowledge", acked, True)
            return elapsed * 1000

        async def raw_dequeue_ack() -> float:
            start = time.perf_counter()
            row = await conn.fetchrow(dequeue_one_sql, queue, "c")
            if row is None:
                raise BenchmarkError("raw dequeue found the queue empty")
            status = await conn.execute(delete_one_sql, row["id"])
            elapsed = time.perf_counter() - start
            _expect("raw DELETE status", status, "DELETE 1")
            return elapsed * 1000

        round_trips = await _alternating_samples(
            [("pgstreams", ps_dequeue_ack), ("raw", raw_dequeue_ack)], samples, warmup
        )
        results += _latency_rows(
            "latency", "dequeue + ack", round_trips, "asyncpg UPDATE ... LIMIT 1 + DELETE"
        )

        # dequeue with the previous message's ack folded in: one round trip per message
        previous: QueuedEvent | None = None

        async def ps_folded() -> float:
            nonlocal previous
            start = time.perf_counter()
            batch = await store.dequeue_batch(
                queue, "c", 1, acknowledge=[previous] if previous is not None else None
            )
            elapsed = time.perf_counter() - start
            if not batch:
                raise BenchmarkError("pgstreams dequeue found the queue empty")
            previous = batch[0]
            return elapsed * 1000

        # Only pgstreams' side is new; the raw baseline is the two-statement round trip above.
        folded: list[float] = []
        for _ in range(warmup):
            await ps_folded()
        for _ in range(samples):
            folded.append(await ps_folded())
        if previous is not None:
            await store.acknowledge(previous)
        left = await store.get_pending_count(queue)
        raw_left = await _count(conn, f"SELECT count(*) FROM {qt}")
        _expect("pgstreams messages left", left, messages - 2 * (samples + warmup))
        _expect("raw messages left", raw_left, messages - (samples + warmup))
        results += _latency_rows(
            "latency",
            "dequeue w/ folded ack",
            {"pgstreams": folded, "raw": round_trips["raw"]},
            "asyncpg UPDATE ... LIMIT 1 + DELETE",
        )
    return results


# ---------------------------------------------------------------------------------- 6. wake-up


async def bench_wake_latency(run: _Run) -> list[BenchResult]:
    samples = run.settings.wake_samples
    warmup = 5
    queue = "jobs-wake"
    rng = run.rng
    async with _Scope(run) as scope:
        ps_schema = scope.schema("wake_ps")
        raw_schema = scope.schema("wake_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # migrates the raw side's schema
        consumer_conn = await scope.raw()
        producer_conn = await scope.raw()
        payloads = run.payloads()
        qt = f'"{raw_schema}".queue_events'
        dequeue_one_sql = (
            f"UPDATE {qt} SET delivery_attempts = delivery_attempts + 1, "
            "lease_token = gen_random_uuid(), consumer_id = $2, leased_at = now(), "
            "visible_at = now() + interval '30 seconds' "
            f"WHERE id IN (SELECT id FROM {qt} WHERE stream_name = $1 AND visible_at <= now() "
            "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {QUEUE_RETURNING_COLUMNS}"
        )
        insert_sql = (
            f"INSERT INTO {qt} (id, stream_name, event_type, data, metadata) "
            "VALUES ($1, $2, $3, $4, $5)"
        )

        async def ps_sample() -> float:
            async def consume() -> tuple[QueuedEvent | None, float]:
                message = await store.dequeue(queue, "waiter", wait=5.0)
                return message, time.perf_counter()

            task = asyncio.create_task(consume())
            await asyncio.sleep(rng.uniform(0.015, 0.025))  # the consumer is parked by now
            if task.done():
                raise BenchmarkError("the waiting consumer returned before the enqueue")
            start = time.perf_counter()
            await store.enqueue(queue, Event(EVENT_TYPE, payloads.take(1)[0], metadata=METADATA))
            message, woke = await task
            if message is None:
                raise BenchmarkError("the waiting consumer was not woken within 5 s")
            _expect("acknowledge", await store.acknowledge(message), True)
            return (woke - start) * 1000

        async def raw_sample() -> float:
            async def consume() -> float:
                deadline = time.perf_counter() + 5.0
                while time.perf_counter() < deadline:
                    row = await consumer_conn.fetchrow(dequeue_one_sql, queue, "waiter")
                    if row is not None:
                        woke = time.perf_counter()
                        await consumer_conn.execute(f"DELETE FROM {qt} WHERE id = $1", row["id"])
                        return woke
                    await asyncio.sleep(RAW_POLL_SECONDS)
                raise BenchmarkError("the polling consumer found nothing within 5 s")

            task = asyncio.create_task(consume())
            await asyncio.sleep(rng.uniform(0.015, 0.025))
            start = time.perf_counter()
            await producer_conn.execute(
                insert_sql, new_event_id(), queue, EVENT_TYPE, payloads.take(1)[0], METADATA
            )
            woke = await task
            return (woke - start) * 1000

        run.say(f"wake_latency: {samples} samples per side")
        latencies = await _alternating_samples(
            [("pgstreams", ps_sample), ("raw", raw_sample)], samples, warmup, block=25
        )
        _expect("pgstreams messages left", await store.get_pending_count(queue), 0)
        _expect("raw messages left", await _count(consumer_conn, f"SELECT count(*) FROM {qt}"), 0)

    p50 = _percentile(latencies["pgstreams"], 50)
    rows = _latency_rows(
        "wake_latency",
        "enqueue -> waiting consumer",
        latencies,
        f"asyncpg polling every {RAW_POLL_SECONDS * 1000:.0f} ms",
    )
    rows[0].goal = f"p50 <= {WAKE_GOAL_MS:g} ms"
    rows[0].met = p50 <= WAKE_GOAL_MS
    return rows


# ---------------------------------------------------------------------------------- 7. feed


async def bench_global_feed(run: _Run) -> list[BenchResult]:
    run.say("global_feed")
    cap = run.settings.max_events_per_rep
    async with _Scope(run) as scope:
        ps_schema = scope.schema("feed_ps")
        raw_schema = scope.schema("feed_raw")
        store = await scope.store(ps_schema)
        await scope.store(raw_schema)  # migrates the raw side's schema
        conns = [await scope.raw() for _ in range(FEED_APPENDERS)]
        ps_sides = [
            _StoreAppender(store, [f"feed-{i}"], FEED_BATCH, run.payloads())
            for i in range(FEED_APPENDERS)
        ]
        raw_sides = [
            _CopyAppender(conns[i], raw_schema, [f"feed-{i}"], FEED_BATCH, run.payloads())
            for i in range(FEED_APPENDERS)
        ]

        def concurrent(steps: Sequence[Step]) -> Rep:
            async def rep(seconds: float) -> tuple[int, float]:
                return await _concurrent_rep(steps, seconds, cap)

            return rep

        rates = await run.measure_rates(
            [
                ("pgstreams_1", _rep_of(ps_sides[0].step, cap)),
                ("raw_1", _rep_of(raw_sides[0].step, cap)),
                ("pgstreams_4", concurrent([a.step for a in ps_sides])),
                ("raw_4", concurrent([a.step for a in raw_sides])),
            ]
        )
        for name, schema, appenders in (
            ("pgstreams", ps_schema, ps_sides),
            ("raw", raw_schema, raw_sides),
        ):
            stored = await _count(conns[0], f'SELECT count(*) FROM "{schema}".events')
            _expect(f"{name} events stored", stored, sum(a.appended for a in appenders))

    def scaling(name: str) -> list[float]:
        return [
            four / one for one, four in zip(rates[f"{name}_1"], rates[f"{name}_4"], strict=True)
        ]

    ps_scaling, raw_scaling = scaling("pgstreams"), scaling("raw")
    raw_label = "asyncpg COPY into pgstreams' events (no global lock)"
    return [
        _rate_result(
            "global_feed",
            f"1 appender, batch {FEED_BATCH}",
            "ev/s",
            rates["pgstreams_1"],
            rates["raw_1"],
            raw_label,
            None,
        ),
        _rate_result(
            "global_feed",
            f"{FEED_APPENDERS} appenders, {FEED_APPENDERS} streams",
            "ev/s",
            rates["pgstreams_4"],
            rates["raw_4"],
            raw_label,
            None,
        ),
        _rate_result(
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


# ---------------------------------------------------------------------------------- running

_RUNNERS: Final[dict[str, Callable[[_Run], Awaitable[list[BenchResult]]]]] = {
    "append_batch": bench_append_batch,
    "read_stream": bench_read_stream,
    "queue": bench_queue,
    "enqueue_batch": bench_enqueue_batch,
    "latency": bench_latency,
    "wake_latency": bench_wake_latency,
    "global_feed": bench_global_feed,
}


def _selected(only: Iterable[str] | None) -> list[str]:
    if only is None:
        return list(BENCHMARKS)
    wanted = list(only)
    unknown = [name for name in wanted if name not in _RUNNERS]
    if unknown:
        raise ValueError(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    return [name for name in BENCHMARKS if name in wanted]


async def run_benchmarks(
    dsn: str,
    *,
    quick: bool = False,
    only: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    settings: BenchSettings | None = None,
) -> list[BenchResult]:
    """Runs the benchmarks (all, or ``only`` these names) against ``dsn``.

    A benchmark that fails (including its own correctness checks) gives one row with
    ``error`` set; the others still run. Every schema created is dropped before returning.
    """
    names = _selected(only)
    bench_run = _Run(dsn, settings or BenchSettings.for_mode(quick), progress)
    results: list[BenchResult] = []
    try:
        for name in names:
            try:
                results += await asyncio.wait_for(
                    _RUNNERS[name](bench_run), bench_run.settings.benchmark_timeout
                )
            except Exception as error:
                results.append(_error_result(name, error))
                bench_run.say(f"{name}: FAILED: {error}")
    finally:
        # Each benchmark drops its own schemas; this catches any left by an interruption.
        if bench_run.schemas_created:
            with contextlib.suppress(Exception):
                await _drop_schemas(bench_run, bench_run.schemas_created)
    return results


def run(
    dsn: str,
    *,
    quick: bool = False,
    only: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Synchronous :func:`run_benchmarks` (for the CLI)."""
    return asyncio.run(run_benchmarks(dsn, quick=quick, only=only, progress=progress))


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.3f}"
    if unit == "x":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def format_table(results: Sequence[BenchResult]) -> str:
    """The results as a plain-text table (``ratio``: higher is better)."""
    header = ("benchmark", "case", "pgstreams", "raw", "unit", "ratio", "goal", "met")
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.error is not None:
            rows.append((r.benchmark, f"ERROR {r.error}", "", "", "", "", "", "no"))
            continue
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        rows.append(
            (
                r.benchmark,
                r.case,
                _number(r.pgstreams, r.unit),
                _number(r.raw, r.unit),
                r.unit,
                ratio,
                r.goal or "-",
                met,
            )
        )
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    right = {2, 3, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out.append("")
    out.append(
        "ratio: pgstreams/raw for rates, raw/pgstreams for latencies (ms) - higher is better."
    )
    notes = [f"{r.benchmark} {r.case}: {r.notes}" for r in results if r.notes and not r.error]
    labels = sorted({f"{r.benchmark}: raw = {r.raw_label}" for r in results if r.raw_label})
    out += [f"  {text}" for text in labels + notes]
    return "\n".join(out)


def print_results(results: Sequence[BenchResult], out: TextIO | None = None) -> None:
    """Writes :func:`format_table` of ``results`` to ``out`` (default: stdout); for the CLI."""
    stream = sys.stdout if out is None else out
    stream.write(format_table(results) + "\n")
    stream.flush()


def results_to_json(results: Sequence[BenchResult], *, meta: dict[str, Any] | None = None) -> str:
    return json.dumps(
        {"meta": meta or {}, "results": [r.to_dict() for r in results]}, indent=2, default=str
    )


def describe_environment(dsn: str, quick: bool) -> dict[str, Any]:
    """What a results file should record about the run (for ``results_to_json(meta=...)``)."""
    rng = random.Random(20240601)
    sizes = [len(json.dumps(make_payload(i, rng), separators=(",", ":"))) for i in range(200)]
    return {
        "pgstreams_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "target": PostgresOptions(dsn).describe(),
        "quick": quick,
        "settings": asdict(BenchSettings.for_mode(quick)),
        "payload_bytes_avg": round(sum(sizes) / len(sizes), 1),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python benches/run.py [--dsn DSN] [--quick] [--only NAME ...] [--json OUT]``."""
    parser = argparse.ArgumentParser(
        prog="benches/run.py", description="pgstreams vs the raw driver, side by side"
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("PGSTREAMS_DSN") or os.environ.get("DATABASE_URL") or DEFAULT_DSN,
        help="PostgreSQL to use (default: $PGSTREAMS_DSN, $DATABASE_URL, else the local server)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller and shorter (< 1 minute)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(f"... {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        results = run(args.dsn, quick=args.quick, only=args.only, progress=progress)
    except BenchDependencyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the benchmark schemas were dropped)", file=sys.stderr)
        return 130
    print_results(results)
    print(f"\n({time.perf_counter() - started:.0f} s, {'quick' if args.quick else 'full'} mode)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            out.write(results_to_json(results, meta=describe_environment(args.dsn, args.quick)))
            out.write("\n")
    return 1 if any(r.error for r in results) else 0
