"""Consumer groups' progress: per stream the NEXT offset to read (forward only, never past the
stream's next offset, optionally conditional on the committed value), on the global feed the
LAST position processed (bounded by the head), their lag, and deleting them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgstreams import OMITTED, ConcurrencyError, ConfigurationError, ConsumerGroupInfo, Event

from .helpers import collect, delete_events, name

RACERS = 10


async def fill(store: Any, stream: str, count: int) -> list[int]:
    """Appends ``count`` events; returns their positions."""
    await store.append_batch(stream, [Event("E", {"i": i}) for i in range(count)])
    return [e.position for e in await collect(store.read_stream(stream))][-count:]


async def past_the_end(call: Any, *fragments: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        await call
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


async def conflict(call: Any) -> ConcurrencyError:
    with pytest.raises(ConcurrencyError) as caught:
        await call
    return caught.value


def recent(moment: datetime) -> bool:
    """An aware timestamp of this test run (the server and the test share a clock)."""
    assert moment.tzinfo is not None and moment.utcoffset() is not None
    return abs(datetime.now(UTC) - moment) < timedelta(minutes=5)


# ---------------------------------------------------------------- commit and read


async def test_a_consumer_commits_as_it_goes_and_resumes_where_it_stopped(store: Any) -> None:
    stream = name()
    await fill(store, stream, 6)
    async for event in store.read_stream(stream):
        assert await store.commit_offset(stream, "g", event.offset + 1) is True
        if event.offset == 2:
            break
    committed = await store.get_committed_offset(stream, "g")
    assert committed == 3
    assert [e.offset for e in await collect(store.read_stream(stream, committed))] == [3, 4, 5]


async def test_an_unknown_group_has_no_committed_offset(store: Any) -> None:
    stream, other = name(), name()
    await fill(store, stream, 3)
    assert await store.get_committed_offset(stream, "never") is None
    assert await store.get_committed_offset(name(), "never") is None  # a stream never written
    await store.commit_offset(stream, "g", 2)
    # A group is per stream: the same name elsewhere is another group.
    assert await store.get_committed_offset(other, "g") is None
    assert await store.get_committed_offset(stream, "g") == 2


async def test_committing_a_lower_offset_is_a_no_op_returning_false(store: Any) -> None:
    stream = name()
    await fill(store, stream, 8)
    assert await store.commit_offset(stream, "g", 5) is True
    assert await store.commit_offset(stream, "g", 2) is False  # a lagging member
    assert await store.commit_offset(stream, "g", 0) is False
    assert await store.get_committed_offset(stream, "g") == 5
    assert await store.commit_offset(stream, "g", 5) is True  # already there
    assert await store.get_committed_offset(stream, "g") == 5
    assert await store.commit_offset(stream, "g", 7) is True
    assert await store.get_committed_offset(stream, "g") == 7


async def test_reset_offset_moves_the_group_back_and_forward(store: Any) -> None:
    stream = name()
    await fill(store, stream, 10)
    await store.commit_offset(stream, "g", 6)
    assert await store.reset_offset(stream, "g", 2) is None
    assert await store.get_committed_offset(stream, "g") == 2
    # After a reset back, forward-only commits count from the new place.
    assert await store.commit_offset(stream, "g", 1) is False
    assert await store.commit_offset(stream, "g", 3) is True
    await store.reset_offset(stream, "g", 9)
    assert await store.get_committed_offset(stream, "g") == 9
    await store.reset_offset(stream, "g", 10)  # the end: everything consumed
    assert await store.get_committed_offset(stream, "g") == 10
    await store.reset_offset(stream, "g", 0)
    assert await store.get_committed_offset(stream, "g") == 0
    # A group that never committed can be reset too.
    await store.reset_offset(stream, "fresh", 4)
    assert await store.get_committed_offset(stream, "fresh") == 4


async def test_reset_offset_past_the_end_raises_and_changes_nothing(store: Any) -> None:
    stream = name()
    await fill(store, stream, 4)
    await store.commit_offset(stream, "g", 3)
    await past_the_end(store.reset_offset(stream, "g", 5), "offset 5", stream)
    assert await store.get_committed_offset(stream, "g") == 3
    await past_the_end(store.reset_offset(stream, "other", 9), "offset 9")
    assert await store.get_committed_offset(stream, "other") is None


async def test_committing_past_the_end_raises_and_changes_nothing(store: Any) -> None:
    stream = name()
    await fill(store, stream, 5)
    assert await store.commit_offset(stream, "g", 5) is True  # the next offset: all consumed
    message = await past_the_end(store.commit_offset(stream, "g", 6), "offset 6", stream)
    assert "5" in message  # the stream's next offset
    assert await store.get_committed_offset(stream, "g") == 5
    await past_the_end(store.commit_offset(stream, "new", 1000), "offset 1000")
    assert await store.get_committed_offset(stream, "new") is None
    assert [g.group for g in await store.list_consumer_groups(stream)] == ["g"]


async def test_committing_past_the_end_of_a_stream_never_written(store: Any) -> None:
    stream = name()
    await past_the_end(store.commit_offset(stream, "g", 1), "offset 1", stream)
    assert await store.get_committed_offset(stream, "g") is None
    assert await store.list_consumer_groups(stream) == []
    # Its next offset is 0: a group may say it has read nothing.
    assert await store.commit_offset(stream, "g", 0) is True
    assert await store.get_committed_offset(stream, "g") == 0


async def test_the_end_moves_as_the_stream_grows(store: Any) -> None:
    stream = name()
    await fill(store, stream, 2)
    await past_the_end(store.commit_offset(stream, "g", 4), "offset 4")
    await fill(store, stream, 2)
    assert await store.commit_offset(stream, "g", 4) is True


async def test_the_end_survives_deleted_events(store: Any, pg_dsn_or_none: str | None) -> None:
    stream = name()
    await fill(store, stream, 5)
    await delete_events(store, stream, pg_dsn_or_none)  # retention keeps the version
    assert await store.commit_offset(stream, "g", 5) is True
    await past_the_end(store.commit_offset(stream, "g", 6), "offset 6")


# ---------------------------------------------------------------- expected


async def test_expected_omitted_never_checks(store: Any) -> None:
    stream = name()
    await fill(store, stream, 5)
    assert await store.commit_offset(stream, "g", 1) is True
    assert await store.commit_offset(stream, "g", 3, expected=OMITTED) is True
    assert await store.commit_offset(stream, "g", 4) is True
    assert await store.get_committed_offset(stream, "g") == 4


async def test_expected_none_requires_that_nothing_was_committed(store: Any) -> None:
    stream = name()
    await fill(store, stream, 5)
    assert await store.commit_offset(stream, "g", 2, expected=None) is True
    assert await store.get_committed_offset(stream, "g") == 2
    error = await conflict(store.commit_offset(stream, "g", 4, expected=None))
    assert error.expected is None
    assert error.actual == 2
    assert error.stream == stream
    assert "g" in str(error)
    assert await store.get_committed_offset(stream, "g") == 2


async def test_expected_offset_requires_that_offset(store: Any) -> None:
    stream = name()
    await fill(store, stream, 8)
    await store.commit_offset(stream, "g", 1)
    assert await store.commit_offset(stream, "g", 3, expected=1) is True
    error = await conflict(store.commit_offset(stream, "g", 6, expected=1))
    assert (error.expected, error.actual, error.stream) == (1, 3, stream)
    assert await store.get_committed_offset(stream, "g") == 3
    assert await store.commit_offset(stream, "g", 6, expected=3) is True
    assert await store.get_committed_offset(stream, "g") == 6


async def test_expected_offset_of_a_group_that_never_committed_fails(store: Any) -> None:
    stream = name()
    await fill(store, stream, 5)
    error = await conflict(store.commit_offset(stream, "g", 3, expected=0))
    assert (error.expected, error.actual) == (0, None)
    assert await store.get_committed_offset(stream, "g") is None
    assert await store.list_consumer_groups(stream) == []  # no row was created


async def test_expected_met_but_behind_changes_nothing(store: Any) -> None:
    stream = name()
    await fill(store, stream, 6)
    await store.commit_offset(stream, "g", 4)
    assert await store.commit_offset(stream, "g", 2, expected=4) is False
    assert await store.get_committed_offset(stream, "g") == 4


async def test_a_failed_expectation_changes_nothing_at_all(store: Any) -> None:
    stream = name()
    await fill(store, stream, 6)
    await store.commit_offset(stream, "g", 2)
    before = await store.list_consumer_groups(stream)
    await asyncio.sleep(0.01)
    await conflict(store.commit_offset(stream, "g", 5, expected=1))
    await conflict(store.commit_offset(stream, "g", 5, expected=None))
    assert await store.list_consumer_groups(stream) == before  # updated_at included


async def test_expected_with_a_past_the_end_offset_is_refused_as_past_the_end(store: Any) -> None:
    stream = name()
    await fill(store, stream, 3)
    await store.commit_offset(stream, "g", 1)
    await past_the_end(store.commit_offset(stream, "g", 9, expected=1), "offset 9")
    assert await store.get_committed_offset(stream, "g") == 1


def outcomes(results: list[Any]) -> tuple[list[int], list[ConcurrencyError]]:
    """(indexes of the racers that won, the errors of those that lost); anything else fails."""
    winners = [i for i, result in enumerate(results) if result is True]
    errors = [result for result in results if isinstance(result, ConcurrencyError)]
    assert len(winners) + len(errors) == len(results), results
    return winners, errors


async def test_of_racing_committers_expecting_nothing_exactly_one_wins(store: Any) -> None:
    stream = name()
    await fill(store, stream, RACERS + 1)
    for round_ in range(5):
        group = f"g{round_}"
        results = await asyncio.gather(
            *(store.commit_offset(stream, group, i + 1, expected=None) for i in range(RACERS)),
            return_exceptions=True,
        )
        winners, errors = outcomes(results)
        assert len(winners) == 1, results
        winner = winners[0] + 1
        assert await store.get_committed_offset(stream, group) == winner
        assert all(e.expected is None and e.actual == winner for e in errors), errors


async def test_of_racing_committers_expecting_an_offset_exactly_one_wins(store: Any) -> None:
    stream = name()
    await fill(store, stream, 3 * RACERS + 1)
    await store.commit_offset(stream, "g", 1)
    current = 1
    for _ in range(3):
        # Each racer would move the group to a different place, all further than it is.
        targets = [current + 1 + i for i in range(RACERS)]
        results = await asyncio.gather(
            *(store.commit_offset(stream, "g", t, expected=current) for t in targets),
            return_exceptions=True,
        )
        winners, errors = outcomes(results)
        assert len(winners) == 1, results
        winner = targets[winners[0]]
        assert await store.get_committed_offset(stream, "g") == winner
        assert all(e.expected == current and e.actual == winner for e in errors), errors
        current = winner


# ---------------------------------------------------------------- listing, lag, deleting


async def test_lag_is_the_stream_next_offset_minus_the_committed_offset(
    store: Any, pg_dsn_or_none: str | None
) -> None:
    stream = name()
    await fill(store, stream, 10)
    await store.commit_offset(stream, "b-behind", 3)
    await store.commit_offset(stream, "a-done", 10)
    await store.commit_offset(stream, "c-none", 0)
    groups = await store.list_consumer_groups(stream)
    assert all(isinstance(g, ConsumerGroupInfo) for g in groups)
    assert [
        (g.stream, g.group, g.committed_offset, g.committed_position, g.lag) for g in groups
    ] == [
        (stream, "a-done", 10, None, 0),
        (stream, "b-behind", 3, None, 7),
        (stream, "c-none", 0, None, 10),
    ]
    assert all(recent(g.updated_at) for g in groups)

    await fill(store, stream, 5)
    assert [g.lag for g in await store.list_consumer_groups(stream)] == [5, 12, 15]
    # Lag counts offsets, so retention removing events does not hide unread ones.
    await delete_events(store, stream, pg_dsn_or_none)
    assert [g.lag for g in await store.list_consumer_groups(stream)] == [5, 12, 15]
    await store.commit_offset(stream, "b-behind", 14)
    assert [g.lag for g in await store.list_consumer_groups(stream)] == [5, 1, 15]


async def test_updated_at_moves_with_each_commit(store: Any) -> None:
    stream = name()
    await fill(store, stream, 5)
    await store.commit_offset(stream, "g", 1)
    [first] = await store.list_consumer_groups(stream)
    await asyncio.sleep(0.01)
    await store.commit_offset(stream, "g", 2)
    [second] = await store.list_consumer_groups(stream)
    assert second.updated_at > first.updated_at
    assert await store.commit_offset(stream, "g", 1) is False
    assert await store.list_consumer_groups(stream) == [second]


async def test_list_consumer_groups_of_one_stream_or_of_all(store: Any) -> None:
    first, second = sorted([name("a"), name("b")])
    await fill(store, first, 4)
    await fill(store, second, 4)
    await store.commit_offset(second, "z", 1)
    await store.commit_offset(first, "y", 2)
    await store.commit_offset(first, "x", 3)
    await store.commit_position("feed", 1)
    everything = await store.list_consumer_groups()
    # Every stream's groups by stream then group name, then the global feed's.
    assert [(g.stream, g.group) for g in everything] == [
        (first, "x"),
        (first, "y"),
        (second, "z"),
        (None, "feed"),
    ]
    assert [(g.stream, g.group) for g in await store.list_consumer_groups(first)] == [
        (first, "x"),
        (first, "y"),
    ]
    assert [g.group for g in await store.list_consumer_groups(second)] == ["z"]
    assert await store.list_consumer_groups(name()) == []


async def test_delete_consumer_group(store: Any) -> None:
    stream, other = name(), name()
    await fill(store, stream, 5)
    await fill(store, other, 5)
    await store.commit_offset(stream, "g", 3)
    await store.commit_offset(stream, "keep", 2)
    await store.commit_offset(other, "g", 4)
    assert await store.delete_consumer_group(stream, "g") is True
    assert await store.delete_consumer_group(stream, "g") is False
    assert await store.delete_consumer_group(name(), "g") is False
    assert await store.get_committed_offset(stream, "g") is None
    assert await store.get_committed_offset(stream, "keep") == 2
    assert await store.get_committed_offset(other, "g") == 4
    assert [g.group for g in await store.list_consumer_groups(stream)] == ["keep"]
    # Deleted means never committed: a lower offset, and expected=None, are accepted again.
    assert await store.commit_offset(stream, "g", 1, expected=None) is True
    assert await store.get_committed_offset(stream, "g") == 1


# ---------------------------------------------------------------- the global feed


async def test_commit_position_is_forward_only(store: Any) -> None:
    positions = await fill(store, name(), 5)
    assert await store.get_committed_position("feed") is None
    assert await store.commit_position("feed", positions[2]) is True
    assert await store.get_committed_position("feed") == positions[2]
    assert await store.commit_position("feed", positions[1]) is False
    assert await store.get_committed_position("feed") == positions[2]
    assert await store.commit_position("feed", positions[2]) is True
    assert await store.commit_position("feed", positions[4]) is True
    assert await store.get_committed_position("feed") == positions[4]
    # Resuming: read_all after the committed position gives what is left.
    await fill(store, name(), 2)
    resumed = await collect(store.read_all(await store.get_committed_position("feed")))
    assert len(resumed) == 2


async def test_commit_position_above_the_head_raises_and_changes_nothing(store: Any) -> None:
    assert await store.get_head_position() == 0
    await past_the_end(store.commit_position("feed", 1), "position 1")
    assert await store.get_committed_position("feed") is None
    assert await store.commit_position("feed", 0) is True  # nothing processed yet
    await fill(store, name(), 3)
    head = await store.get_head_position()
    message = await past_the_end(store.commit_position("feed", head + 1), f"position {head + 1}")
    assert str(head) in message
    assert await store.get_committed_position("feed") == 0
    assert await store.commit_position("feed", head) is True
    await past_the_end(store.commit_position("feed", 2**62), f"position {2**62}")
    assert await store.get_committed_position("feed") == head


async def test_commit_position_expected(store: Any) -> None:
    positions = await fill(store, name(), 6)
    assert await store.commit_position("feed", positions[0], expected=None) is True
    error = await conflict(store.commit_position("feed", positions[1], expected=None))
    assert (error.stream, error.expected, error.actual) == (None, None, positions[0])
    error = await conflict(store.commit_position("feed", positions[1], expected=positions[3]))
    assert (error.expected, error.actual) == (positions[3], positions[0])
    assert await store.get_committed_position("feed") == positions[0]
    assert await store.commit_position("feed", positions[3], expected=positions[0]) is True
    assert await store.commit_position("feed", positions[4]) is True  # omitted: no check
    assert await store.get_committed_position("feed") == positions[4]
    error = await conflict(store.commit_position("other", positions[1], expected=positions[1]))
    assert (error.expected, error.actual) == (positions[1], None)
    assert await store.get_committed_position("other") is None


async def test_of_racing_position_committers_exactly_one_wins(store: Any) -> None:
    positions = await fill(store, name(), RACERS)
    for round_ in range(3):
        group = f"feed{round_}"
        results = await asyncio.gather(
            *(store.commit_position(group, p, expected=None) for p in positions),
            return_exceptions=True,
        )
        winners, errors = outcomes(results)
        assert len(winners) == 1, results
        winner = positions[winners[0]]
        assert await store.get_committed_position(group) == winner
        assert all(e.expected is None and e.actual == winner for e in errors), errors


async def test_feed_groups_lag_is_the_count_of_events_after_the_position(
    store: Any, pg_dsn_or_none: str | None
) -> None:
    kept, dropped = name(), name()
    for _ in range(3):  # interleaved: a:0 b:0 a:1 b:1 a:2 b:2
        await store.append(kept, Event("E", {}))
        await store.append(dropped, Event("E", {}))
    feed = await collect(store.read_all())
    await store.commit_position("feed", feed[0].position)
    await store.commit_position("done", feed[-1].position)
    await store.commit_offset(kept, "g", 1)
    groups = await store.list_consumer_groups()
    assert [(g.stream, g.group, g.committed_offset) for g in groups] == [
        (kept, "g", 1),
        (None, "done", None),
        (None, "feed", None),
    ]
    done, behind = groups[1], groups[2]
    assert (done.committed_position, done.lag) == (feed[-1].position, 0)
    assert (behind.committed_position, behind.lag) == (feed[0].position, 5)
    assert recent(behind.updated_at)
    assert await store.list_consumer_groups(kept) == [groups[0]]  # no feed groups

    await fill(store, name(), 4)
    lags = {g.group: g.lag for g in await store.list_consumer_groups() if g.stream is None}
    assert lags == {"done": 4, "feed": 9}
    # Positions have gaps: the lag counts events, not the distance to the head.
    await delete_events(store, dropped, pg_dsn_or_none)
    lags = {g.group: g.lag for g in await store.list_consumer_groups() if g.stream is None}
    assert lags == {"done": 4, "feed": 6}


async def test_delete_a_feed_group(store: Any) -> None:
    stream = name()
    positions = await fill(store, stream, 3)
    await store.commit_position("g", positions[1])
    await store.commit_offset(stream, "g", 2)  # a stream's group of the same name
    assert await store.delete_consumer_group(None, "g") is True
    assert await store.delete_consumer_group(None, "g") is False
    assert await store.get_committed_position("g") is None
    assert await store.get_committed_offset(stream, "g") == 2
    assert [(g.stream, g.group) for g in await store.list_consumer_groups()] == [(stream, "g")]
    assert await store.commit_position("g", positions[0], expected=None) is True
    assert await store.delete_consumer_group(stream, "g") is True
    assert await store.get_committed_position("g") == positions[0]


# ---------------------------------------------------------------- the head


async def test_head_position_bounds_commits_and_never_goes_back(
    store: Any, pg_dsn_or_none: str | None
) -> None:
    assert await store.get_head_position() == 0
    old, newest = name(), name()
    await fill(store, old, 3)
    positions = await fill(store, newest, 2)
    head = await store.get_head_position()
    assert head == positions[-1]
    assert head == max(e.position for e in await collect(store.read_all()))
    # The newest events go: the head stays, and so does what a group may commit.
    await delete_events(store, newest, pg_dsn_or_none)
    assert await store.get_head_position() == head
    assert await store.commit_position("feed", head) is True
    await past_the_end(store.commit_position("feed", head + 1), f"position {head + 1}")
    [feed] = [g for g in await store.list_consumer_groups() if g.stream is None]
    assert feed.lag == 0
    await fill(store, old, 1)
    assert await store.get_head_position() > head
    [feed] = [g for g in await store.list_consumer_groups() if g.stream is None]
    assert feed.lag == 1
