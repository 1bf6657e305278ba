"""The machinery every workload runs on: the run, the per-benchmark scope, timing and checks.

A workload gets one ``Run`` (DSN, settings, payloads, raw connections, ``measure_rates``),
opens a ``Scope`` for the schemas, stores and connections it needs (closed and dropped on
exit, even on error), times its sides with the helpers here and checks its own work with
``expect``. asyncpg and orjson are imported when a ``Run`` is created, not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..options import PostgresOptions
from ..postgres import PostgresEventStore, connect
from .errors import BenchmarkError, require
from .payloads import Payloads, payload_pool
from .settings import BenchSettings

Step = Callable[[], Awaitable[int]]
Rep = Callable[[float], Awaitable[tuple[int, float]]]

# ---------------------------------------------------------------------------------- memory


def rss_bytes() -> int:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


# ---------------------------------------------------------------------------------- timing


async def timed_rep(step: Step, seconds: float, cap: int) -> tuple[int, float]:
    """Runs ``step`` until ``seconds`` passed or ``cap`` units were done (at least once)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += await step()
        now = time.perf_counter()
        if now >= deadline or done >= cap:
            return done, now - start


async def concurrent_rep(steps: Sequence[Step], seconds: float, cap: int) -> tuple[int, float]:
    """Runs the steps side by side until the shared deadline or cap; total units, elapsed."""
    start = time.perf_counter()
    deadline = start + seconds
    total = 0

    async def worker(step: Step) -> None:
        nonlocal total
        while True:
            # Not `total += await step()`: that reads `total` before the await, so the units
            # the other workers add meanwhile would be overwritten (lost).
            done = await step()
            total += done
            if time.perf_counter() >= deadline or total >= cap:
                return

    async with asyncio.TaskGroup() as group:
        for step in steps:
            group.create_task(worker(step))
    return total, time.perf_counter() - start


def rep_of(step: Step, cap: int) -> Rep:
    """One timed repetition of ``step`` (for ``Run.measure_rates``)."""

    async def rep(seconds: float) -> tuple[int, float]:
        return await timed_rep(step, seconds, cap)

    return rep


async def alternating_samples(
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


# ---------------------------------------------------------------------------------- the run


class Run:
    """What every benchmark of one run shares: DSN, settings, payloads, raw connections."""

    def __init__(
        self, dsn: str, settings: BenchSettings, progress: Callable[[str], None] | None
    ) -> None:
        self.asyncpg = require("asyncpg")
        self.orjson = require("orjson")
        self.dsn = dsn
        self.settings = settings
        self.options = PostgresOptions(dsn)
        self.run_id = uuid.uuid4().hex[:8]
        self._progress = progress
        self.payload_pool = payload_pool(settings.payload_pool)
        self.rng = random.Random(7)
        self.schemas_created: list[str] = []

    def say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def payloads(self) -> Payloads:
        return Payloads(self.payload_pool)

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


class Scope:
    """Schemas, stores and connections of one benchmark; all closed and dropped on exit."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._schemas: list[str] = []
        self._stores: list[PostgresEventStore] = []
        self._conns: list[Any] = []

    async def __aenter__(self) -> Scope:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for store in self._stores:
            with contextlib.suppress(Exception):
                await store.close()
        for conn in self._conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 10)
        if self._schemas:
            await drop_schemas(self.run, self._schemas)

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


async def drop_schemas(run: Run, schemas: Iterable[str]) -> None:
    conn = await run.asyncpg.connect(**run._connect_kwargs())
    try:
        await conn.execute("SET lock_timeout = '20s'")
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------- checks


async def count_rows(conn: Any, sql: str, *args: Any) -> int:
    return int(await conn.fetchval(sql, *args))


def expect(what: str, actual: object, expected: object) -> None:
    if actual != expected:
        raise BenchmarkError(f"{what}: expected {expected!r}, got {actual!r}")
