"""Forking a process that has used pgstreams (gunicorn ``--preload``, Celery prefork,
multiprocessing's "fork" start method): the child opens stores of its own and they work; a
store inherited from the parent refuses with ``StoreClosedError`` naming the fork, and opens
nothing; the parent's store is untouched by whatever the child did with its copy.

Children are forked from inside the test's running event loop, so a child first forgets that
loop (it is the parent's) and runs its own with ``asyncio.run``. Every child ends with
``os._exit`` (never returning into pytest) and is waited for with a deadline, so a child that
hangs fails the test instead of hanging it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import signal
import time
import traceback
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import pgstreams
from pgstreams import Event, PostgresOptions, StoreClosedError
from support import drop_schema, run_sql

CHILD_DEADLINE = 60.0


@contextlib.contextmanager
def forking_allowed() -> Iterator[None]:
    """Python 3.12+ warns about forking a process with threads (the tokio runtime's), and the
    suite turns warnings into errors; forking such a process is what these tests are about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        yield


def fork_child(body: Callable[[], Awaitable[None]]) -> tuple[int, int]:
    """Forks; the child runs ``body`` on an event loop of its own and exits 0 if it returned,
    1 (traceback into the returned pipe) if it raised. Returns ``(pid, read end of the pipe)``."""
    read_end, write_end = os.pipe()
    with forking_allowed():
        pid = os.fork()
    if pid == 0:  # the child: never return from here
        code = 1
        try:
            os.close(read_end)
            asyncio.events._set_running_loop(None)  # the parent's loop is not ours
            asyncio.run(body())
            code = 0
        except BaseException:
            with contextlib.suppress(BaseException):
                os.write(write_end, traceback.format_exc().encode()[-60_000:])
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def reap(pid: int) -> int | None:
    """The child's exit status if it has ended, else None (never blocks)."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return status if done else None


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # a killed child ends at once


async def wait_for_child(pid: int, report: int) -> None:
    """Waits (up to ``CHILD_DEADLINE``) for the child; fails with its traceback unless it
    exited 0."""
    deadline = time.monotonic() + CHILD_DEADLINE
    status = reap(pid)
    while status is None:
        if time.monotonic() > deadline:
            kill(pid)
            os.close(report)
            pytest.fail(f"the forked child did not finish within {CHILD_DEADLINE:.0f} s")
        await asyncio.sleep(0.05)
        status = reap(pid)
    chunks = []
    while chunk := os.read(report, 65536):
        chunks.append(chunk)
    os.close(report)
    details = b"".join(chunks).decode(errors="replace")
    assert os.WIFEXITED(status), f"the child died of signal {os.WTERMSIG(status)}\n{details}"
    assert os.WEXITSTATUS(status) == 0, f"the child failed:\n{details}"


def with_application_name(dsn: str, name: str) -> str:
    """``dsn`` with ``application_name`` set, whichever connection-string form it is in."""
    if dsn.startswith(("postgresql://", "postgres://")):
        named = f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"
    elif ";" in dsn:
        named = f"{dsn.rstrip(';')};Application Name={name}"
    else:
        named = f"{dsn} application_name={name}"
    assert PostgresOptions(named).settings.application_name == name
    return named


async def listen_backends(dsn: str, application_name: str) -> int:
    rows = await run_sql(
        dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        " AND query LIKE 'LISTEN%'",
        [application_name],
    )
    return int(rows[0][0])


async def assert_works(store: pgstreams.PostgresEventStore, stream: str) -> None:
    """Append, read back, enqueue and dequeue (with a wait) on ``store``."""
    event = Event("Checked", {"stream": stream})
    offset = await store.append(stream, event)
    read = [e async for e in store.read_stream(stream, offset)]
    assert [e.id for e in read] == [event.id]
    job = Event("Job", {"stream": stream})
    await store.enqueue(f"{stream}-jobs", job)
    message = await asyncio.wait_for(store.dequeue(f"{stream}-jobs", "c", wait=20), 20)
    assert message is not None and message.id == job.id
    await store.acknowledge(message)
    assert (await store.ping())["server_version"]


async def test_a_forked_child_opens_and_uses_a_store_of_its_own(
    pg_store: pgstreams.PostgresEventStore, pg_dsn: str, schema_name: str
) -> None:
    # The parent's runtime, pool and LISTEN task exist before the fork.
    await assert_works(pg_store, "parent-before")
    child_event = Event("FromChild", {"n": 1})

    async def child() -> None:
        async with pgstreams.connect(pg_dsn, schema_name=schema_name) as store:
            await store.append("from-child", child_event)
            read = [e async for e in store.read_stream("from-child")]
            assert [e.id for e in read] == [child_event.id]
            await assert_works(store, "child")

    await wait_for_child(*fork_child(child))
    # What the child wrote is there, once; the parent's store still works.
    read = [e async for e in pg_store.read_stream("from-child")]
    assert [e.id for e in read] == [child_event.id]
    await assert_works(pg_store, "parent-after")


async def test_a_store_inherited_across_a_fork_refuses_and_the_parent_keeps_its_own(
    pg_dsn: str, schema_name: str
) -> None:
    # Only the list holds the store, so the child can drop its copy for good.
    held = [await pgstreams.connect(pg_dsn, schema_name=schema_name, max_pool_size=3)]
    try:
        await assert_works(held[0], "parent-before")

        async def child() -> None:
            attempts: dict[str, Callable[[pgstreams.PostgresEventStore], Awaitable[Any]]] = {
                "append": lambda store: store.append("s", Event("E", {})),
                "read_stream": lambda store: store.read_stream("parent-before").__anext__(),
                "get_stream_version": lambda store: store.get_stream_version("parent-before"),
                "enqueue": lambda store: store.enqueue("jobs", Event("Job", {})),
                "dequeue": lambda store: store.dequeue("jobs", "c", wait=1),
                "ping": lambda store: store.ping(),
                "query": lambda store: store._core.query("SELECT 1"),
            }
            for name, attempt in attempts.items():
                try:
                    await asyncio.wait_for(attempt(held[0]), 20)
                except StoreClosedError as error:
                    message = str(error)
                    assert "fork" in message and "process" in message, f"{name}: {message}"
                else:
                    raise AssertionError(f"{name} on an inherited store did not raise")
            # A store opened in the child works alongside.
            async with pgstreams.connect(pg_dsn, schema_name=schema_name) as own:
                await assert_works(own, "child")
            # Dropping the inherited copy (its pool, its LISTEN task) must not touch the
            # parent's connections.
            gone = weakref.ref(held[0])
            held.clear()
            gc.collect()
            assert gone() is None, "the inherited store was not dropped"

        await wait_for_child(*fork_child(child))
        assert held, "the parent's store is still here"
        await assert_works(held[0], "parent-after")

        # And again, with a child that closes its inherited copy instead of dropping it.
        async def closing_child() -> None:
            await held[0].close()
            with pytest.raises(StoreClosedError):
                await held[0].append("s", Event("E", {}))

        await wait_for_child(*fork_child(closing_child))
        assert not held[0].closed
        await assert_works(held[0], "parent-after-close-in-child")
    finally:
        for store in held:
            await store.close()
        await drop_schema(pg_dsn, schema_name)


async def test_using_an_inherited_store_opens_no_connection_in_the_child(
    pg_dsn: str, schema_name: str
) -> None:
    app = f"t_fork_{uuid.uuid4().hex[:12]}"
    store = await pgstreams.connect(with_application_name(pg_dsn, app), schema_name=schema_name)
    try:
        await store.append("s", Event("E", {}))  # used, but nobody waited yet: no LISTEN

        async def child() -> None:
            with pytest.raises(StoreClosedError, match="fork"):
                await asyncio.wait_for(store.dequeue("jobs", "c", wait=1), 20)
            # Give a wrongly started LISTEN task ample time to connect, then look.
            await asyncio.sleep(2)
            assert await listen_backends(pg_dsn, app) == 0, (
                "the refused call on the inherited store opened a LISTEN connection"
            )

        await wait_for_child(*fork_child(child))
        assert await listen_backends(pg_dsn, app) == 0
        await assert_works(store, "parent-after")
    finally:
        await store.close()
        await drop_schema(pg_dsn, schema_name)


def append_in_worker(job: tuple[str, str, int]) -> list[str]:
    """A pool worker: opens its own store, appends three events, returns their ids."""
    dsn, schema, number = job

    async def work() -> list[str]:
        async with pgstreams.connect(dsn, schema_name=schema, max_pool_size=2) as store:
            events = [Event("FromWorker", {"worker": number, "i": i}) for i in range(3)]
            await store.append_batch(f"worker-{number}", events)
            await store.append("all-workers", Event("Hello", {"worker": number}))
            return [str(event.id) for event in events]

    return asyncio.run(work())


def run_pool(method: str, jobs: list[tuple[str, str, int]]) -> list[list[str]]:
    """Runs ``jobs`` on a pool of ``method`` workers (in a thread without an event loop, as
    a synchronous program would)."""
    context = multiprocessing.get_context(method)
    with forking_allowed():
        pool = context.Pool(processes=3)
    try:
        results = pool.map_async(append_in_worker, jobs).get(timeout=CHILD_DEADLINE)
        pool.close()
        pool.join()
        return results
    except BaseException:
        pool.terminate()
        raise


@pytest.mark.parametrize("method", ["fork", "spawn"])
async def test_multiprocessing_pool_workers_each_open_a_store(
    pg_store: pgstreams.PostgresEventStore, pg_dsn: str, schema_name: str, method: str
) -> None:
    await assert_works(pg_store, "parent-before")  # the runtime exists before the fork
    jobs = [(pg_dsn, schema_name, number) for number in range(6)]
    results = await asyncio.to_thread(run_pool, method, jobs)
    assert len(results) == len(jobs)
    for number, ids in enumerate(results):
        read = [e async for e in pg_store.read_stream(f"worker-{number}")]
        assert [str(e.id) for e in read] == ids
        assert [e.data for e in read] == [{"worker": number, "i": i} for i in range(3)]
    hellos = [e.data["worker"] async for e in pg_store.read_stream("all-workers")]
    assert sorted(hellos) == list(range(len(jobs)))
    await assert_works(pg_store, "parent-after")
