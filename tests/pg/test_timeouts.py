"""Timeouts and limits: ``command_timeout`` is the server's statement timeout and leaves the
connection usable; durations and sizes past what PostgreSQL and the Rust core can hold are a
``ConfigurationError`` naming the option (in keyword arguments, connection strings and at the
Rust boundary), never a panic or an ``OverflowError``; an exhausted pool times out with
``pool_timeout`` and never deadlocks without it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

import pgstreams
from pgstreams import (
    ConfigurationError,
    Event,
    PostgresOptions,
    StoreTimeoutError,
    _core,
)
from support import eventually, run_sql

# Generous: only there so that a regression fails the test instead of hanging it.
NEVER = 20.0


def with_application_name(dsn: str, name: str) -> str:
    """``dsn`` with ``application_name`` set, whichever connection-string form it is in."""
    if dsn.startswith(("postgresql://", "postgres://")):
        named = f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"
    elif ";" in dsn:
        named = f"{dsn.rstrip(';')};Application Name={name}"
    else:
        named = f"{dsn} application_name={name}"
    assert PostgresOptions(named).settings.application_name == name
    return named


def assert_names(error: ConfigurationError, option: str) -> None:
    """The message names the option (``command_timeout``, or the string's ``Command Timeout``)."""
    words = option.split("_")
    pattern = r"[ _]?".join(re.escape(word) for word in words)
    assert re.search(pattern, str(error), re.IGNORECASE), f"{option} not named in: {error}"


# ------------------------------------------------------------------ command_timeout


async def test_command_timeout_cancels_a_long_statement_and_the_connection_stays_usable(
    pg_options: PostgresOptions,
) -> None:
    async with pgstreams.connect(pg_options, command_timeout=0.5, max_pool_size=1) as store:
        [(backend,)] = await store._core.query("SELECT pg_backend_pid()")
        with pytest.raises(StoreTimeoutError) as caught:
            await asyncio.wait_for(store._core.query("SELECT pg_sleep(5)"), NEVER)
        assert isinstance(caught.value, TimeoutError)
        assert "timed out" in str(caught.value) or "timeout" in str(caught.value)
        # The same connection answers right after: the server cancelled only the statement.
        assert await store._core.query("SELECT pg_backend_pid()") == [(backend,)]
        await store.append("s", Event("E", {"n": 1}))
        assert [event.data async for event in store.read_stream("s")] == [{"n": 1}]
        assert (await store.ping())["server_version"]


async def test_command_timeout_from_an_npgsql_connection_string(
    pg_dsn: str, pg_options: PostgresOptions
) -> None:
    settings = PostgresOptions(pg_dsn).settings
    parts = [f"Host={settings.host}", f"Port={settings.port}", "Command Timeout=1"]
    if settings.user:
        parts.append(f"Username={settings.user}")
    if settings.database:
        parts.append(f"Database={settings.database}")
    if settings.password:
        parts.append(f"Password={settings.password}")
    async with pgstreams.connect(";".join(parts), schema_name=pg_options.schema_name) as store:
        [(setting,)] = await store._core.query("SELECT current_setting('statement_timeout')")
        assert setting == "1s"
        with pytest.raises(StoreTimeoutError):
            await asyncio.wait_for(store._core.query("SELECT pg_sleep(5)"), NEVER)
        assert (await store.ping())["server_version"]


# ------------------------------------------------------------------ limits


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("command_timeout", 3e6),  # past statement_timeout's 32-bit milliseconds (24.8 days)
        ("command_timeout", 1e20),
        ("command_timeout", timedelta(days=30)),
        ("connect_timeout", 1e20),
        ("connect_timeout", timedelta(days=999_999_999)),
        ("pool_timeout", 1e20),
        ("pool_timeout", 10**400),  # an int no float can hold
        ("max_pool_size", 2**64),
        ("min_pool_size", 2**64),
        ("read_batch_size", 2**64),
        ("read_batch_size", 2**31),
    ],
)
def test_options_past_their_limits_are_configuration_errors(
    pg_dsn: str, option: str, value: Any
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresOptions(pg_dsn, **{option: value})
    assert not isinstance(caught.value, OverflowError)
    assert_names(caught.value, option)
    # connect() refuses the same way, before connecting.
    with pytest.raises(ConfigurationError) as caught:
        pgstreams.connect(pg_dsn, **{option: value})
    assert_names(caught.value, option)


@pytest.mark.parametrize(
    ("connection_string", "option"),
    [
        ("Host=127.0.0.1;Username=postgres;Command Timeout=99999999", "command_timeout"),
        ("Host=127.0.0.1;Username=postgres;Command Timeout=2147484", "command_timeout"),
        ("Host=127.0.0.1;Username=postgres;Timeout=99999999999999999999", "connect_timeout"),
        (
            "Host=127.0.0.1;Username=postgres;Maximum Pool Size=18446744073709551616",
            "max_pool_size",
        ),
        ("host=127.0.0.1 user=postgres connect_timeout=99999999999999999999", "connect_timeout"),
        (
            "postgresql://postgres@127.0.0.1/postgres?connect_timeout=99999999999999999999",
            "connect_timeout",
        ),
    ],
)
def test_connection_string_values_past_their_limits_are_configuration_errors(
    connection_string: str, option: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresOptions(connection_string)
    assert not isinstance(caught.value, OverflowError)
    assert_names(caught.value, option)


def test_the_largest_command_timeout_is_accepted() -> None:
    options = PostgresOptions(
        "Host=127.0.0.1;Username=postgres;Command Timeout=2147483", connect_timeout=1e9
    )
    assert options.command_timeout == 2147483.0
    assert options.connect_timeout == 1e9


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("command_timeout", 3e6),
        ("command_timeout", 1e20),
        ("connect_timeout", 1e20),
        ("pool_timeout", 1e20),
        ("pool_timeout", float("nan")),
        ("command_timeout", float("inf")),
    ],
)
def test_the_rust_core_refuses_durations_past_their_limits_too(
    pg_dsn: str, option: str, value: float
) -> None:
    """The second fence: a config that skipped ``PostgresOptions``'s checks still gets a
    ``ConfigurationError`` from the core, not a panic."""
    config: dict[str, Any] = dict(PostgresOptions(pg_dsn).to_core_config())
    config[option] = value
    with pytest.raises(ConfigurationError) as caught:
        _core.Core(config)  # type: ignore[arg-type]
    assert_names(caught.value, option)


@pytest.mark.parametrize(
    ("argument", "call"),
    [
        ("wait", lambda core: core.dequeue("jobs", "c", 1, 30.0, 1e19)),
        ("wait", lambda core: core.dequeue("jobs", "c", 1, 30.0, float("inf"))),
        ("visibility_timeout", lambda core: core.dequeue("jobs", "c", 1, 1e19, None)),
        ("visibility_timeout", lambda core: core.dequeue("jobs", "c", 1, float("nan"), None)),
    ],
)
async def test_call_durations_past_their_limits_are_configuration_errors(
    pg_store: pgstreams.PostgresEventStore,
    argument: str,
    call: Callable[[_core.Core], Awaitable[Any]],
) -> None:
    # Through the public API (checked in Python) ...
    with pytest.raises(ConfigurationError) as caught:
        await pg_store.dequeue("jobs", "c", **{argument: 1e19})
    assert_names(caught.value, argument)
    # ... and straight into the core (checked again in Rust).
    with pytest.raises(ConfigurationError) as caught:
        await asyncio.wait_for(call(pg_store._core), NEVER)
    assert_names(caught.value, argument)
    # Nothing broke: the store still works.
    await pg_store.enqueue("jobs", Event("Job", {}))
    assert await pg_store.dequeue("jobs", "c", wait=NEVER) is not None


# ------------------------------------------------------------------ the pool


async def test_an_exhausted_pool_times_out_with_pool_timeout_and_recovers(
    pg_options: PostgresOptions,
) -> None:
    app = f"t_pool_{pg_options.schema_name}"
    named = pg_options.with_overrides(
        connection_string=with_application_name(pg_options.connection_string, app)
    )
    async with pgstreams.connect(named, max_pool_size=2, pool_timeout=0.5) as store:
        sleepers = [
            asyncio.ensure_future(store._core.query("SELECT pg_sleep(5)")) for _ in range(2)
        ]

        async def sleeping() -> int:
            rows = await run_sql(
                pg_options.connection_string,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
                " AND state = 'active' AND query LIKE '%pg_sleep(5)%'",
                [app],
            )
            return int(rows[0][0])

        assert await eventually(sleeping, lambda n: n == 2) == 2
        with pytest.raises(StoreTimeoutError) as caught:
            await asyncio.wait_for(store.ping(), NEVER)
        assert isinstance(caught.value, TimeoutError)
        assert "pool" in str(caught.value)
        with pytest.raises(StoreTimeoutError):
            await asyncio.wait_for(store.append("s", Event("E", {})), NEVER)
        assert len(await asyncio.wait_for(asyncio.gather(*sleepers), NEVER)) == 2
        # Both connections are back: the store works again.
        assert (await store.ping())["server_version"]
        assert await store.append("s", Event("E", {"n": 1})) == 0
        assert [event.data async for event in store.read_stream("s")] == [{"n": 1}]


async def test_more_concurrent_calls_than_connections_all_complete(
    pg_options: PostgresOptions,
) -> None:
    async with pgstreams.connect(pg_options, max_pool_size=2) as store:
        appended = await asyncio.wait_for(
            asyncio.gather(
                *(
                    store.append_batch(
                        f"s-{n % 5}", [Event("E", {"n": n, "i": i}) for i in range(3)]
                    )
                    for n in range(20)
                )
            ),
            60,
        )
        assert len(appended) == 20
        seen = [event.data async for event in store.read_all()]
        assert sorted((d["n"], d["i"]) for d in seen) == [
            (n, i) for n in range(20) for i in range(3)
        ]
        for stream in range(5):
            assert await store.get_stream_version(f"s-{stream}") == 11  # 4 batches of 3


async def test_waiting_consumers_hold_no_connection(pg_options: PostgresOptions) -> None:
    """Ten consumers wait on a pool of two; the enqueues still get connections, and every
    consumer gets one message."""
    async with pgstreams.connect(pg_options, max_pool_size=2, pool_timeout=10) as store:
        consumers = [
            asyncio.create_task(store.dequeue("jobs", f"c{n}", wait=NEVER)) for n in range(10)
        ]
        await asyncio.sleep(0.5)
        for n in range(10):
            await store.enqueue("jobs", Event("Job", {"n": n}))
        got = await asyncio.wait_for(asyncio.gather(*consumers), NEVER + 10)
        assert sorted(message.data["n"] for message in got if message is not None) == list(
            range(10)
        )
