"""Stream configuration: the round trip of every part, checks on every field, and the queue
honouring max deliveries, retry delay and backoff, and disabled dead letters."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

from pgstreams import (
    AccessControlSettings,
    ConfigurationError,
    DeadLetterSettings,
    Event,
    LifecycleSettings,
    PerformanceSettings,
    RetentionSettings,
    StoreClosedError,
    StreamConfiguration,
)
from pgstreams.configuration import backoff_seconds
from pgstreams.durations import MAX_DURATION_SECONDS

from .helpers import name

LEASE = 0.2
EXPIRE = 0.35


def full(stream: str) -> StreamConfiguration:
    return StreamConfiguration(
        stream,
        description="Orders of the web shop",
        tags={"team": "checkout", "tier": ""},
        retention=RetentionSettings(
            max_age=timedelta(days=30),
            max_size_bytes=10**9,
            max_event_count=1_000_000,
            enable_partitioning=True,
            partition_interval=timedelta(days=1),
            respect_consumer_groups=True,
            max_dead_letter_age=timedelta(days=7),
        ),
        dead_letter_queue=DeadLetterSettings(
            enabled=True,
            dead_letter_stream_name=f"{stream}-dlq",
            max_delivery_attempts=8,
            retry_delay=0.25,
            enable_exponential_backoff=True,
            backoff_multiplier=1.5,
            max_retry_delay=timedelta(minutes=5),
        ),
        lifecycle=LifecycleSettings(
            auto_create=False,
            auto_archive=True,
            archive_after=timedelta(days=90),
            auto_delete=True,
            delete_after=timedelta(days=365),
        ),
        performance=PerformanceSettings(
            batch_size=250,
            enable_compression=True,
            enable_indexing=False,
            indexed_fields=("customer", "total"),
        ),
        access_control=AccessControlSettings(
            public_read=False,
            public_write=False,
            allowed_readers=("billing",),
            denied_readers=("guest",),
            allowed_writers=("shop",),
            denied_writers=(),
            max_consumer_groups=10,
            max_events_per_second=5000,
        ),
    )


# ---------------------------------------------------------------- round trip


async def test_configuration_round_trip(store: Any) -> None:
    stream = name()
    assert await store.get_stream_configuration(stream) is None
    configuration = full(stream)
    await store.set_stream_configuration(configuration)
    stored = await store.get_stream_configuration(stream)
    assert stored == configuration
    assert stored.tags == {"team": "checkout", "tier": ""}
    assert stored.dead_letter_queue.retry_delay == timedelta(seconds=0.25)
    assert stored.performance.indexed_fields == ("customer", "total")


async def test_defaults_round_trip_and_replace(store: Any) -> None:
    stream = name()
    await store.set_stream_configuration(StreamConfiguration(stream))
    assert await store.get_stream_configuration(stream) == StreamConfiguration(stream)
    await store.set_stream_configuration(full(stream))
    await store.set_stream_configuration(StreamConfiguration(stream, description="again"))
    assert await store.get_stream_configuration(stream) == StreamConfiguration(
        stream, description="again"
    )


async def test_list_and_delete_configurations(store: Any) -> None:
    second, first, upper = "b-" + name(), "a-" + name(), "B-" + name()
    for stream in (second, first, upper):
        await store.set_stream_configuration(StreamConfiguration(stream))
    listed = await store.list_stream_configurations()
    assert [c.stream_name for c in listed] == [upper, first, second]  # code point order
    assert await store.delete_stream_configuration(first) is True
    assert await store.delete_stream_configuration(first) is False
    assert await store.get_stream_configuration(first) is None
    assert [c.stream_name for c in await store.list_stream_configurations()] == [upper, second]


async def test_configured_batch_size_is_offered_to_reads(store: Any) -> None:
    stream = name()
    assert await store._configured_read_batch_size(stream) is None
    await store.set_stream_configuration(
        StreamConfiguration(stream, performance=PerformanceSettings(batch_size=7))
    )
    assert await store._configured_read_batch_size(stream) == 7


async def test_reads_of_a_stream_fetch_its_configured_batch_size(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream, other = name(), name()
    for each in (stream, other):
        await store.append_batch(each, [Event("Counted", {"n": n}) for n in range(20)])
    await store.set_stream_configuration(
        StreamConfiguration(stream, performance=PerformanceSettings(batch_size=7))
    )
    limits: list[tuple[str, int]] = []
    read_forwards, read_backwards = store._read_stream, store._read_stream_backwards

    async def spy_forwards(named: str, offset: int, limit: int) -> Any:
        limits.append((named, limit))
        return await read_forwards(named, offset, limit)

    async def spy_backwards(named: str, offset: int, limit: int) -> Any:
        limits.append((named, limit))
        return await read_backwards(named, offset, limit)

    monkeypatch.setattr(store, "_read_stream", spy_forwards)
    monkeypatch.setattr(store, "_read_stream_backwards", spy_backwards)

    # Every page asks for 7 (the last one, read ahead, is read once more to confirm the end).
    assert [e.data["n"] async for e in store.read_stream(stream)] == list(range(20))
    assert set(limits) == {(stream, 7)} and len(limits) >= 3
    limits.clear()
    assert [e.data["n"] async for e in store.read_stream(stream, backwards=True)] == list(
        range(19, -1, -1)
    )
    assert set(limits) == {(stream, 7)} and len(limits) >= 3
    limits.clear()
    assert len([e async for e in store.read_stream(other)]) == 20
    assert limits == [(other, store.read_batch_size)]
    limits.clear()
    await store.delete_stream_configuration(stream)
    assert len([e async for e in store.read_stream(stream)]) == 20
    assert limits == [(stream, store.read_batch_size)]


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: StreamConfiguration(""), "stream_name"),
        (lambda: StreamConfiguration("s", description="a\x00b"), "description"),
        (lambda: StreamConfiguration("s", description="x" * 10_001), "description"),
        (lambda: StreamConfiguration("s", tags={"k": 1}), "tags"),
        (lambda: StreamConfiguration("s", tags={"": "v"}), "tags"),
        (lambda: StreamConfiguration("s", tags=["k"]), "tags"),
        (lambda: StreamConfiguration("s", tags={str(i): "" for i in range(1001)}), "tags"),
        (lambda: StreamConfiguration("s", retention={"max_age": 1}), "retention"),
        (lambda: RetentionSettings(max_age=-1), "max_age"),
        (lambda: RetentionSettings(max_size_bytes=-1), "max_size_bytes"),
        (lambda: RetentionSettings(max_event_count=2**63), "max_event_count"),
        (lambda: RetentionSettings(enable_partitioning="yes"), "enable_partitioning"),
        (lambda: RetentionSettings(partition_interval=0), "partition_interval"),
        (lambda: RetentionSettings(max_dead_letter_age="1d"), "max_dead_letter_age"),
        (lambda: DeadLetterSettings(enabled=None), "enabled"),
        (lambda: DeadLetterSettings(dead_letter_stream_name=""), "dead_letter_stream_name"),
        (lambda: DeadLetterSettings(max_delivery_attempts=0), "max_delivery_attempts"),
        (lambda: DeadLetterSettings(max_delivery_attempts=1_000_001), "max_delivery_attempts"),
        (lambda: DeadLetterSettings(max_delivery_attempts=2.0), "max_delivery_attempts"),
        (lambda: DeadLetterSettings(retry_delay=-0.1), "retry_delay"),
        (lambda: DeadLetterSettings(retry_delay=float("inf")), "retry_delay"),
        (lambda: DeadLetterSettings(backoff_multiplier=0.5), "backoff_multiplier"),
        (lambda: DeadLetterSettings(backoff_multiplier=1001), "backoff_multiplier"),
        (lambda: DeadLetterSettings(backoff_multiplier=float("nan")), "backoff_multiplier"),
        (lambda: DeadLetterSettings(backoff_multiplier=True), "backoff_multiplier"),
        (lambda: DeadLetterSettings(max_retry_delay=0), "max_retry_delay"),
        (lambda: LifecycleSettings(archive_after=-1), "archive_after"),
        (lambda: LifecycleSettings(auto_delete=0), "auto_delete"),
        (lambda: PerformanceSettings(batch_size=0), "batch_size"),
        (lambda: PerformanceSettings(batch_size=1_000_001), "batch_size"),
        (lambda: PerformanceSettings(indexed_fields="customer"), "indexed_fields"),
        (lambda: PerformanceSettings(indexed_fields=("a", 1)), "indexed_fields"),
        (lambda: AccessControlSettings(allowed_readers=("",)), "allowed_readers"),
        (lambda: AccessControlSettings(max_consumer_groups=-1), "max_consumer_groups"),
        (lambda: AccessControlSettings(max_events_per_second=10**10), "max_events_per_second"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_bad_field_is_refused_naming_it(build: Any, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        build()


async def test_set_refuses_other_types_and_a_closed_store(make_store: Any) -> None:
    store = await make_store()
    with pytest.raises(ConfigurationError, match="StreamConfiguration"):
        await store.set_stream_configuration({"stream_name": "s"})
    assert await store.list_stream_configurations() == []
    await store.close()
    for call in (
        lambda: store.set_stream_configuration(StreamConfiguration("s")),
        lambda: store.get_stream_configuration("s"),
        lambda: store.list_stream_configurations(),
        lambda: store.delete_stream_configuration("s"),
    ):
        with pytest.raises(StoreClosedError):
            await call()


# ---------------------------------------------------------------- the queue honours it


async def configure(store: Any, stream: str, **dead_letters: Any) -> None:
    await store.set_stream_configuration(
        StreamConfiguration(stream, dead_letter_queue=DeadLetterSettings(**dead_letters))
    )


async def test_nack_honours_the_configured_max_deliveries(store: Any) -> None:
    stream = name()
    await configure(store, stream, max_delivery_attempts=2)
    event = Event("Job", {})
    await store.enqueue(stream, event)
    for attempt in (1, 2):
        message = await store.dequeue(stream, "c")
        assert message is not None and message.delivery_count == attempt
        assert await store.nack(message)
    assert await store.dequeue(stream, "c") is None
    [dead] = await store.get_dead_letters(stream)
    assert (dead.id, dead.delivery_count, dead.reason) == (event.id, 2, "max_deliveries")


async def test_a_large_batch_takes_the_configured_max_deliveries(store: Any) -> None:
    stream = name()
    await configure(store, stream, max_delivery_attempts=1)
    await store.enqueue_batch(stream, [Event("Job", {"n": n}) for n in range(200)])
    first = await store.dequeue(stream, "c")
    assert first is not None and first.data == {"n": 0}
    assert await store.nack(first)
    [dead] = await store.get_dead_letters(stream)
    assert (dead.id, dead.reason) == (first.id, "max_deliveries")


async def test_lease_expiry_honours_the_configured_max_deliveries(store: Any) -> None:
    stream = name()
    await configure(store, stream, max_delivery_attempts=1)
    await store.enqueue(stream, Event("Job", {}))
    assert await store.dequeue(stream, "crashy", LEASE) is not None
    await asyncio.sleep(EXPIRE)
    assert await store.dequeue(stream, "c") is None
    assert [d.reason for d in await store.get_dead_letters(stream)] == ["max_deliveries"]


async def test_a_configuration_applies_to_messages_already_queued(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, Event("Job", {}))
    await configure(store, stream, max_delivery_attempts=1)
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert await store.nack(message)
    assert len(await store.get_dead_letters(stream)) == 1
    # Deleting it gives the queued messages the default limit (5) back.
    await store.enqueue(stream, Event("Job", {}))
    await configure(store, stream, max_delivery_attempts=1)
    assert await store.delete_stream_configuration(stream)
    for _ in range(2):
        message = await store.dequeue(stream, "c")
        assert message is not None
        assert await store.nack(message)
    assert await store.get_pending_count(stream) == 1


async def test_nack_waits_the_configured_retry_delay(store: Any) -> None:
    stream = name()
    await configure(store, stream, retry_delay=0.3)
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c")
    assert await store.nack(message)
    assert await store.dequeue(stream, "c") is None
    assert (await store.get_queue_stats(stream)).delayed == 1
    await asyncio.sleep(0.45)
    again = await store.dequeue(stream, "c")
    assert again is not None and again.delivery_count == 2
    # A delay given to the nack wins over the configured one.
    assert await store.nack(again, delay=0)
    assert await store.dequeue(stream, "c") is not None


async def test_nack_backs_off_exponentially_up_to_the_maximum(store: Any) -> None:
    stream = name()
    await configure(
        store,
        stream,
        retry_delay=0.2,
        enable_exponential_backoff=True,
        backoff_multiplier=2.0,
        max_retry_delay=0.5,
    )
    await store.enqueue(stream, Event("Job", {}))
    # Delays after deliveries 1, 2, 3: 0.2, 0.4, then 0.8 capped at 0.5.
    for expected in (0.2, 0.4, 0.5):
        message = await store.dequeue(stream, "c")
        assert message is not None
        before = (await store.get_queue_stats(stream)).delayed
        assert await store.nack(message)
        assert (await store.get_queue_stats(stream)).delayed == before + 1
        await asyncio.sleep(expected - 0.1)
        assert await store.dequeue(stream, "c") is None  # still backing off
        await asyncio.sleep(0.25)


async def test_an_expired_lease_waits_the_retry_delay(store: Any) -> None:
    stream = name()
    await configure(store, stream, retry_delay=0.6)
    await store.enqueue(stream, Event("Job", {}))
    assert await store.dequeue(stream, "crashy", LEASE) is not None
    await asyncio.sleep(EXPIRE)  # the lease expired: a failed delivery
    assert await store.dequeue(stream, "c") is None  # ...which waits for its retry delay
    await asyncio.sleep(0.6)
    message = await store.dequeue(stream, "c")
    assert message is not None and message.delivery_count == 2


async def test_a_waiting_head_does_not_hide_the_messages_behind_it(store: Any) -> None:
    stream = name()
    await configure(store, stream, retry_delay=30)
    first, second = Event("Job", {"n": 1}), Event("Job", {"n": 2})
    await store.enqueue(stream, first)
    assert await store.dequeue(stream, "crashy", LEASE) is not None
    await store.enqueue(stream, second)
    await asyncio.sleep(EXPIRE)
    batch = await store.dequeue_batch(stream, "c", 2)
    assert [m.id for m in batch] == [second.id]


def test_backoff_never_overflows() -> None:
    hundred_years = MAX_DURATION_SECONDS
    assert backoff_seconds(1.0, 1000.0, None, 2**31 - 1) == hundred_years
    assert backoff_seconds(1e-6, 1.0000001, None, 2**31 - 1) <= hundred_years
    assert backoff_seconds(3.0, 1000.0, 60.0, 10**9) == 60.0
    assert backoff_seconds(3.0, 2.0, 60.0, 1) == 3.0
    assert backoff_seconds(3.0, 2.0, 60.0, 3) == 12.0
    assert backoff_seconds(0.0, 2.0, None, 50) == 0.0
    assert backoff_seconds(90.0, 2.0, 60.0, 1) == 60.0  # the cap applies to the first delay


async def test_the_largest_backoff_is_accepted_without_error(store: Any) -> None:
    stream = name()
    await configure(
        store,
        stream,
        retry_delay=timedelta(days=365 * 100),
        enable_exponential_backoff=True,
        backoff_multiplier=1000,
        max_delivery_attempts=1_000_000,
    )
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c")
    assert await store.nack(message)
    assert (await store.get_queue_stats(stream)).delayed == 1


# ---------------------------------------------------------------- dead letters disabled


async def test_disabled_dead_letters_mean_no_delivery_limit(store: Any) -> None:
    stream = name()
    await configure(store, stream, enabled=False, max_delivery_attempts=1)
    event = Event("Job", {})
    await store.enqueue(stream, event)
    for attempt in range(1, 8):
        message = await store.dequeue(stream, "c", LEASE)
        assert message is not None and message.delivery_count == attempt
        if attempt % 2:
            assert await store.nack(message)
        else:
            await asyncio.sleep(EXPIRE)  # or the lease expires
    assert await store.get_dead_letters(stream) == []
    assert await store.get_pending_count(stream) == 1


async def test_disabled_dead_letters_nack_without_requeue_drops_and_logs(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stream = name()
    await configure(store, stream, enabled=False)
    event = Event("Job", {})
    await store.enqueue(stream, event)
    message = await store.dequeue(stream, "c")
    with caplog.at_level(logging.WARNING, logger="pgstreams"):
        assert await store.nack(message, requeue=False) is True
    assert await store.get_pending_count(stream) == 0
    assert await store.get_dead_letters(stream) == []
    [record] = [r for r in caplog.records if str(event.id) in r.getMessage()]
    assert record.levelno == logging.WARNING and record.name == "pgstreams"
    assert "dropped" in record.getMessage() and stream in record.getMessage()
    # Gone: acting on it again does nothing.
    assert await store.nack(message, requeue=False) is False
    assert await store.acknowledge(message) is False


async def test_enabled_dead_letters_still_keep_nacked_messages(store: Any) -> None:
    stream = name()
    await configure(store, stream, enabled=True)
    await store.enqueue(stream, Event("Job", {}))
    message = await store.dequeue(stream, "c")
    assert await store.nack(message, requeue=False)
    assert [d.reason for d in await store.get_dead_letters(stream)] == ["nacked"]
