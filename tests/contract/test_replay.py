"""Replay: a stream (``replay``) or the global feed (``replay_all``) read again under control:
offset, position and time bounds (all of them apply together), a type filter, a category, a cap,
batches, a token-bucket rate limit, and progress reports whose figures agree."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgstreams import ConfigurationError, Event, ReplayProgress

from .helpers import collect, name

TYPES = ["Placed", "Paid", "Shipped"]


async def timed(store: Any, stream: str, count: int, types: list[str] = TYPES) -> list[Any]:
    """``count`` events appended one at a time (types in turn), each with a later timestamp."""
    for i in range(count):
        await store.append(stream, Event(types[i % len(types)], {"i": i}))
        await asyncio.sleep(0.003)
    events = await collect(store.read_stream(stream))
    times = [e.timestamp for e in events]
    assert times == sorted(times) and len(set(times)) == len(times), times
    return events


async def replay(store: Any, stream: str, **kwargs: Any) -> list[int]:
    """The offsets a replay yields."""
    return [e.offset for e in await collect(store.replay(stream, **kwargs))]


async def replay_all(store: Any, **kwargs: Any) -> list[Any]:
    return await collect(store.replay_all(**kwargs))


# ---------------------------------------------------------------- replay: bounds and filters


async def test_replay_is_the_whole_stream_in_order(store: Any) -> None:
    stream, other = name(), name()
    await store.append_batch(stream, [Event("E", {"i": i}) for i in range(5)])
    await store.append_batch(other, [Event("E", {}) for _ in range(3)])
    await store.append_batch(stream, [Event("E", {"i": i}) for i in range(5, 8)])
    replayed = await collect(store.replay(stream))
    assert replayed == await collect(store.read_stream(stream))
    assert [e.offset for e in replayed] == list(range(8))
    assert await replay(store, name()) == []


async def test_replay_from_offset(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, [Event("E", {}) for _ in range(6)])
    assert await replay(store, stream, from_offset=0) == list(range(6))
    assert await replay(store, stream, from_offset=4) == [4, 5]
    assert await replay(store, stream, from_offset=5) == [5]
    assert await replay(store, stream, from_offset=6) == []


async def test_replay_time_bounds_are_half_open(store: Any) -> None:
    stream = name()
    t = [e.timestamp for e in await timed(store, stream, 6)]
    assert await replay(store, stream, from_time=t[2]) == [2, 3, 4, 5]
    assert await replay(store, stream, to_time=t[2]) == [0, 1]
    assert await replay(store, stream, from_time=t[1], to_time=t[4]) == [1, 2, 3]
    assert await replay(store, stream, from_time=t[3], to_time=t[3]) == []
    assert await replay(store, stream, to_time=t[0]) == []
    assert await replay(store, stream, from_time=t[5] + timedelta(microseconds=1)) == []


async def test_replay_offset_and_time_bounds_both_apply(store: Any) -> None:
    stream = name()
    t = [e.timestamp for e in await timed(store, stream, 10)]
    # The later of the two starts wins, whichever it is.
    assert await replay(store, stream, from_offset=2, from_time=t[5]) == [5, 6, 7, 8, 9]
    assert await replay(store, stream, from_offset=7, from_time=t[5]) == [7, 8, 9]
    assert await replay(store, stream, from_offset=3, to_time=t[6]) == [3, 4, 5]
    assert await replay(store, stream, from_offset=3, from_time=t[1], to_time=t[6]) == [3, 4, 5]
    assert await replay(store, stream, from_offset=8, to_time=t[6]) == []


async def test_replay_event_types(store: Any) -> None:
    stream = name()
    await timed(store, stream, 9)  # Placed, Paid, Shipped, Placed, ...
    assert await replay(store, stream, event_types="Paid") == [1, 4, 7]
    assert await replay(store, stream, event_types=["Placed", "Shipped"]) == [0, 2, 3, 5, 6, 8]
    assert await replay(store, stream, event_types=["Refunded"]) == []


async def test_replay_max_events(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, [Event("E", {}) for _ in range(10)])
    assert await replay(store, stream, max_events=3) == [0, 1, 2]
    assert await replay(store, stream, max_events=10) == list(range(10))
    assert await replay(store, stream, max_events=50) == list(range(10))
    assert await replay(store, stream, max_events=0) == []


async def test_replay_everything_combined(store: Any) -> None:
    stream = name()
    t = [e.timestamp for e in await timed(store, stream, 15)]
    # Paid: 1, 4, 7, 10, 13; Shipped: 2, 5, 8, 11, 14
    kwargs: dict[str, Any] = {"event_types": ["Paid", "Shipped"], "to_time": t[13]}
    assert await replay(store, stream, from_offset=3, from_time=t[2], **kwargs) == [
        4,
        5,
        7,
        8,
        10,
        11,
    ]
    assert await replay(store, stream, from_offset=3, from_time=t[6], max_events=3, **kwargs) == [
        7,
        8,
        10,
    ]
    assert await replay(
        store, stream, from_offset=3, from_time=t[6], max_events=3, batch_size=1, **kwargs
    ) == [7, 8, 10]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 100])
async def test_replay_batch_size(store: Any, batch_size: int) -> None:
    stream, other = name(), name()
    for i in range(20):
        await store.append(stream, Event(TYPES[i % 3], {"i": i}))
        await store.append(other, Event(TYPES[i % 3], {"i": i}))
    assert await replay(store, stream, batch_size=batch_size) == list(range(20))
    assert await replay(store, stream, batch_size=batch_size, event_types="Paid") == list(
        range(1, 20, 3)
    )
    assert await replay(store, stream, batch_size=batch_size, from_offset=5, max_events=9) == list(
        range(5, 14)
    )
    assert await replay(store, stream, batch_size=batch_size, max_events=batch_size) == list(
        range(min(batch_size, 20))
    )


# ---------------------------------------------------------------- replay_all


async def feed(store: Any) -> tuple[str, list[Any]]:
    """Events over a category of streams and another stream, with distinct timestamps."""
    tag = name("cat")
    plan = ["a", "b", "x", "a", "b", "x", "a", "b", "x", "a", "b", "x"]
    for i, which in enumerate(plan):
        stream = f"{tag}-{which}" if which != "x" else name("other")
        await store.append(stream, Event(TYPES[i % 3], {"i": i}))
        await asyncio.sleep(0.003)
    return tag, await collect(store.read_all())


def numbers(events: list[Any]) -> list[int]:
    return [e.data["i"] for e in events]


async def test_replay_all_is_the_global_feed(store: Any) -> None:
    _, everything = await feed(store)
    assert await replay_all(store) == everything
    assert numbers(everything) == list(range(12))


async def test_replay_all_from_position_is_exclusive(store: Any) -> None:
    _, everything = await feed(store)
    p = [e.position for e in everything]
    assert numbers(await replay_all(store, from_position=p[3])) == list(range(4, 12))
    assert numbers(await replay_all(store, from_position=p[0] - 1)) == list(range(12))
    assert await replay_all(store, from_position=p[-1]) == []
    assert numbers(await replay_all(store, from_position=-1)) == list(range(12))


async def test_replay_all_filters(store: Any) -> None:
    tag, everything = await feed(store)
    p = [e.position for e in everything]
    t = [e.timestamp for e in everything]
    # Streams: a at 0 3 6 9, b at 1 4 7 10, others at 2 5 8 11; types by i % 3.
    assert numbers(await replay_all(store, stream_prefix=f"{tag}-")) == [0, 1, 3, 4, 6, 7, 9, 10]
    assert numbers(await replay_all(store, stream_prefix=f"{tag}-a")) == [0, 3, 6, 9]
    assert numbers(await replay_all(store, event_types="Shipped")) == [2, 5, 8, 11]
    assert numbers(await replay_all(store, event_types=["Placed", "Paid"], max_events=5)) == [
        0,
        1,
        3,
        4,
        6,
    ]
    assert numbers(await replay_all(store, from_time=t[4], to_time=t[8])) == [4, 5, 6, 7]
    assert numbers(
        await replay_all(
            store,
            from_position=p[1],
            stream_prefix=f"{tag}-",
            event_types=["Placed", "Paid"],
            to_time=t[10],
        )
    ) == [3, 4, 6, 7, 9]
    assert numbers(
        await replay_all(
            store,
            from_position=p[5],
            from_time=t[2],
            stream_prefix=f"{tag}-",
            max_events=2,
            batch_size=1,
        )
    ) == [6, 7]
    assert numbers(await replay_all(store, from_position=p[7], from_time=t[2], max_events=3)) == [
        8,
        9,
        10,
    ]


@pytest.mark.parametrize("batch_size", [1, 4, 100])
async def test_replay_all_batch_size(store: Any, batch_size: int) -> None:
    tag, everything = await feed(store)
    assert await replay_all(store, batch_size=batch_size) == everything
    assert numbers(await replay_all(store, batch_size=batch_size, stream_prefix=f"{tag}-b")) == [
        1,
        4,
        7,
        10,
    ]


# ---------------------------------------------------------------- rate limit


RATE, COUNT = 40, 120


async def test_rate_limit_keeps_to_the_asked_rate(store: Any) -> None:
    """The bucket starts full (RATE events at once), then lets RATE events a second through:
    COUNT events take (COUNT - RATE) / RATE seconds. Faster means the limit leaks (or its
    burst is larger than the rate); slower means it throttles too much (or starts empty)."""
    stream = name()
    await store.append_batch(stream, [Event("E", {"i": i}) for i in range(COUNT)])
    expected = (COUNT - RATE) / RATE  # 2 seconds
    started = time.monotonic()
    offsets = await replay(store, stream, max_events_per_second=RATE)
    elapsed = time.monotonic() - started
    assert offsets == list(range(COUNT))
    assert elapsed >= expected * 0.9, f"{COUNT} events at {RATE}/s took {elapsed:.2f}s"
    assert elapsed <= expected + 0.75, f"{COUNT} events at {RATE}/s took {elapsed:.2f}s"


async def test_rate_limit_applies_across_batches_and_to_replay_all(store: Any) -> None:
    count, rate = 60, 30.0
    for i in range(count):
        await store.append(name(), Event("E", {"i": i}))
    expected = (count - rate) / rate  # 1 second
    started = time.monotonic()
    replayed = await replay_all(store, max_events_per_second=rate, batch_size=7)
    elapsed = time.monotonic() - started
    assert numbers(replayed) == list(range(count))
    assert expected * 0.9 <= elapsed <= expected + 0.75, elapsed


# ---------------------------------------------------------------- progress


def check_report(report: ReplayProgress, yielded: int, total: int, at: datetime) -> None:
    """Every figure of one report agrees with the others and with what the replay yielded."""
    assert isinstance(report, ReplayProgress)
    assert report.events_processed == yielded
    assert report.total_events == total
    assert report.error_count == 0
    expected_percent = 100.0 if total == 0 else 100.0 * yielded / total
    assert report.percent_complete == pytest.approx(expected_percent)
    elapsed = report.elapsed.total_seconds()
    assert elapsed > 0
    # rate x elapsed = processed (``elapsed`` is rounded to the microsecond)
    rate = report.events_per_second
    assert abs(rate * elapsed - yielded) <= rate * 1e-6 + yielded * 1e-3, (rate, elapsed)
    left = total - yielded
    assert report.estimated_remaining is not None
    assert report.estimated_completion is not None
    if left == 0:
        assert report.estimated_remaining == timedelta(0)
    else:
        assert report.estimated_remaining.total_seconds() == pytest.approx(
            left / report.events_per_second, rel=1e-3, abs=1e-3
        )
    expected_completion = at + report.estimated_remaining
    assert report.estimated_completion.tzinfo is not None
    assert abs(report.estimated_completion - expected_completion) < timedelta(seconds=1)


async def test_progress_with_a_plain_function(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, [Event("E", {"i": i}) for i in range(60)])
    reports: list[tuple[ReplayProgress, int, datetime]] = []
    yielded: list[Any] = []

    def on_progress(report: ReplayProgress) -> None:
        reports.append((report, len(yielded), datetime.now(UTC)))

    started = time.monotonic()
    async for event in store.replay(
        stream, max_events_per_second=40, progress=on_progress, progress_interval=0.2
    ):
        yielded.append(event)
    elapsed = time.monotonic() - started
    assert len(yielded) == 60
    for report, seen, at in reports:
        check_report(report, seen, 60, at)
    final = reports[-1][0]
    assert (final.events_processed, final.percent_complete) == (60, 100.0)
    # Reported every 0.2 s while it ran (about 0.5 s), and once at the end.
    assert 2 <= len(reports) <= elapsed / 0.2 + 2, [r.events_processed for r, _, _ in reports]
    processed = [r.events_processed for r, _, _ in reports]
    assert processed == sorted(processed)
    # Between reports before the final one, at least the interval passed.
    timely = [report.elapsed for report, _, _ in reports[:-1]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(timely)]
    assert all(gap >= timedelta(seconds=0.19) for gap in gaps), gaps


async def test_progress_with_a_coroutine_function(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, [Event(TYPES[i % 3], {"i": i}) for i in range(30)])
    reports: list[tuple[ReplayProgress, int, datetime]] = []
    yielded: list[Any] = []

    async def on_progress(report: ReplayProgress) -> None:
        await asyncio.sleep(0)
        reports.append((report, len(yielded), datetime.now(UTC)))

    async for event in store.replay(
        stream, event_types="Paid", progress=on_progress, progress_interval=timedelta(hours=1)
    ):
        yielded.append(event)
    assert len(yielded) == 10
    assert len(reports) == 1  # the interval never passed: only the final report
    report, seen, at = reports[0]
    check_report(report, seen, 10, at)  # the total counts the filtered events only
    assert report.events_processed == 10


async def test_progress_total_is_what_the_replay_yields(store: Any) -> None:
    stream = name()
    t = [e.timestamp for e in await timed(store, stream, 12)]
    for kwargs, expected in [
        ({}, 12),
        ({"max_events": 5}, 5),
        ({"max_events": 0}, 0),
        ({"from_offset": 4}, 8),
        ({"from_offset": 4, "to_time": t[10]}, 6),
        ({"from_offset": 2, "event_types": "Paid", "max_events": 2}, 2),
        ({"from_offset": 9, "event_types": "Paid"}, 1),
    ]:
        reports: list[ReplayProgress] = []
        yielded = await collect(
            store.replay(stream, progress=reports.append, progress_interval=0.001, **kwargs)
        )
        assert len(yielded) == expected, kwargs
        assert reports, kwargs
        assert all(r.total_events == expected for r in reports), kwargs
        assert reports[-1].events_processed == expected
        assert reports[-1].percent_complete == 100.0
        assert reports[-1].estimated_remaining == timedelta(0)


async def test_progress_of_replay_all_counts_after_the_position(store: Any) -> None:
    tag, everything = await feed(store)
    reports: list[ReplayProgress] = []

    async def on_progress(report: ReplayProgress) -> None:
        reports.append(report)

    yielded = await replay_all(
        store,
        from_position=everything[2].position,
        stream_prefix=f"{tag}-",
        progress=on_progress,
        batch_size=2,
    )
    assert numbers(yielded) == [3, 4, 6, 7, 9, 10]
    assert [r.total_events for r in reports] == [6] * len(reports)
    assert reports[-1].events_processed == 6
    assert reports[-1].percent_complete == 100.0


async def test_progress_of_an_empty_replay(store: Any) -> None:
    reports: list[ReplayProgress] = []
    assert await replay(store, name(), progress=reports.append) == []
    [report] = reports
    assert (report.events_processed, report.total_events, report.percent_complete) == (0, 0, 100.0)
    assert report.estimated_remaining == timedelta(0)
    assert report.error_count == 0


# ---------------------------------------------------------------- bad arguments


async def noop(report: ReplayProgress) -> None:
    return None


BAD = [
    ({"max_events": -1}, "max_events"),
    ({"max_events": 1.5}, "max_events"),
    ({"max_events_per_second": 0}, "max_events_per_second"),
    ({"max_events_per_second": -5}, "max_events_per_second"),
    ({"max_events_per_second": float("nan")}, "max_events_per_second"),
    ({"max_events_per_second": float("inf")}, "max_events_per_second"),
    ({"max_events_per_second": True}, "max_events_per_second"),
    ({"max_events_per_second": "10"}, "max_events_per_second"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -1}, "batch_size"),
    ({"batch_size": 2.0}, "batch_size"),
    ({"progress": 42}, "progress"),
    ({"progress": "print"}, "progress"),
    ({"progress": noop, "progress_interval": 0}, "progress_interval"),
    ({"progress": noop, "progress_interval": -1}, "progress_interval"),
    ({"event_types": []}, "event_types"),
    ({"from_time": datetime(2024, 1, 1)}, "from_time"),
    ({"to_time": datetime(2024, 1, 1)}, "to_time"),
    ({"from_time": "2024-01-01"}, "from_time"),
]


@pytest.mark.parametrize(("kwargs", "argument"), BAD, ids=repr)
async def test_bad_replay_arguments_are_refused(store: Any, kwargs: Any, argument: str) -> None:
    stream = name()
    await store.append(stream, Event("E", {}))
    with pytest.raises(ConfigurationError) as caught:
        await collect(store.replay(stream, **kwargs))
    assert isinstance(caught.value, ValueError)
    assert argument in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [*BAD, ({"from_position": -2}, "from_position"), ({"stream_prefix": ""}, "stream_prefix")],
    ids=repr,
)
async def test_bad_replay_all_arguments_are_refused(store: Any, kwargs: Any, argument: str) -> None:
    await store.append(name(), Event("E", {}))
    with pytest.raises(ConfigurationError) as caught:
        await replay_all(store, **kwargs)
    assert argument in str(caught.value), str(caught.value)


async def test_bad_replay_stream_arguments_are_refused(store: Any) -> None:
    with pytest.raises(ConfigurationError, match="from_offset"):
        await replay(store, name(), from_offset=-1)
    with pytest.raises(ConfigurationError, match="stream"):
        await replay(store, "")
