"""Bad arguments raise the same errors, naming the argument, from both stores; a closed store
refuses every call."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from pgstreams import (
    ConfigurationError,
    Event,
    EventStore,
    EventStreamingError,
    SerializationError,
    StoreClosedError,
)

from .helpers import collect, name

Call = Callable[[Any], Awaitable[Any]]

BAD_TIMEOUTS = [0, 0.0, -1, -0.5, float("nan"), float("inf"), timedelta(0), timedelta(-1), True]


def ev() -> Event:
    return Event("E", {})


async def read_stream(store: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """Reads inside the awaited call, so an error raised by ``read_stream()`` itself (or only
    once iterated) is raised where the test awaits it."""
    return await collect(store.read_stream(*args, **kwargs))


async def read_all(store: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return await collect(store.read_all(*args, **kwargs))


async def raises_configuration_error(call: Awaitable[Any], argument: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await call
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, EventStreamingError)
    assert argument in str(caught.value)


async def test_both_stores_implement_the_protocol(store: Any) -> None:
    assert isinstance(store, EventStore)


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize("seconds", BAD_TIMEOUTS, ids=repr)
async def test_bad_visibility_timeout_is_rejected(store: Any, seconds: Any) -> None:
    stream = name()
    await store.enqueue(stream, ev())
    await raises_configuration_error(store.dequeue(stream, "c", seconds), "visibility_timeout")
    await raises_configuration_error(
        store.dequeue_batch(stream, "c", 5, seconds), "visibility_timeout"
    )
    await raises_configuration_error(
        store.extend_lease(uuid.uuid4(), seconds), "visibility_timeout"
    )
    # Nothing was leased by the refused calls.
    message = await store.dequeue(stream, "c")
    assert message is not None and message.delivery_count == 1


@pytest.mark.parametrize("delay", [-1, -0.001, float("nan"), float("inf"), timedelta(-1)], ids=repr)
async def test_bad_delay_is_rejected(store: Any, delay: Any) -> None:
    stream = name()
    await raises_configuration_error(store.enqueue(stream, ev(), delay=delay), "delay")
    await raises_configuration_error(store.enqueue_batch(stream, [ev()], delay=delay), "delay")
    await raises_configuration_error(store.nack(uuid.uuid4(), delay=delay), "delay")
    assert await store.get_pending_count(stream) == 0


TOO_LONG = [1e13, 1e19, 1e20, 2**64, timedelta.max]


@pytest.mark.parametrize("seconds", TOO_LONG, ids=repr)
async def test_durations_past_what_the_store_can_hold_are_refused(store: Any, seconds: Any) -> None:
    """Beyond 100 years a duration could overflow PostgreSQL's timestamps or the Rust core's
    clock (a wait of 1e19 s once panicked and hung the caller): each call refuses it, naming
    the argument, and nothing happens."""
    stream = name()
    await store.enqueue(stream, ev())
    await raises_configuration_error(store.enqueue(stream, ev(), delay=seconds), "delay")
    await raises_configuration_error(store.dequeue(stream, "c", seconds), "visibility_timeout")
    await raises_configuration_error(store.dequeue(stream, "c", wait=seconds), "wait")
    await raises_configuration_error(store.nack(uuid.uuid4(), delay=seconds), "delay")
    await raises_configuration_error(
        store.extend_lease(uuid.uuid4(), seconds), "visibility_timeout"
    )
    assert (await store.get_queue_stats(stream)).visible == 1
    # 100 years is still accepted.
    assert await store.dequeue(stream, "c", timedelta(days=36524)) is not None


@pytest.mark.parametrize("wait", [-1, float("nan"), "1"], ids=repr)
async def test_bad_wait_is_rejected(store: Any, wait: Any) -> None:
    await raises_configuration_error(store.dequeue(name(), "c", wait=wait), "wait")
    await raises_configuration_error(store.dequeue_batch(name(), "c", 3, wait=wait), "wait")


async def test_non_numeric_visibility_timeout_is_rejected(store: Any) -> None:
    await raises_configuration_error(store.dequeue(name(), "c", "30"), "visibility_timeout")
    await raises_configuration_error(store.dequeue(name(), "c", None), "visibility_timeout")


# ---------------------------------------------------------------- counts and offsets


@pytest.mark.parametrize("max_count", [0, -1, 1.5, True], ids=repr)
async def test_bad_dequeue_max_count_is_rejected(store: Any, max_count: Any) -> None:
    stream = name()
    await store.enqueue(stream, ev())
    await raises_configuration_error(store.dequeue_batch(stream, "c", max_count), "max_count")
    assert await store.dequeue(stream, "c") is not None


@pytest.mark.parametrize("max_count", [-1, 2.0], ids=repr)
async def test_bad_read_max_count_is_rejected(store: Any, max_count: Any) -> None:
    await raises_configuration_error(read_stream(store, name(), max_count=max_count), "max_count")
    await raises_configuration_error(read_all(store, max_count=max_count), "max_count")


@pytest.mark.parametrize("offset", [-1, -100, 1.0, "0"], ids=repr)
async def test_bad_start_offset_is_rejected(store: Any, offset: Any) -> None:
    await raises_configuration_error(read_stream(store, name(), offset), "start_offset")


async def test_bad_after_position_is_rejected(store: Any) -> None:
    await raises_configuration_error(read_all(store, -2), "after_position")
    await raises_configuration_error(read_all(store, "5"), "after_position")


@pytest.mark.parametrize("version", [-2, -100, 1.0, "0", True], ids=repr)
async def test_bad_expected_version_is_rejected(store: Any, version: Any) -> None:
    stream = name()
    await raises_configuration_error(
        store.append(stream, ev(), expected_version=version), "expected_version"
    )
    await raises_configuration_error(
        store.append_batch(stream, [ev()], expected_version=version), "expected_version"
    )
    assert await store.get_stream_version(stream) == -1


async def test_bad_committed_offset_and_group_are_rejected(store: Any) -> None:
    stream = name()
    await raises_configuration_error(store.commit_offset(stream, "g", -1), "offset")
    await raises_configuration_error(store.commit_offset(stream, "", 0), "group")
    await raises_configuration_error(store.get_committed_offset(stream, ""), "group")
    assert await store.get_committed_offset(stream, "g") is None


async def test_bad_dead_letter_limit_is_rejected(store: Any) -> None:
    await raises_configuration_error(store.get_dead_letters(name(), limit=0), "limit")


# ---------------------------------------------------------------- names


STREAM_CALLS: dict[str, Callable[[Any, Any], Awaitable[Any]]] = {
    "append": lambda s, stream: s.append(stream, ev()),
    "append_batch": lambda s, stream: s.append_batch(stream, [ev()]),
    "read_stream": lambda s, stream: read_stream(s, stream),
    "get_stream_version": lambda s, stream: s.get_stream_version(stream),
    "get_stream_metadata": lambda s, stream: s.get_stream_metadata(stream),
    "commit_offset": lambda s, stream: s.commit_offset(stream, "g", 0),
    "get_committed_offset": lambda s, stream: s.get_committed_offset(stream, "g"),
    "enqueue": lambda s, stream: s.enqueue(stream, ev()),
    "enqueue_batch": lambda s, stream: s.enqueue_batch(stream, [ev()]),
    "dequeue": lambda s, stream: s.dequeue(stream, "c"),
    "dequeue_batch": lambda s, stream: s.dequeue_batch(stream, "c", 1),
    "get_pending_count": lambda s, stream: s.get_pending_count(stream),
    "get_queue_stats": lambda s, stream: s.get_queue_stats(stream),
    "get_dead_letters": lambda s, stream: s.get_dead_letters(stream),
    "redrive_dead_letters": lambda s, stream: s.redrive_dead_letters(stream),
    "delete_dead_letters": lambda s, stream: s.delete_dead_letters(stream),
    "purge_queue": lambda s, stream: s.purge_queue(stream),
}


@pytest.mark.parametrize("call", list(STREAM_CALLS))
@pytest.mark.parametrize("stream", ["", 5, None, b"bytes", "nul\x00name"], ids=repr)
async def test_bad_stream_name_is_rejected(store: Any, call: str, stream: Any) -> None:
    await raises_configuration_error(STREAM_CALLS[call](store, stream), "stream")


@pytest.mark.parametrize("consumer", ["", 7, None], ids=repr)
async def test_bad_consumer_id_is_rejected(store: Any, consumer: Any) -> None:
    stream = name()
    await store.enqueue(stream, ev())
    await raises_configuration_error(store.dequeue(stream, consumer), "consumer_id")
    await raises_configuration_error(store.dequeue_batch(stream, consumer, 5), "consumer_id")
    assert (await store.get_queue_stats(stream)).visible == 1


# ---------------------------------------------------------------- events


async def test_non_event_in_a_batch_is_a_serialization_error(store: Any) -> None:
    stream = name()
    with pytest.raises(SerializationError) as caught:
        await store.append_batch(stream, [ev(), {"type": "E", "data": {}}])
    assert isinstance(caught.value, TypeError)
    assert "events[1]" in str(caught.value)
    assert await store.get_stream_version(stream) == -1
    with pytest.raises(SerializationError):
        await store.enqueue_batch(stream, [ev(), "not an event"])
    assert await store.get_pending_count(stream) == 0


async def test_non_event_argument_is_a_serialization_error(store: Any) -> None:
    stream = name()
    with pytest.raises(SerializationError):
        await store.append(stream, {"type": "E"})
    with pytest.raises(SerializationError):
        await store.enqueue(stream, None)
    with pytest.raises(SerializationError):
        await store.append_batch(stream, ev())
    assert await store.get_stream_version(stream) == -1
    assert await store.get_pending_count(stream) == 0


async def test_a_generator_of_events_is_accepted(store: Any) -> None:
    stream = name()
    assert await store.append_batch(stream, (ev() for _ in range(3))) == [0, 1, 2]
    assert len(await store.enqueue_batch(stream, (ev() for _ in range(2)))) == 2


# ---------------------------------------------------------------- closed store


CLOSED_CALLS: dict[str, Call] = {
    "append": lambda s: s.append("s", ev()),
    "append_batch": lambda s: s.append_batch("s", [ev()]),
    "read_stream": lambda s: read_stream(s, "s"),
    "read_all": lambda s: read_all(s),
    "get_stream_version": lambda s: s.get_stream_version("s"),
    "list_streams": lambda s: s.list_streams(),
    "get_stream_metadata": lambda s: s.get_stream_metadata("s"),
    "commit_offset": lambda s: s.commit_offset("s", "g", 1),
    "get_committed_offset": lambda s: s.get_committed_offset("s", "g"),
    "enqueue": lambda s: s.enqueue("s", ev()),
    "enqueue_batch": lambda s: s.enqueue_batch("s", [ev()]),
    "dequeue": lambda s: s.dequeue("s", "c"),
    "dequeue_batch": lambda s: s.dequeue_batch("s", "c", 5),
    "acknowledge": lambda s: s.acknowledge(uuid.uuid4()),
    "acknowledge_batch": lambda s: s.acknowledge_batch([uuid.uuid4()]),
    "nack": lambda s: s.nack(uuid.uuid4()),
    "extend_lease": lambda s: s.extend_lease(uuid.uuid4(), 10),
    "get_pending_count": lambda s: s.get_pending_count("s"),
    "get_queue_stats": lambda s: s.get_queue_stats("s"),
    "get_dead_letters": lambda s: s.get_dead_letters("s"),
    "redrive_dead_letters": lambda s: s.redrive_dead_letters("s"),
    "delete_dead_letters": lambda s: s.delete_dead_letters("s"),
    "purge_queue": lambda s: s.purge_queue("s"),
}


@pytest.mark.parametrize("call", list(CLOSED_CALLS))
async def test_closed_store_refuses_every_call(make_store: Any, call: str) -> None:
    store = await make_store()
    await store.append("s", ev())
    await store.close()
    with pytest.raises(StoreClosedError):
        await CLOSED_CALLS[call](store)


async def test_close_is_idempotent(make_store: Any) -> None:
    store = await make_store()
    await store.close()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.get_stream_version("s")


async def test_store_is_an_async_context_manager_that_closes(make_store: Any) -> None:
    store = await make_store()
    async with store as entered:
        assert entered is store
        assert await entered.append("s", ev()) == 0
    with pytest.raises(StoreClosedError):
        await store.append("s", ev())


@pytest.mark.parametrize("receipt", ["not-a-uuid", 5, None, object()], ids=repr)
async def test_bad_receipt_is_rejected(store: Any, receipt: Any) -> None:
    with pytest.raises(ConfigurationError):
        await store.acknowledge(receipt)
    with pytest.raises(ConfigurationError):
        await store.acknowledge_batch([uuid.uuid4(), receipt])
    with pytest.raises(ConfigurationError):
        await store.nack(receipt)
    with pytest.raises(ConfigurationError):
        await store.extend_lease(receipt, 10)


async def test_a_bad_receipt_in_a_batch_acknowledges_nothing(store: Any) -> None:
    stream = name()
    await store.enqueue(stream, ev())
    message = await store.dequeue(stream, "c")
    assert message is not None
    with pytest.raises(ConfigurationError):
        await store.acknowledge_batch([message, "not-a-uuid"])
    assert await store.acknowledge(message) is True


async def test_requeue_must_be_a_bool(store: Any) -> None:
    await raises_configuration_error(store.nack(uuid.uuid4(), requeue="yes"), "requeue")
