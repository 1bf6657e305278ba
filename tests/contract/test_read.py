"""Reading persistent streams: ``read_stream`` from an offset and across batches, and the global
``read_all`` feed with exact resumption."""

from __future__ import annotations

from typing import Any

from pgstreams import Event

from .helpers import collect, delete_events, name


async def fill(store: Any, stream: str, count: int) -> list[Event]:
    batch = [Event("Numbered", {"n": i}) for i in range(count)]
    await store.append_batch(stream, batch)
    return batch


async def test_read_stream_returns_events_in_offset_order(store: Any) -> None:
    stream = name()
    batch = await fill(store, stream, 5)
    stored = await collect(store.read_stream(stream))
    assert [e.offset for e in stored] == [0, 1, 2, 3, 4]
    assert [e.data["n"] for e in stored] == [0, 1, 2, 3, 4]
    assert [e.id for e in stored] == [e.id for e in batch]


async def test_read_stream_of_unknown_stream_is_empty(store: Any) -> None:
    assert await collect(store.read_stream(name())) == []


async def test_read_stream_returns_only_that_stream(store: Any) -> None:
    mine, other = name(), name()
    await store.append(mine, Event("Mine", {}))
    await store.append(other, Event("Other", {}))
    await store.append(mine, Event("Mine", {}))
    stored = await collect(store.read_stream(mine))
    assert [e.type for e in stored] == ["Mine", "Mine"]
    assert all(e.stream == mine for e in stored)


async def test_read_stream_from_an_offset(store: Any) -> None:
    stream = name()
    await fill(store, stream, 6)
    stored = await collect(store.read_stream(stream, 4))
    assert [e.offset for e in stored] == [4, 5]
    assert [e.offset for e in await collect(store.read_stream(stream, start_offset=0))] == list(
        range(6)
    )


async def test_read_stream_from_past_the_end_is_empty(store: Any) -> None:
    stream = name()
    await fill(store, stream, 3)
    assert await collect(store.read_stream(stream, 3)) == []
    assert await collect(store.read_stream(stream, 100)) == []


async def test_read_stream_spans_batch_boundaries(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    stream = name()
    await fill(store, stream, 10)
    assert [e.offset for e in await collect(store.read_stream(stream))] == list(range(10))
    assert [e.offset for e in await collect(store.read_stream(stream, 4))] == list(range(4, 10))
    assert [e.offset for e in await collect(store.read_stream(stream, 9))] == [9]


async def test_read_stream_max_count_across_batch_boundaries(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    stream = name()
    await fill(store, stream, 10)
    assert [e.offset for e in await collect(store.read_stream(stream, max_count=5))] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert [e.offset for e in await collect(store.read_stream(stream, 2, max_count=6))] == list(
        range(2, 8)
    )
    assert [e.offset for e in await collect(store.read_stream(stream, max_count=3))] == [0, 1, 2]
    assert [e.offset for e in await collect(store.read_stream(stream, 7, max_count=50))] == [
        7,
        8,
        9,
    ]


async def test_read_stream_with_batch_size_dividing_the_length(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    stream = name()
    await fill(store, stream, 9)
    assert [e.offset for e in await collect(store.read_stream(stream))] == list(range(9))


async def test_breaking_out_of_a_read_leaves_the_store_usable(make_store: Any) -> None:
    store = await make_store(read_batch_size=2, max_pool_size=2)
    stream = name()
    await fill(store, stream, 10)
    for _ in range(10):
        async for event in store.read_stream(stream):
            assert event.offset == 0
            break
        async for _event in store.read_all():
            break
    assert await store.append(stream, Event("After", {})) == 10
    assert len(await collect(store.read_stream(stream))) == 11


async def test_read_stream_sees_events_appended_between_batches(make_store: Any) -> None:
    store = await make_store(read_batch_size=2)
    stream = name()
    await fill(store, stream, 3)
    seen = []
    async for event in store.read_stream(stream):
        seen.append(event.offset)
        if event.offset == 0:
            await store.append(stream, Event("Late", {}))
    assert seen == [0, 1, 2, 3]


# ---------------------------------------------------------------- read_all


async def test_read_all_on_empty_store_is_empty(store: Any) -> None:
    assert await collect(store.read_all()) == []


async def test_read_all_returns_every_event_in_append_order(store: Any) -> None:
    a, b = name("a"), name("b")
    await store.append(a, Event("A0", {}))
    await store.append_batch(b, [Event("B0", {}), Event("B1", {})])
    await store.append(a, Event("A1", {}))
    await store.append(b, Event("B2", {}))
    stored = await collect(store.read_all())
    assert [(e.stream, e.offset, e.type) for e in stored] == [
        (a, 0, "A0"),
        (b, 0, "B0"),
        (b, 1, "B1"),
        (a, 1, "A1"),
        (b, 2, "B2"),
    ]
    positions = [e.position for e in stored]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


async def test_read_all_carries_the_event_contents(store: Any) -> None:
    stream = name()
    event = Event("A", {"k": [1, 2]}, metadata={"m": True}, correlation_id="c", causation_id="d")
    await store.append(stream, event)
    [stored] = await collect(store.read_all())
    assert (stored.id, stored.type, stored.data, stored.metadata) == (
        event.id,
        "A",
        {"k": [1, 2]},
        {"m": True},
    )
    assert (stored.correlation_id, stored.causation_id) == ("c", "d")


async def test_read_all_positions_match_read_stream_positions(store: Any) -> None:
    stream = name()
    await fill(store, stream, 4)
    from_stream = {e.id: e.position for e in await collect(store.read_stream(stream))}
    from_all = {e.id: e.position for e in await collect(store.read_all())}
    assert from_stream == from_all


async def test_read_all_resumes_exactly_after_a_position(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    a, b = name("a"), name("b")
    for i in range(5):
        await store.append(a, Event("A", {"i": i}))
        await store.append(b, Event("B", {"i": i}))
    everything = await collect(store.read_all())
    assert len(everything) == 10

    first = await collect(store.read_all(max_count=4))
    assert [e.id for e in first] == [e.id for e in everything[:4]]
    rest = await collect(store.read_all(first[-1].position))
    assert [e.id for e in rest] == [e.id for e in everything[4:]]
    assert await collect(store.read_all(everything[-1].position)) == []


async def test_read_all_resume_sees_events_appended_later(store: Any) -> None:
    stream = name()
    await fill(store, stream, 2)
    seen = await collect(store.read_all())
    later = Event("Later", {})
    await store.append(name(), later)
    more = await collect(store.read_all(seen[-1].position))
    assert [e.id for e in more] == [later.id]


async def test_read_all_max_count(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    stream = name()
    await fill(store, stream, 10)
    assert [e.offset for e in await collect(store.read_all(max_count=7))] == list(range(7))
    assert len(await collect(store.read_all(max_count=100))) == 10
    everything = await collect(store.read_all())
    after = await collect(store.read_all(everything[1].position, max_count=2))
    assert [e.offset for e in after] == [2, 3]


async def test_read_all_paging_by_position_visits_every_event_once(make_store: Any) -> None:
    store = await make_store(read_batch_size=4)
    streams = [name() for _ in range(3)]
    for i in range(9):
        await store.append(streams[i % 3], Event("E", {"i": i}))
    seen: list[int] = []
    position = None
    while True:
        page = await collect(store.read_all(position, max_count=2))
        if not page:
            break
        seen.extend(e.data["i"] for e in page)
        position = page[-1].position
    assert seen == list(range(9))


async def test_head_position_is_the_newest_position_and_never_goes_back(
    store: Any, pg_dsn_or_none: str | None
) -> None:
    assert await store.get_head_position() == 0
    stream = name()
    await store.append_batch(stream, [Event("E", {}) for _ in range(3)])
    newest = [e async for e in store.read_all()][-1].position
    assert await store.get_head_position() == newest
    # Deleting events, even the newest, by hand or by retention, never moves the head back.
    await delete_events(store, stream, pg_dsn_or_none)
    assert await store.get_head_position() == newest
    await store.append(name(), Event("E", {}))
    assert await store.get_head_position() > newest
