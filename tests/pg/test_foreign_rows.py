"""Rows another tool wrote: whatever PostgreSQL accepts as jsonb decodes (any depth, numbers
of any size, exactly), and a row that truly cannot be decoded poisons nothing: readers get
every good event before it and then an error naming it; a queue delivers the good messages
and dead-letters the bad one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

import pgstreams
from pgstreams import Event, PostgresEventStore, PostgresOptions, UndecodableEventError
from support import run_sql


async def sql(store: PostgresEventStore, statement: str, params: list[Any] | None = None) -> Any:
    return await run_sql(store.options.connection_string, statement, params)


async def insert_event(store: PostgresEventStore, stream: str, offset: int, data_sql: str) -> None:
    """An event row written by hand, as another program would (the version row kept right)."""
    schema = f'"{store.options.schema_name}"'
    await sql(
        store,
        f"INSERT INTO {schema}.streams (stream_name, version) VALUES ($1, $2) "
        "ON CONFLICT (stream_name) DO UPDATE SET version = excluded.version",
        [stream, offset],
    )
    await sql(
        store,
        f"INSERT INTO {schema}.events (stream_name, stream_offset, event_id, event_type, data) "
        f"VALUES ($1, $2, $3, 'Foreign', {data_sql})",
        [stream, offset, uuid.uuid4()],
    )


def depth(value: Any) -> int:
    levels = 0
    while isinstance(value, list) and value:
        value, levels = value[0], levels + 1
    return levels


@pytest.mark.parametrize("levels", [200, 5000])
async def test_deeply_nested_documents_decode(pg_store: PostgresEventStore, levels: int) -> None:
    await pg_store.append_batch("s", [Event("Good", {"i": i}) for i in range(3)])
    nested = "[" * levels + "1" + "]" * levels
    await insert_event(pg_store, "s", 3, f"'{nested}'::jsonb")
    events = [e async for e in pg_store.read_all()]
    assert [e.type for e in events] == ["Good", "Good", "Good", "Foreign"]
    assert depth(events[3].data) == levels


async def test_numbers_beyond_a_float_come_back_exactly(pg_store: PostgresEventStore) -> None:
    document = (
        '{"big_int": 18446744073709551616, "huge_int": 123456789012345678901234567890, '
        '"negative": -99999999999999999999, "overflow": 1e400, "underflow": -1e-400, '
        '"plain": 1.5, "whole": 3}'
    )
    await insert_event(pg_store, "numbers", 0, f"'{document}'::jsonb")
    [event] = [e async for e in pg_store.read_stream("numbers")]
    data = event.data
    assert data["big_int"] == 2**64 and type(data["big_int"]) is int
    assert data["huge_int"] == 123456789012345678901234567890
    assert data["negative"] == -99999999999999999999
    # jsonb keeps numbers as numeric, which writes 1e400 out in full: an exact int.
    assert data["overflow"] == 10**400 and type(data["overflow"]) is int
    assert isinstance(data["underflow"], Decimal) and data["underflow"] == Decimal("-1e-400")
    assert data["plain"] == 1.5 and type(data["plain"]) is float
    assert data["whole"] == 3 and type(data["whole"]) is int


async def test_a_foreign_deep_message_is_delivered(pg_store: PostgresEventStore) -> None:
    schema = f'"{pg_store.options.schema_name}"'
    nested = "[" * 300 + '"deep"' + "]" * 300
    await sql(
        pg_store,
        f"INSERT INTO {schema}.queue_events (id, stream_name, event_type, data) "
        f"VALUES ($1, 'jobs', 'Foreign', '{nested}'::jsonb)",
        [uuid.uuid4()],
    )
    message = await pg_store.dequeue("jobs", "c")
    assert message is not None and depth(message.data) == 300


# ------------------------------------------------------------------- undecodable rows
#
# In a SQL_ASCII database PostgreSQL stores text bytes as given, so another tool can leave
# text that is not UTF-8: the one thing the core cannot turn into a Python str.


@pytest.fixture
async def ascii_store(pg_dsn: str) -> AsyncIterator[PostgresEventStore]:
    database = f"pgstreams_ascii_{uuid.uuid4().hex[:10]}"
    await run_sql(
        pg_dsn,
        f"CREATE DATABASE {database} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
        "TEMPLATE template0",
    )
    options = PostgresOptions(pg_dsn).with_overrides(
        connection_string=f"{pg_dsn.rsplit('/', 1)[0]}/{database}"
    )
    store = await pgstreams.connect(options)
    try:
        yield store
    finally:
        await store.close()
        await run_sql(pg_dsn, f"DROP DATABASE {database} WITH (FORCE)")


async def test_a_reader_gets_the_good_events_then_an_error_naming_the_bad_one(
    ascii_store: PostgresEventStore,
) -> None:
    await ascii_store.append_batch("s", [Event("Good", {"i": i}) for i in range(10)])
    # E'...\xe9...' is the byte 0xE9, stored as it is in a SQL_ASCII database.
    await insert_event(ascii_store, "s", 10, 'E\'{"text": "caf\\xe9"}\'::jsonb')
    await ascii_store.append("s", Event("After", {}))

    seen: list[Any] = []
    with pytest.raises(UndecodableEventError) as caught:
        async for event in ascii_store.read_all():
            seen.append(event)
    assert [e.data["i"] for e in seen] == list(range(10))
    error = caught.value
    assert (error.stream, error.offset) == ("s", 10)
    assert error.position is not None and error.position > seen[-1].position
    assert error.event_id is not None and error.event_id in str(error)
    assert "offset 10" in str(error) and "'s'" in str(error).replace('"', "'")

    # A reader can step over it and go on.
    after = [e async for e in ascii_store.read_all(after_position=error.position)]
    assert [e.type for e in after] == ["After"]
    # The per-stream reader behaves the same.
    with pytest.raises(UndecodableEventError):
        _ = [e async for e in ascii_store.read_stream("s", 5)]


async def test_a_queue_delivers_the_good_messages_and_dead_letters_the_bad_one(
    ascii_store: PostgresEventStore,
) -> None:
    good = [Event("Good", {"i": i}) for i in range(10)]
    await ascii_store.enqueue_batch("jobs", good[:5])
    schema = f'"{ascii_store.options.schema_name}"'
    bad_id = uuid.uuid4()
    await sql(
        ascii_store,
        f"INSERT INTO {schema}.queue_events (id, stream_name, event_type, data) "
        "VALUES ($1, 'jobs', E'Bad\\xff', '{}'::jsonb)",
        [bad_id],
    )
    await ascii_store.enqueue_batch("jobs", good[5:])

    batch = await ascii_store.dequeue_batch("jobs", "c", 20)
    assert [m.id for m in batch] == [e.id for e in good]
    # The bad one became a dead letter instead of failing every dequeue, and the listing
    # shows it (its text with a replacement character) rather than failing too.
    [letter] = await ascii_store.get_dead_letters("jobs")
    assert (letter.id, letter.reason) == (bad_id, "undecodable")
    assert letter.type == "Bad\ufffd"
    assert await ascii_store.acknowledge_batch(batch) == 10
    assert await ascii_store.get_pending_count("jobs") == 0
