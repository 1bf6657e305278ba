"""The feed's notification against a real server: one per appending transaction, whoever
appends; following without LISTEN falls back to polling."""

from __future__ import annotations

import asyncio
import uuid

import pgstreams
from pgstreams import Event, PostgresOptions
from support import PATIENCE, eventually, run_sql


async def test_every_append_path_and_another_tools_insert_notify_followers(
    pg_store: pgstreams.PostgresEventStore, pg_dsn: str
) -> None:
    follower = pg_store._feed_follower()
    schema = pg_store.options.schema_name
    # The LISTEN connection starts with the first follower; wait until it hears.
    await eventually(
        lambda: pg_store.append("warm-up", Event("E", {})),
        lambda _: follower.generation() > 0,
    )
    writes = [
        lambda: pg_store.append("a", Event("E", {})),  # one statement
        lambda: pg_store.append_batch("a", [Event("E", {}) for _ in range(100)]),  # COPY
        lambda: transaction_append(pg_store),
        lambda: run_sql(  # another tool, by hand
            pg_dsn,
            f'INSERT INTO "{schema}".events (stream_name, stream_offset, event_id, event_type, '
            "data) VALUES ('foreign', 0, $1, 'E', '{}')",
            [uuid.uuid4()],
        ),
    ]
    for write in writes:
        seen = follower.generation()
        await write()
        assert await next_notification(follower, seen) > seen


async def next_notification(follower: pgstreams._core.FeedFollower, seen: int) -> int:
    """The follower's generation once a notification after ``seen`` arrived (each wait ends
    at a notification or a polling interval)."""
    async with asyncio.timeout(PATIENCE):
        while follower.generation() == seen:
            await follower.wait(seen)
    return follower.generation()


async def transaction_append(store: pgstreams.PostgresEventStore) -> None:
    async with store.transaction() as tx:
        tx.append("a", Event("E", {}))
        tx.append("b", Event("E", {}))


async def test_following_without_listen_polls(pg_options: PostgresOptions) -> None:
    async with pgstreams.connect(pg_options, listen_notify=False) as store:
        got: list[int] = []

        async def follow() -> None:
            async for event in store.read_all(follow=True, max_count=2):
                got.append(event.offset)

        following = asyncio.create_task(follow())
        await asyncio.sleep(0.1)
        await store.append_batch("a", [Event("E", {}), Event("E", {})])
        await asyncio.wait_for(following, PATIENCE)
        assert got == [0, 1]


async def test_a_follower_that_stops_leaves_no_registration(
    pg_store: pgstreams.PostgresEventStore,
) -> None:
    await pg_store.append("a", Event("E", {}))
    async for _ in pg_store.read_all(follow=True):
        break
    follower = pg_store.read_all(follow=True, max_count=1)
    assert [e.offset async for e in follower] == [0]
    await eventually(lambda: asyncio.sleep(0, pg_store._core._waited_streams()), lambda n: n == 0)
    assert pg_store._core._waited_streams() == 0
