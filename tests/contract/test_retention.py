"""Retention: policies (count, age, the '*' default, either limit), consumer-aware retention,
dead-letter retention, offsets after a trim, configuration over policy, and RetentionService
(interval, a failed run, a window crossing midnight with an injected clock)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest

from pgstreams import (
    ConfigurationError,
    DeadLetterSettings,
    Event,
    RetentionPolicy,
    RetentionReport,
    RetentionService,
    RetentionSettings,
    StoreClosedError,
    StreamConfiguration,
)

from .helpers import collect, name

AGE = 0.5  # a max_age that events written before a sleep of OLD exceed
OLD = 0.8


def events(count: int) -> list[Event]:
    return [Event("E", {"i": i}) for i in range(count)]


async def eventually(condition: Callable[..., bool]) -> None:
    """Waits until ``condition()`` holds, at most 10 s (a bound against hanging, not a
    speed check)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("still not true after 10 s")


async def offsets(store: Any, stream: str) -> list[int]:
    return [e.offset for e in await collect(store.read_stream(stream))]


# ---------------------------------------------------------------- policies


async def test_policies_round_trip_in_code_point_order(store: Any) -> None:
    assert await store.get_retention_policies() == []
    default = RetentionPolicy("*", max_event_count=10)
    own = RetentionPolicy(
        "b-stream",
        max_age=timedelta(hours=1),
        max_event_count=5,
        enabled=False,
        respect_consumer_groups=True,
        max_dead_letter_age=60,
    )
    upper = RetentionPolicy("B-stream", max_age=1.5)
    for policy in (own, default, upper):
        await store.set_retention_policy(policy)
    assert await store.get_retention_policies() == [default, upper, own]
    assert own.max_dead_letter_age == timedelta(seconds=60)  # seconds become a timedelta

    replaced = RetentionPolicy("b-stream", max_event_count=7)
    await store.set_retention_policy(replaced)
    assert await store.get_retention_policies() == [default, upper, replaced]
    assert await store.delete_retention_policy("b-stream") is True
    assert await store.delete_retention_policy("b-stream") is False
    assert await store.get_retention_policies() == [default, upper]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"stream_name": ""}, "stream_name"),
        ({"stream_name": 5}, "stream_name"),
        ({"max_age": -1}, "max_age"),
        ({"max_age": 0}, "max_age"),
        ({"max_age": timedelta(days=365 * 101)}, "max_age"),
        ({"max_age": "1h"}, "max_age"),
        ({"max_event_count": -1}, "max_event_count"),
        ({"max_event_count": 2**63}, "max_event_count"),
        ({"max_event_count": True}, "max_event_count"),
        ({"enabled": 1}, "enabled"),
        ({"respect_consumer_groups": None}, "respect_consumer_groups"),
        ({"max_dead_letter_age": float("nan")}, "max_dead_letter_age"),
    ],
    ids=repr,
)
async def test_bad_policy_is_refused_naming_the_field(fields: dict[str, Any], named: str) -> None:
    fields = {"stream_name": "s", **fields}
    with pytest.raises(ConfigurationError, match=named):
        RetentionPolicy(**fields)


async def test_set_retention_policy_refuses_other_types(store: Any) -> None:
    with pytest.raises(ConfigurationError, match="RetentionPolicy"):
        await store.set_retention_policy({"stream_name": "s"})
    assert await store.get_retention_policies() == []


async def test_count_policy_keeps_the_newest_events(store: Any) -> None:
    stream, other = name(), name()
    await store.append_batch(stream, events(10))
    await store.append_batch(other, events(10))
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=3))
    assert await store.apply_retention_policies() == 7
    assert await offsets(store, stream) == [7, 8, 9]
    assert len(await offsets(store, other)) == 10  # no policy, no default: kept
    assert await store.apply_retention_policies() == 0  # nothing more to do


async def test_age_policy_deletes_older_events(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    await asyncio.sleep(OLD)
    await store.append_batch(stream, events(2))
    await store.set_retention_policy(RetentionPolicy(stream, max_age=AGE))
    report = await store.apply_retention()
    assert isinstance(report, RetentionReport)
    assert (report.events_deleted, report.dead_letters_deleted) == (3, 0)
    [trim] = report.streams
    assert (trim.stream, trim.rule, trim.deleted) == (stream, "policy", 3)
    assert await offsets(store, stream) == [3, 4]


async def test_an_event_goes_when_either_limit_is_exceeded(store: Any) -> None:
    by_count, by_age = name("count"), name("age")
    await store.append_batch(by_age, events(4))
    await asyncio.sleep(OLD)
    await store.append_batch(by_count, events(6))
    await store.append_batch(by_age, events(1))
    # by_count: young events, but too many; by_age: few events, but old.
    await store.set_retention_policy(RetentionPolicy(by_count, max_age=3600, max_event_count=2))
    await store.set_retention_policy(RetentionPolicy(by_age, max_age=AGE, max_event_count=100))
    assert await store.apply_retention_policies() == 4 + 4
    assert await offsets(store, by_count) == [4, 5]
    assert await offsets(store, by_age) == [4]


async def test_default_policy_applies_to_streams_without_their_own(store: Any) -> None:
    plain, own, exempt = name("plain"), name("own"), name("exempt")
    for stream in (plain, own, exempt):
        await store.append_batch(stream, events(10))
    await store.set_retention_policy(RetentionPolicy("*", max_event_count=1))
    await store.set_retention_policy(RetentionPolicy(own, max_event_count=4))
    # A disabled policy of its own exempts a stream from the default.
    await store.set_retention_policy(RetentionPolicy(exempt, max_event_count=1, enabled=False))
    report = await store.apply_retention()
    assert {t.stream: (t.rule, t.deleted) for t in report.streams} == {
        plain: ("default", 9),
        own: ("policy", 6),
    }
    assert await offsets(store, plain) == [9]
    assert await offsets(store, own) == [6, 7, 8, 9]
    assert len(await offsets(store, exempt)) == 10


async def test_disabled_default_deletes_nothing(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(5))
    await store.set_retention_policy(RetentionPolicy("*", max_event_count=0, enabled=False))
    assert await store.apply_retention_policies() == 0
    await store.set_retention_policy(RetentionPolicy("*", max_event_count=0))
    assert await store.apply_retention_policies() == 5
    assert await offsets(store, stream) == []


async def test_offsets_continue_after_a_trim_and_the_head_stays(store: Any) -> None:
    stream, other = name(), name()
    await store.append_batch(other, events(2))
    await store.append_batch(stream, events(6))
    head = await store.get_head_position()
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=0))
    assert await store.apply_retention_policies() == 6
    assert await store.get_stream_version(stream) == 5
    assert await store.get_head_position() == head  # the newest events went; the head did not
    assert await store.append(stream, Event("E", {})) == 6
    assert await offsets(store, stream) == [6]
    feed = await collect(store.read_all())
    assert [e.stream for e in feed] == [other, other, stream]
    positions = [e.position for e in feed]
    assert positions == sorted(positions) and positions[-1] > head


async def test_small_batches_delete_the_same_events(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(11))
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=2))
    assert await store.apply_retention_policies(batch_size=2) == 9
    assert await offsets(store, stream) == [9, 10]


@pytest.mark.parametrize("batch_size", [0, -1, 100_001, 2.5, True], ids=repr)
async def test_bad_batch_size_is_refused(store: Any, batch_size: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=0))
    with pytest.raises(ConfigurationError, match="batch_size"):
        await store.apply_retention_policies(batch_size=batch_size)
    assert len(await offsets(store, stream)) == 3


# ---------------------------------------------------------------- consumers first


async def test_events_a_consumer_group_has_not_consumed_are_kept(
    store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stream = name()
    await store.append_batch(stream, events(10))
    await store.commit_offset(stream, "billing", 4)  # consumed 0..3
    await store.commit_offset(stream, "audit", 8)
    await store.set_retention_policy(
        RetentionPolicy(stream, max_event_count=2, respect_consumer_groups=True)
    )
    with caplog.at_level(logging.INFO, logger="pgstreams"):
        report = await store.apply_retention()
    [trim] = report.streams
    assert trim.deleted == 4
    assert trim.kept_for_consumers == 4  # offsets 4..7 would have gone
    assert trim.waiting_groups == ("billing",)
    assert report.kept_for_consumers == 4
    assert await offsets(store, stream) == list(range(4, 10))
    assert any(
        "kept 4 event(s)" in r.getMessage() and "'billing'" in r.getMessage()
        for r in caplog.records
    )
    # Once the group moves on, the next run trims the rest.
    await store.commit_offset(stream, "billing", 9)
    assert await store.apply_retention_policies() == 4
    assert await offsets(store, stream) == [8, 9]


async def test_without_respect_consumer_groups_retention_ignores_them(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(10))
    await store.commit_offset(stream, "slow", 0)
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=2))
    assert await store.apply_retention_policies() == 8


async def test_groups_of_other_streams_do_not_hold_events(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(5))
    await store.commit_offset(name(), "g", 0)
    await store.set_retention_policy(
        RetentionPolicy("*", max_event_count=1, respect_consumer_groups=True)
    )
    assert await store.apply_retention_policies() == 4


# ---------------------------------------------------------------- dead letters


async def dead_letter(store: Any, stream: str) -> Event:
    event = Event("Job", {})
    await store.enqueue(stream, event)
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert await store.nack(message, requeue=False)
    return event


async def test_policy_bounds_the_dead_letters_by_age(store: Any) -> None:
    queue, other = name("q"), name("q")
    old = await dead_letter(store, queue)
    old_other = await dead_letter(store, other)
    await asyncio.sleep(OLD)
    young = await dead_letter(store, queue)
    await store.set_retention_policy(RetentionPolicy(queue, max_dead_letter_age=AGE))
    report = await store.apply_retention()
    assert (report.events_deleted, report.dead_letters_deleted) == (0, 1)
    assert [d.id for d in await store.get_dead_letters(queue)] == [young.id]
    assert [d.id for d in await store.get_dead_letters(other)] == [old_other.id]
    assert old.id not in {d.id for d in await store.get_dead_letters(queue)}

    # The default bounds every queue without a rule of its own.
    await store.set_retention_policy(RetentionPolicy("*", max_dead_letter_age=AGE))
    assert await store.apply_retention_policies(batch_size=1) == 1
    assert await store.get_dead_letters(other) == []


async def test_spent_messages_count_as_dead_letters_for_retention(store: Any) -> None:
    queue = name("q")
    await store.set_stream_configuration(
        StreamConfiguration(
            queue,
            retention=RetentionSettings(max_dead_letter_age=AGE),
            dead_letter_queue=DeadLetterSettings(max_delivery_attempts=1),
        )
    )
    await store.enqueue(queue, Event("Job", {}))
    assert await store.dequeue(queue, "crashy", 0.1) is not None
    await asyncio.sleep(OLD)  # its only lease expired long ago: a dead letter, not marked yet
    assert len(await store.get_dead_letters(queue)) == 1
    assert await store.apply_retention_policies() == 1
    assert await store.get_dead_letters(queue) == []
    assert await store.get_pending_count(queue) == 0


# ---------------------------------------------------------------- configuration first


async def test_stream_configuration_overrides_the_policies(store: Any) -> None:
    configured, plain = name("configured"), name("plain")
    await store.append_batch(configured, events(10))
    await store.append_batch(plain, events(10))
    await store.set_retention_policy(RetentionPolicy("*", max_event_count=1))
    await store.set_retention_policy(RetentionPolicy(configured, max_event_count=2))
    await store.set_stream_configuration(
        StreamConfiguration(configured, retention=RetentionSettings(max_event_count=5))
    )
    report = await store.apply_retention()
    assert {t.stream: (t.rule, t.deleted) for t in report.streams} == {
        configured: ("configuration", 5),
        plain: ("default", 9),
    }
    # Without the configuration, the stream's own policy governs again.
    assert await store.delete_stream_configuration(configured)
    assert await store.apply_retention_policies() == 3
    assert await offsets(store, configured) == [8, 9]


async def test_a_configuration_without_event_limits_leaves_the_policies(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(4))
    await store.set_retention_policy(RetentionPolicy("*", max_event_count=1))
    await store.set_stream_configuration(StreamConfiguration(stream, description="no limits"))
    report = await store.apply_retention()
    assert [(t.rule, t.deleted) for t in report.streams] == [("default", 3)]


async def test_configured_retention_can_respect_consumer_groups(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(6))
    await store.commit_offset(stream, "g", 2)
    await store.set_stream_configuration(
        StreamConfiguration(
            stream, retention=RetentionSettings(max_event_count=1, respect_consumer_groups=True)
        )
    )
    assert await store.apply_retention_policies() == 2
    assert await offsets(store, stream) == [2, 3, 4, 5]


# ---------------------------------------------------------------- the service


async def test_service_applies_the_policies_every_interval(store: Any) -> None:
    stream = name()
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=1))
    async with RetentionService(store, 0.05) as service:
        assert service.running
        for _ in range(3):
            await store.append_batch(stream, events(3))
            await eventually(lambda before=service.runs: service.runs >= before + 2)
            assert len(await offsets(store, stream)) == 1
    assert not service.running
    assert service.failures == 0
    assert service.last_report is not None


class FlakyStore:
    """A store whose first retention runs fail (as a lost connection would make them)."""

    def __init__(self, store: Any, failures: int) -> None:
        self.store = store
        self.failures = failures

    async def apply_retention(self, *, batch_size: int) -> RetentionReport:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the server went away")
        report: RetentionReport = await self.store.apply_retention(batch_size=batch_size)
        return report


async def test_service_survives_a_failed_run(store: Any, caplog: pytest.LogCaptureFixture) -> None:
    stream = name()
    await store.append_batch(stream, events(5))
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=1))
    with caplog.at_level(logging.ERROR, logger="pgstreams"):
        async with RetentionService(FlakyStore(store, failures=2), 0.05) as service:
            await eventually(lambda: service.runs >= 1)
    assert service.failures == 2
    assert isinstance(service.last_error, ConnectionError)
    assert await offsets(store, stream) == [4]
    failed = [r for r in caplog.records if "retention run failed" in r.getMessage()]
    assert len(failed) == 2 and all(r.exc_info for r in failed)


class Clock:
    """An injected clock: the time is whatever the test sets."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def utc(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 3, 1, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "inside"),
    [
        (utc(22, 0), True),
        (utc(23, 59), True),
        (utc(0, 0), True),
        (utc(3, 59), True),
        (utc(4, 0), False),
        (utc(12, 0), False),
        (utc(21, 59), False),
        (datetime(2024, 3, 1, 23, 30, tzinfo=UTC).astimezone(), True),  # any zone: read as UTC
    ],
    ids=str,
)
async def test_window_crossing_midnight_with_an_injected_clock(
    store: Any, now: datetime, inside: bool
) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=0))
    service = RetentionService(store, 3600, window=(time(22), time(4)), clock=Clock(now))
    assert service.in_window() is inside
    report = await service.run_once()
    assert (report is not None) is inside
    assert len(await offsets(store, stream)) == (0 if inside else 3)


async def test_service_outside_its_window_deletes_nothing_until_it_opens(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=0))
    clock = Clock(utc(12))
    async with RetentionService(store, 0.05, window=(time(2), time(6)), clock=clock) as service:
        await asyncio.sleep(0.3)
        assert service.runs == 0
        assert len(await offsets(store, stream)) == 3
        clock.at = utc(2, 30)
        await eventually(lambda: service.runs >= 1)
    assert await offsets(store, stream) == []


@pytest.mark.parametrize(
    "arguments",
    [
        {"interval": 0},
        {"interval": -5},
        {"interval": "1h"},
        {"interval": 1, "window": (time(2), time(2))},
        {"interval": 1, "window": (time(2),)},
        {"interval": 1, "window": ("02:00", "06:00")},
        {"interval": 1, "batch_size": 0},
        {"interval": 1, "clock": "now"},
    ],
    ids=repr,
)
async def test_bad_service_arguments_are_refused(store: Any, arguments: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetentionService(store, **arguments)


async def test_window_takes_utc_times_and_refuses_other_zones(store: Any) -> None:
    service = RetentionService(store, 1, window=(time(2, tzinfo=UTC), time(6)))
    assert service.window == (time(2), time(6))
    with pytest.raises(ConfigurationError, match="UTC"):
        RetentionService(store, 1, window=(time(2, tzinfo=timezone(timedelta(hours=1))), time(6)))


async def test_stop_is_idempotent_and_a_closed_store_refuses_retention(make_store: Any) -> None:
    store = await make_store()
    service = RetentionService(store, 10)
    await service.stop()
    service.start()
    service.start()
    await service.stop()
    await service.stop()
    await store.close()
    for call in (
        lambda: store.apply_retention_policies(),
        lambda: store.get_retention_policies(),
        lambda: store.set_retention_policy(RetentionPolicy("s")),
        lambda: store.delete_retention_policy("s"),
    ):
        with pytest.raises(StoreClosedError):
            await call()
