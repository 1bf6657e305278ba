"""Reading a stream backwards (newest first, from the end or from an offset down, with a cap,
across read batches) and ``get_last_event``: what loading an aggregate from its snapshot needs.
On a 100k-event stream both answer at once, and on PostgreSQL the statement is one backward
scan of the stream index, never a scan of the stream."""

from __future__ import annotations

from typing import Any

import pytest

from pgstreams import ConfigurationError, Event
from support import run_sql

from .helpers import collect, delete_events, name

BIG = 100_000


async def fill(store: Any, stream: str, count: int) -> None:
    await store.append_batch(stream, [Event("Numbered", {"n": i}) for i in range(count)])


async def back(store: Any, stream: str, *args: Any, **kwargs: Any) -> list[int]:
    """The offsets a backward read yields."""
    return [
        e.offset for e in await collect(store.read_stream(stream, *args, backwards=True, **kwargs))
    ]


@pytest.mark.parametrize("batch", [1, 3, 5, 1000])
async def test_backwards_is_newest_first(make_store: Any, batch: int) -> None:
    store = await make_store(read_batch_size=batch)
    stream, other = name(), name()
    await fill(store, stream, 5)
    await fill(store, other, 3)
    await fill(store, stream, 5)
    forwards = await collect(store.read_stream(stream))
    backwards = await collect(store.read_stream(stream, backwards=True))
    assert backwards == forwards[::-1]  # the same events, every field
    assert [e.offset for e in backwards] == list(range(9, -1, -1))
    assert all(e.stream == stream for e in backwards)


@pytest.mark.parametrize("batch", [1, 3, 1000])
async def test_backwards_from_an_offset_down(make_store: Any, batch: int) -> None:
    store = await make_store(read_batch_size=batch)
    stream = name()
    await fill(store, stream, 10)
    assert await back(store, stream, 6) == [6, 5, 4, 3, 2, 1, 0]
    assert await back(store, stream, start_offset=9) == list(range(9, -1, -1))
    assert await back(store, stream, 0) == [0]
    assert await back(store, stream, 10) == list(range(9, -1, -1))  # past the end: from the last
    assert await back(store, stream, 2**63 - 1) == list(range(9, -1, -1))


@pytest.mark.parametrize("batch", [1, 3, 4, 1000])
async def test_backwards_with_max_count(make_store: Any, batch: int) -> None:
    store = await make_store(read_batch_size=batch)
    stream = name()
    await fill(store, stream, 10)
    assert await back(store, stream, max_count=4) == [9, 8, 7, 6]
    assert await back(store, stream, 5, max_count=3) == [5, 4, 3]
    assert await back(store, stream, 2, max_count=10) == [2, 1, 0]
    assert await back(store, stream, max_count=1) == [9]
    assert await back(store, stream, max_count=10) == list(range(9, -1, -1))
    assert await back(store, stream, max_count=11) == list(range(9, -1, -1))
    assert await back(store, stream, max_count=0) == []


async def test_backwards_on_a_stream_without_events(store: Any, pg_dsn_or_none: str | None) -> None:
    assert await back(store, name()) == []
    assert await back(store, name(), 5) == []
    stream = name()
    await fill(store, stream, 4)
    await delete_events(store, stream, pg_dsn_or_none)
    assert await back(store, stream) == []


async def test_backwards_after_a_partial_deletion_and_more_appends(
    store: Any, pg_dsn_or_none: str | None
) -> None:
    stream = name()
    await fill(store, stream, 3)
    await delete_events(store, stream, pg_dsn_or_none)
    await fill(store, stream, 2)  # offsets continue where they were: 3, 4
    assert await back(store, stream) == [4, 3]
    assert await back(store, stream, 3) == [3]
    assert await back(store, stream, 2) == []


async def test_breaking_out_of_a_backward_read_leaves_the_store_usable(make_store: Any) -> None:
    store = await make_store(read_batch_size=2, max_pool_size=2)
    stream = name()
    await fill(store, stream, 10)
    for _ in range(10):
        async for event in store.read_stream(stream, backwards=True):
            assert event.offset == 9
            break
    assert await store.append(stream, Event("After", {})) == 10
    assert await back(store, stream, max_count=2) == [10, 9]


async def test_get_last_event(store: Any, pg_dsn_or_none: str | None) -> None:
    stream, other = name(), name()
    assert await store.get_last_event(stream) is None  # never written
    await fill(store, stream, 3)
    await fill(store, other, 2)
    last = await store.get_last_event(stream)
    assert last is not None
    assert last == (await collect(store.read_stream(stream)))[-1]
    assert (last.stream, last.offset, last.data) == (stream, 2, {"n": 2})
    newest = Event(
        "Newest", {"x": [1, 2]}, metadata={"m": 1}, correlation_id="c", causation_id="k", version=3
    )
    await store.append(stream, newest)
    last = await store.get_last_event(stream)
    assert last is not None
    assert (last.offset, last.id, last.type, last.data, last.metadata) == (
        3,
        newest.id,
        "Newest",
        {"x": [1, 2]},
        {"m": 1},
    )
    assert (last.correlation_id, last.causation_id, last.version) == ("c", "k", 3)
    assert last.offset == await store.get_stream_version(stream)
    # A stream whose events are all gone has no last event, but keeps its version.
    await delete_events(store, stream, pg_dsn_or_none)
    assert await store.get_last_event(stream) is None
    assert await store.get_stream_version(stream) == 3
    await store.append(stream, Event("Again", {}))
    again = await store.get_last_event(stream)
    assert again is not None and (again.offset, again.type) == (4, "Again")


async def test_forwards_from_none_is_from_the_start(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    stream = name()
    await fill(store, stream, 7)
    everything = await collect(store.read_stream(stream))
    assert await collect(store.read_stream(stream, None)) == everything
    assert (
        await collect(store.read_stream(stream, start_offset=None, backwards=False)) == everything
    )
    assert [e.offset for e in everything] == list(range(7))
    assert [e.offset for e in await collect(store.read_stream(stream, None, max_count=4))] == [
        0,
        1,
        2,
        3,
    ]


@pytest.mark.parametrize("value", [1, "yes", None, 0])
async def test_backwards_must_be_a_bool(store: Any, value: Any) -> None:
    with pytest.raises(ConfigurationError, match="backwards"):
        await collect(store.read_stream(name(), backwards=value))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"start_offset": -1}, "start_offset"), ({"max_count": -1}, "max_count")],
)
async def test_bad_backward_read_arguments(store: Any, kwargs: Any, argument: str) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        await collect(store.read_stream(name(), backwards=True, **kwargs))


async def explain_backward_read(store: Any, dsn: str, stream: str, start: int, limit: int) -> Any:
    """``EXPLAIN ANALYZE`` of the statement the core sends for a backward read."""
    schema = store.options.schema_name
    sql = (
        f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT stream_name, stream_offset, position, event_id, "
        f"event_type, data, metadata, correlation_id, causation_id, created_at, version "
        f'FROM "{schema}".events WHERE stream_name = $1 AND stream_offset <= $2 '
        f"ORDER BY stream_offset DESC LIMIT $3"
    )
    [(document,)] = await run_sql(dsn, sql, [stream, start, limit])
    return document[0]["Plan"]


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(nodes(child))
    return found


async def test_last_event_and_backward_read_of_a_100k_event_stream(
    store: Any, pg_dsn_or_none: str | None
) -> None:
    big, before, after = name("big"), name("a"), name("z")
    await fill(store, before, 10)
    await fill(store, big, BIG)
    await fill(store, after, 10)

    last = await store.get_last_event(big)
    assert last is not None
    assert (last.stream, last.offset, last.data) == (big, BIG - 1, {"n": BIG - 1})
    newest = await collect(store.read_stream(big, backwards=True, max_count=10))
    assert [(e.offset, e.data["n"]) for e in newest] == [
        (n, n) for n in range(BIG - 1, BIG - 11, -1)
    ]
    assert newest[0] == last
    middle = await back(store, big, 50_000, max_count=10)
    assert middle == list(range(50_000, 49_990, -1))
    assert await back(store, big, 4, max_count=10) == [4, 3, 2, 1, 0]

    if pg_dsn_or_none is None:
        return
    for start, limit in [(2**63 - 1, 1), (2**63 - 1, 10), (50_000, 10)]:
        plan = await explain_backward_read(store, pg_dsn_or_none, big, start, limit)
        kinds = [node["Node Type"] for node in nodes(plan)]
        assert "Seq Scan" not in kinds and "Sort" not in kinds, kinds
        [scan] = [node for node in nodes(plan) if "Index" in node["Node Type"]]
        assert scan["Index Name"] == "events_stream_offset_key", scan
        assert scan["Scan Direction"] == "Backward", scan
        # Only what is returned is read: never the stream.
        assert scan["Actual Rows"] == limit, scan
