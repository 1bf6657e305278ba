"""Appending to persistent streams: offsets, ids, metadata, optimistic concurrency, retries,
duplicates, consumer offsets."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime
from typing import Any

import pytest

from pgstreams import ConcurrencyError, DuplicateEventError, Event, StoredEvent

from .helpers import collect, delete_events, name


def events(count: int, prefix: str = "e") -> list[Event]:
    return [Event("Happened", {"n": i, "tag": f"{prefix}{i}"}) for i in range(count)]


async def test_offsets_start_at_zero_and_continue_across_appends(store: Any) -> None:
    stream = name()
    assert await store.append(stream, Event("A", {})) == 0
    assert await store.append(stream, Event("A", {})) == 1
    assert await store.append_batch(stream, events(3)) == [2, 3, 4]
    assert await store.append(stream, Event("A", {})) == 5
    assert await store.get_stream_version(stream) == 5


async def test_stream_version_is_minus_one_for_a_stream_never_written(store: Any) -> None:
    assert await store.get_stream_version(name()) == -1


async def test_each_stream_has_its_own_offsets(store: Any) -> None:
    first, second = name(), name()
    assert await store.append_batch(first, events(3)) == [0, 1, 2]
    assert await store.append_batch(second, events(2)) == [0, 1]
    assert await store.get_stream_version(first) == 2
    assert await store.get_stream_version(second) == 1


async def test_empty_batch_returns_empty_list_and_writes_nothing(store: Any) -> None:
    stream = name()
    assert await store.append_batch(stream, []) == []
    assert await store.get_stream_version(stream) == -1
    await store.append(stream, Event("A", {}))
    assert await store.append_batch(stream, []) == []
    assert await store.get_stream_version(stream) == 0


async def test_stored_event_keeps_id_type_data_and_correlation(store: Any) -> None:
    stream = name()
    event_id = uuid.uuid4()
    event = Event(
        "OrderPlaced",
        {"order": 42, "items": ["a", "b"]},
        metadata={"user": "ann"},
        id=event_id,
        correlation_id="corr-1",
        causation_id="cause-1",
    )
    assert await store.append(stream, event) == 0
    [stored] = await collect(store.read_stream(stream))
    assert isinstance(stored, StoredEvent)
    assert stored.stream == stream
    assert stored.offset == 0
    assert stored.id == event_id
    assert stored.type == "OrderPlaced"
    assert stored.data == {"order": 42, "items": ["a", "b"]}
    assert stored.metadata == {"user": "ann"}
    assert stored.correlation_id == "corr-1"
    assert stored.causation_id == "cause-1"
    assert isinstance(stored.position, int)
    assert isinstance(stored.timestamp, datetime)
    assert stored.timestamp.tzinfo is not None


async def test_generated_ids_are_kept_and_distinct(store: Any) -> None:
    stream = name()
    batch = events(5)
    await store.append_batch(stream, batch)
    stored = await collect(store.read_stream(stream))
    assert [e.id for e in stored] == [e.id for e in batch]
    assert len({e.id for e in batch}) == 5


async def test_missing_correlation_and_causation_come_back_as_none(store: Any) -> None:
    stream = name()
    await store.append(stream, Event("A", {"x": 1}))
    [stored] = await collect(store.read_stream(stream))
    assert stored.correlation_id is None
    assert stored.causation_id is None
    assert stored.metadata == {}


async def test_append_merges_metadata_argument_into_event_metadata(store: Any) -> None:
    stream = name()
    event = Event("A", {}, metadata={"a": 1, "b": 1})
    await store.append(stream, event, {"b": 2})
    [stored] = await collect(store.read_stream(stream))
    assert stored.metadata == {"a": 1, "b": 2}
    assert stored.id == event.id
    # The caller's Event is not changed.
    assert event.metadata == {"a": 1, "b": 1}


async def test_append_metadata_argument_on_event_without_metadata(store: Any) -> None:
    stream = name()
    await store.append(stream, Event("A", {}), {"source": "test"})
    [stored] = await collect(store.read_stream(stream))
    assert stored.metadata == {"source": "test"}


async def test_timestamps_do_not_go_backwards_within_a_stream(store: Any) -> None:
    stream = name()
    for _ in range(3):
        await store.append(stream, Event("A", {}))
    stored = await collect(store.read_stream(stream))
    stamps = [e.timestamp for e in stored]
    assert stamps == sorted(stamps)


# ---------------------------------------------------------------- expected_version


async def test_expected_version_minus_one_accepts_a_new_stream(store: Any) -> None:
    stream = name()
    assert await store.append(stream, Event("A", {}), expected_version=-1) == 0


async def test_expected_version_equal_to_last_offset_is_accepted(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    assert await store.append(stream, Event("A", {}), expected_version=2) == 3
    assert await store.append_batch(stream, events(2), expected_version=3) == [4, 5]


async def test_wrong_expected_version_raises_and_writes_nothing(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(2))
    with pytest.raises(ConcurrencyError) as caught:
        await store.append_batch(stream, events(3), expected_version=5)
    assert caught.value.expected == 5
    assert caught.value.actual == 1
    assert await store.get_stream_version(stream) == 1
    assert len(await collect(store.read_stream(stream))) == 2


async def test_expected_version_minus_one_on_existing_stream_raises(store: Any) -> None:
    stream = name()
    await store.append(stream, Event("A", {}))
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(stream, Event("A", {}), expected_version=-1)
    assert caught.value.expected == -1
    assert caught.value.actual == 0
    assert await store.get_stream_version(stream) == 0


async def test_expected_version_on_a_new_stream_must_be_minus_one(store: Any) -> None:
    stream = name()
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(stream, Event("A", {}), expected_version=0)
    assert (caught.value.expected, caught.value.actual) == (0, -1)
    assert await store.get_stream_version(stream) == -1


async def test_an_event_rejected_for_its_version_can_be_appended_later(store: Any) -> None:
    stream = name()
    await store.append(stream, Event("A", {}))
    event = Event("B", {})
    with pytest.raises(ConcurrencyError):
        await store.append(stream, event, expected_version=7)
    assert await store.append(stream, event, expected_version=0) == 1


async def test_only_one_of_racing_writers_with_same_expected_version_wins(store: Any) -> None:
    stream = name()
    await store.append(stream, Event("A", {}))

    async def attempt(i: int) -> int | None:
        try:
            return int(await store.append(stream, Event("B", {"i": i}), expected_version=0))
        except ConcurrencyError:
            return None

    results = await asyncio.gather(*(attempt(i) for i in range(6)))
    assert [r for r in results if r is not None] == [1]
    assert await store.get_stream_version(stream) == 1


# ---------------------------------------------------------------- retries and duplicates


async def test_retried_batch_returns_same_offsets_and_writes_nothing(store: Any) -> None:
    stream = name()
    batch = events(3)
    await store.append(stream, Event("Before", {}))
    assert await store.append_batch(stream, batch) == [1, 2, 3]
    assert await store.append_batch(stream, batch) == [1, 2, 3]
    assert await store.get_stream_version(stream) == 3
    assert len(await collect(store.read_stream(stream))) == 4


async def test_retry_after_later_appends_returns_original_offsets(store: Any) -> None:
    stream = name()
    batch = events(2)
    assert await store.append_batch(stream, batch) == [0, 1]
    await store.append_batch(stream, events(3, "later"))
    assert await store.append_batch(stream, batch) == [0, 1]
    assert await store.get_stream_version(stream) == 4


async def test_retry_with_the_same_expected_version_is_accepted(store: Any) -> None:
    stream = name()
    batch = events(3)
    assert await store.append_batch(stream, batch, expected_version=-1) == [0, 1, 2]
    # The first call succeeded but its answer was lost; the caller retries it unchanged.
    assert await store.append_batch(stream, batch, expected_version=-1) == [0, 1, 2]
    assert await store.get_stream_version(stream) == 2


async def test_retried_single_append_returns_same_offset(store: Any) -> None:
    stream = name()
    event = Event("A", {"x": 1})
    assert await store.append(stream, event) == 0
    assert await store.append(stream, event) == 0
    assert await store.append(stream, event, expected_version=-1) == 0
    assert await store.get_stream_version(stream) == 0


async def test_contiguous_run_of_stored_events_in_order_is_a_retry(store: Any) -> None:
    stream = name()
    batch = events(4)
    await store.append_batch(stream, batch)
    assert await store.append_batch(stream, batch[1:3]) == [1, 2]
    assert await store.get_stream_version(stream) == 3


async def test_id_reused_in_another_stream_raises_duplicate(store: Any) -> None:
    first, second = name(), name()
    event = Event("A", {})
    await store.append(first, event)
    with pytest.raises(DuplicateEventError):
        await store.append(second, event)
    with pytest.raises(DuplicateEventError):
        await store.append_batch(second, [Event("New", {}), event])
    assert await store.get_stream_version(second) == -1
    assert await store.get_stream_version(first) == 0


async def test_stored_events_in_a_different_order_raise_duplicate(store: Any) -> None:
    stream = name()
    a, b = events(2)
    await store.append_batch(stream, [a, b])
    with pytest.raises(DuplicateEventError):
        await store.append_batch(stream, [b, a])
    assert await store.get_stream_version(stream) == 1


async def test_non_contiguous_stored_events_raise_duplicate(store: Any) -> None:
    stream = name()
    a, b, c = events(3)
    await store.append_batch(stream, [a, b, c])
    with pytest.raises(DuplicateEventError):
        await store.append_batch(stream, [a, c])
    assert await store.get_stream_version(stream) == 2


async def test_batch_mixing_stored_and_new_ids_raises_duplicate_and_writes_nothing(
    store: Any,
) -> None:
    stream = name()
    batch = events(2)
    await store.append_batch(stream, batch)
    fresh = Event("Fresh", {})
    with pytest.raises(DuplicateEventError):
        await store.append_batch(stream, [*batch, fresh])
    with pytest.raises(DuplicateEventError):
        await store.append_batch(stream, [fresh, batch[0]])
    assert await store.get_stream_version(stream) == 1
    # The new event was not written by the failed calls, so it can still be appended.
    assert await store.append(stream, fresh) == 2


async def test_duplicate_id_inside_one_batch_raises_duplicate(store: Any) -> None:
    stream = name()
    event = Event("A", {})
    with pytest.raises(DuplicateEventError):
        await store.append_batch(stream, [event, Event("B", {}), event])
    assert await store.get_stream_version(stream) == -1


async def test_same_id_in_two_event_objects_is_a_duplicate_in_another_stream(
    store: Any,
) -> None:
    shared = uuid.uuid4()
    await store.append(name(), Event("A", {}, id=shared))
    other = name()
    with pytest.raises(DuplicateEventError):
        await store.append(other, Event("B", {"different": True}, id=shared))
    assert await store.get_stream_version(other) == -1


# ---------------------------------------------------------------- streams


async def test_list_streams_lists_persistent_streams_with_events(store: Any) -> None:
    first, second, queue = name("b"), name("a"), name("q")
    await store.append(first, Event("A", {}))
    await store.append_batch(second, events(2))
    await store.enqueue(queue, Event("Q", {}))
    listed = await store.list_streams()
    assert sorted(s.stream for s in listed) == sorted([first, second])


async def test_stream_metadata_is_none_for_unknown_stream(store: Any) -> None:
    assert await store.get_stream_metadata(name()) is None


async def test_stream_metadata_describes_the_stream(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    meta = await store.get_stream_metadata(stream)
    assert meta is not None
    assert meta.stream == stream
    assert meta.length == 3
    assert meta.first_offset == 0
    assert meta.last_offset == 2
    assert meta.version == 2
    assert meta.oldest_timestamp is not None and meta.newest_timestamp is not None
    assert meta.oldest_timestamp <= meta.newest_timestamp


async def test_offsets_continue_after_the_streams_events_are_deleted(
    store: Any, store_kind: str, request: pytest.FixtureRequest
) -> None:
    pg_dsn = request.getfixturevalue("pg_dsn") if store_kind == "postgres" else None
    stream = name()
    await store.append_batch(stream, events(3))
    await delete_events(store, stream, pg_dsn)
    assert await collect(store.read_stream(stream)) == []
    assert await store.get_stream_version(stream) == 2
    assert await store.append(stream, Event("After", {})) == 3
    with pytest.raises(ConcurrencyError):
        await store.append(stream, Event("Again", {}), expected_version=-1)
    stored = await collect(store.read_stream(stream))
    assert [(e.offset, e.type) for e in stored] == [(3, "After")]


async def test_persistent_and_ephemeral_streams_are_separate(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Q", {}))
    assert await store.get_stream_version(stream) == -1
    assert await store.append(stream, Event("P", {})) == 0
    assert await store.get_pending_count(stream) == 1
    message = await store.dequeue(stream, "c1")
    assert message is not None and message.type == "Q"
    [stored] = await collect(store.read_stream(stream))
    assert stored.type == "P"


# ---------------------------------------------------------------- concurrency


async def test_concurrent_appenders_get_gap_free_unique_contiguous_offsets(store: Any) -> None:
    stream = name()
    rng = random.Random(1234)
    plans = [[rng.randint(1, 3) for _ in range(25)] for _ in range(8)]

    async def appender(worker: int, sizes: list[int]) -> list[tuple[list[int], list[Event]]]:
        done = []
        for n, size in enumerate(sizes):
            batch = [Event("W", {"worker": worker, "n": n, "k": k}) for k in range(size)]
            if size == 1 and n % 2 == 0:
                offsets = [await store.append(stream, batch[0])]
            else:
                offsets = await store.append_batch(stream, batch)
            done.append((offsets, batch))
        return done

    results = await asyncio.gather(*(appender(w, p) for w, p in enumerate(plans)))
    total = sum(sum(p) for p in plans)
    all_offsets = sorted(o for worker in results for offsets, _ in worker for o in offsets)
    assert all_offsets == list(range(total))
    for worker in results:
        for offsets, batch in worker:
            assert offsets == list(range(offsets[0], offsets[0] + len(batch)))
    assert await store.get_stream_version(stream) == total - 1

    stored = await collect(store.read_stream(stream))
    assert [e.offset for e in stored] == list(range(total))
    by_offset = {
        o: e.id for worker in results for offs, b in worker for o, e in zip(offs, b, strict=True)
    }
    assert all(e.id == by_offset[e.offset] for e in stored)
    # Each worker's events keep the order that worker appended them in.
    for w in range(8):
        mine = [(e.data["n"], e.data["k"]) for e in stored if e.data["worker"] == w]
        assert mine == sorted(mine)


async def test_concurrent_appends_keep_every_event_once_in_read_all(store: Any) -> None:
    streams = [name() for _ in range(4)]

    async def writer(stream: str) -> None:
        for n in range(15):
            await store.append_batch(stream, [Event("W", {"n": n, "k": k}) for k in range(2)])

    await asyncio.gather(*(writer(s) for s in streams))
    feed = await collect(store.read_all())
    assert len(feed) == 4 * 30
    assert len({e.id for e in feed}) == len(feed)
    positions = [e.position for e in feed]
    assert positions == sorted(positions)
    for stream in streams:
        assert [e.offset for e in feed if e.stream == stream] == list(range(30))


async def test_concurrent_retries_of_one_batch_write_it_once(store: Any) -> None:
    stream = name()
    for round_ in range(5):
        batch = [Event("R", {"round": round_, "k": k}) for k in range(3)]
        results = await asyncio.gather(*(store.append_batch(stream, batch) for _ in range(4)))
        first = round_ * 3
        assert results == [[first, first + 1, first + 2]] * 4
    assert await store.get_stream_version(stream) == 14
    assert len(await collect(store.read_stream(stream))) == 15


# ---------------------------------------------------------------- consumer offsets


async def test_committed_offset_is_none_before_any_commit(store: Any) -> None:
    assert await store.get_committed_offset(name(), "group") is None


async def test_commit_offset_stores_the_next_offset_to_read(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(5))
    assert await store.commit_offset(stream, "g", 3) is True
    assert await store.get_committed_offset(stream, "g") == 3
    committed = await store.get_committed_offset(stream, "g")
    resumed = await collect(store.read_stream(stream, committed))
    assert [e.offset for e in resumed] == [3, 4]


async def test_commit_offset_moves_forward_and_groups_are_independent(store: Any) -> None:
    first, second = name(), name()
    await store.append_batch(first, events(8))
    await store.append_batch(second, events(8))
    await store.commit_offset(first, "g1", 1)
    await store.commit_offset(first, "g1", 7)
    await store.commit_offset(first, "g2", 2)
    await store.commit_offset(second, "g1", 4)
    assert await store.get_committed_offset(first, "g1") == 7
    assert await store.get_committed_offset(first, "g2") == 2
    assert await store.get_committed_offset(second, "g1") == 4
    assert await store.get_committed_offset(second, "g2") is None


async def test_committing_zero_is_distinct_from_never_committed(store: Any) -> None:
    stream = name()
    await store.commit_offset(stream, "g", 0)
    assert await store.get_committed_offset(stream, "g") == 0


# Large batches take another write path in the PostgreSQL store (binary COPY, from 64 events):
# the same rules must hold there.
LARGE = 150


async def test_large_batch_offsets_retry_and_conflict(store: Any) -> None:
    stream = name()
    first = events(LARGE, "a")
    assert await store.append_batch(stream, first, expected_version=-1) == list(range(LARGE))
    # A retry of the whole call, with its expected_version, returns the stored offsets.
    assert await store.append_batch(stream, first, expected_version=-1) == list(range(LARGE))
    assert await store.append_batch(stream, first) == list(range(LARGE))
    with pytest.raises(ConcurrencyError) as raised:
        await store.append_batch(stream, events(LARGE, "b"), expected_version=3)
    assert (raised.value.expected, raised.value.actual) == (3, LARGE - 1)
    second = await store.append_batch(stream, events(LARGE, "c"), expected_version=LARGE - 1)
    assert second == list(range(LARGE, 2 * LARGE))
    assert await store.get_stream_version(stream) == 2 * LARGE - 1
    stored = await collect(store.read_stream(stream))
    assert [e.offset for e in stored] == list(range(2 * LARGE))
    assert [e.id for e in stored[:LARGE]] == [e.id for e in first]


async def test_large_batch_reusing_one_stored_id_writes_nothing(store: Any) -> None:
    stream, other = name(), name()
    taken = Event("Taken", {})
    await store.append(other, taken)
    batch = [*events(LARGE - 1), taken]
    with pytest.raises(DuplicateEventError):
        await store.append_batch(stream, batch)
    assert await store.get_stream_version(stream) == -1
    assert await collect(store.read_stream(stream)) == []


async def test_large_batch_with_one_bad_event_writes_nothing(store: Any) -> None:
    from pgstreams import SerializationError

    stream = name()
    batch = [*events(LARGE), Event("Bad", {"x": {1, 2}})]
    with pytest.raises(SerializationError, match=rf"events\[{LARGE}\]\.data"):
        await store.append_batch(stream, batch)
    assert await store.get_stream_version(stream) == -1


async def test_concurrent_large_batches_interleave_without_gaps(store: Any) -> None:
    stream = name()

    async def writer(tag: str) -> list[int]:
        offsets: list[int] = []
        for round_ in range(3):
            offsets += await store.append_batch(stream, events(LARGE, f"{tag}{round_}-"))
        return offsets

    results = await asyncio.gather(*(writer(t) for t in "wxyz"))
    every = sorted(o for offsets in results for o in offsets)
    assert every == list(range(4 * 3 * LARGE))
    for offsets in results:
        for start in range(0, len(offsets), LARGE):
            chunk = offsets[start : start + LARGE]
            assert chunk == list(range(chunk[0], chunk[0] + LARGE))


async def test_concurrent_first_appends_without_expected_version_never_conflict(
    store: Any,
) -> None:
    """Appends that expect nothing never raise ConcurrencyError, even when several create
    the same new stream at the same moment (one once lost that race)."""
    for _ in range(10):
        stream = name()
        results = await asyncio.gather(
            *(store.append_batch(stream, events(1, f"c{i}-")) for i in range(12))
        )
        assert sorted(o for offsets in results for o in offsets) == list(range(12))
