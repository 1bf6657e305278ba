"""Group commit: small appends that overlap share a transaction, a round trip and a commit,
yet each call keeps its own outcome, and concurrent groups never deadlock."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import pgstreams
from pgstreams import ConcurrencyError, DuplicateEventError, Event, PostgresOptions
from support import run_sql


async def transactions_used(options: PostgresOptions) -> int:
    """How many transactions wrote the store's events: an event's created_at is its
    transaction's start time (now()), shared by every event the transaction wrote. (xmin
    would not do: each call of a group runs in a subtransaction of its own.)"""
    rows = await run_sql(
        options.connection_string,
        f'SELECT count(DISTINCT created_at) FROM "{options.schema_name}".events',
    )
    return int(rows[0][0])


async def test_overlapping_small_appends_share_transactions(pg_options: PostgresOptions) -> None:
    async with pgstreams.connect(pg_options) as store:
        calls = 64
        offsets = await asyncio.gather(
            *(store.append(f"s-{i}", Event("E", {"i": i})) for i in range(calls))
        )
        assert offsets == [0] * calls
        # All there, gap-free, each once...
        feed = [e async for e in store.read_all()]
        assert sorted(e.stream for e in feed) == sorted(f"s-{i}" for i in range(calls))
        # ...in fewer transactions than calls: the calls that overlapped were grouped.
        assert await transactions_used(pg_options) < calls


async def test_each_call_of_a_group_keeps_its_own_outcome(pg_options: PostgresOptions) -> None:
    async with pgstreams.connect(pg_options) as store:
        committed = [Event("Old", {"n": n}) for n in range(3)]
        await store.append_batch("taken", committed)
        retried = [Event("Retry", {"n": n}) for n in range(2)]
        await store.append_batch("retried", retried)

        calls: dict[str, Any] = {}
        for i in range(20):
            calls[f"good-{i}"] = store.append_batch(f"good-{i}", [Event("G", {"i": i})])
        for i in range(5):  # the stream is at version 2, not 7
            calls[f"conflict-{i}"] = store.append_batch(
                "taken", [Event("C", {})], expected_version=7
            )
        calls["duplicate"] = store.append_batch("elsewhere", [committed[0]])
        calls["retry"] = store.append_batch("retried", retried)
        outcomes = dict(
            zip(calls, await asyncio.gather(*calls.values(), return_exceptions=True), strict=True)
        )

        for i in range(20):
            assert outcomes[f"good-{i}"] == [0]
        for i in range(5):
            error = outcomes[f"conflict-{i}"]
            assert isinstance(error, ConcurrencyError)
            assert (error.expected, error.actual) == (7, 2)
        assert isinstance(outcomes["duplicate"], DuplicateEventError)
        assert outcomes["retry"] == [0, 1]
        # Nothing of the refused calls was written; the retry wrote nothing twice.
        assert await store.get_stream_version("taken") == 2
        assert await store.get_stream_version("elsewhere") == -1
        assert [e.id for e in await _all(store, "retried")] == [e.id for e in retried]


async def _all(store: Any, stream: str) -> list[Any]:
    return [e async for e in store.read_stream(stream)]


@pytest.mark.parametrize("rounds", [30])
async def test_groups_over_the_same_streams_in_opposite_orders_never_deadlock(
    pg_options: PostgresOptions, rounds: int
) -> None:
    """Two stores (two processes' worth of pools and flushers) append to the same streams in
    opposite orders at once, round after round: groups lock stream rows in name order, so
    none waits on another forever (PostgreSQL would report a deadlock, 40P01)."""
    streams = [f"shared-{uuid.uuid4().hex[:6]}-{n}" for n in range(6)]
    async with pgstreams.connect(pg_options) as first, pgstreams.connect(pg_options) as second:
        for _ in range(rounds):
            forwards = [first.append(s, Event("F", {})) for s in streams]
            backwards = [second.append(s, Event("B", {})) for s in reversed(streams)]
            await asyncio.gather(*forwards, *backwards)
        for stream in streams:
            offsets = [e.offset async for e in first.read_stream(stream)]
            assert offsets == list(range(2 * rounds))
