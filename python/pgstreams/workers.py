"""Queue workers: ``store.run_worker(queue, handler, ...)``.

A worker leases messages in batches, runs ``handler(message)`` on up to ``concurrency`` of
them at once, and settles each one:

- the handler returns: the message is acknowledged, folded into the worker's next dequeue
  (one round trip for both; acknowledged on its own when the worker stops);
- the handler raises: the message is nacked with the stream's configured retry backoff (no
  configuration: back at once), or dead-lettered after its last allowed delivery;
- the handler runs past half its ``visibility_timeout``: the lease is extended by
  ``visibility_timeout`` from then on, every half timeout, for as long as it runs, so a slow
  handler never loses its message to another consumer.

It only leases what it can start at once (never more than the free handler slots), so there is
no backlog of leased messages nobody works on. Stopping (``Worker.stop()``, cancelling the task
that runs it, or SIGINT/SIGTERM with ``handle_signals=True``) stops leasing at once, lets the
running handlers finish within ``grace_period`` seconds, then cancels the ones still running
and gives their messages back (nacked with no delay, so another worker takes them at once).
Nothing is lost: every message is acknowledged, nacked, or back in the queue.

Delivery is at least once: a handler can run again for a message it already handled when the
worker dies (or loses its lease) between the handler's end and the acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import validation as check
from .durations import to_seconds
from .errors import ConfigurationError, SerializationError
from .events import QueuedEvent

if TYPE_CHECKING:
    from .base import StoreBase

__all__ = ["Handler", "Worker", "WorkerReport"]

log = logging.getLogger("pgstreams")

Handler = Callable[[QueuedEvent], Awaitable[Any]]


def _seconds(value: float | timedelta, what: str) -> float:
    seconds = to_seconds(value, what, allow_zero=True, allow_none=False)
    assert seconds is not None
    return seconds


@dataclass
class WorkerReport:
    """What a worker did, so far or in all (``Worker.report``, ``run_worker``'s result)."""

    handled: int = 0
    """Handlers that returned (their messages acknowledged)."""
    failed: int = 0
    """Handlers that raised (their messages nacked or dead-lettered)."""
    extended: int = 0
    """Lease extensions made for slow handlers."""
    interrupted: int = 0
    """Handlers cancelled at shutdown after the grace period (their messages given back)."""


class Worker:
    """One worker on one queue; see the module's documentation. ``await worker.run()`` runs
    it until ``worker.stop()`` or cancellation."""

    def __init__(
        self,
        store: StoreBase,
        queue: str,
        handler: Handler,
        *,
        consumer_id: str | None = None,
        concurrency: int = 10,
        batch_size: int | None = None,
        visibility_timeout: float | timedelta = 30.0,
        grace_period: float | timedelta = 30.0,
        poll_wait: float | timedelta = 5.0,
    ) -> None:
        check.check_name(queue, "queue")
        if not callable(handler):
            raise SerializationError("handler must be an async function of one message")
        self.consumer_id = consumer_id or f"worker-{uuid.uuid4().hex[:12]}"
        check.check_name(self.consumer_id, "consumer_id")
        self.concurrency = check.check_int(concurrency, "concurrency", minimum=1, maximum=10_000)
        self.batch_size = (
            self.concurrency
            if batch_size is None
            else check.check_int(batch_size, "batch_size", minimum=1, maximum=10_000)
        )
        self.visibility_timeout = check.check_timeout(visibility_timeout, "visibility_timeout")
        self.grace_period = _seconds(grace_period, "grace_period")
        self.poll_wait = _seconds(poll_wait, "poll_wait")
        self.queue = queue
        self.report = WorkerReport()
        self._store = store
        self._handler = handler
        # Each running handler's message and when its lease is next extended (monotonic).
        self._running: dict[asyncio.Task[None], tuple[QueuedEvent, list[float]]] = {}
        # Lease again only once this many slots are free (or nothing runs): a worker with
        # fast handlers then leases in batches, not a message at a time.
        self._refill = max(1, min(self.batch_size, self.concurrency) // 2)
        self._to_acknowledge: list[QueuedEvent] = []
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._started = False

    def stop(self) -> None:
        """Asks the worker to stop: no more leases; running handlers get the grace period."""
        self._stopping.set()

    async def run(self) -> WorkerReport:
        """Works until stopped or cancelled (a cancellation also stops it gracefully, then
        propagates); returns the report."""
        if self._started:
            raise ConfigurationError("a worker runs once; make a new one")
        self._started = True
        cancelled = False
        keeper = asyncio.create_task(self._keep_leased())
        try:
            await self._lease_and_start()
        except asyncio.CancelledError:
            cancelled = True
        try:
            await asyncio.shield(self._shut_down())
        finally:
            keeper.cancel()
        if cancelled:
            raise asyncio.CancelledError
        return self.report

    async def _lease_and_start(self) -> None:
        store, stopping = self._store, self._stopping
        while not stopping.is_set():
            free = self.concurrency - len(self._running)
            if free < self._refill and self._running:
                await self._wait_for(self._slot_freed)
                self._slot_freed.clear()
                continue
            acks, self._to_acknowledge = self._to_acknowledge, []
            try:
                leasing = asyncio.ensure_future(
                    store.dequeue_batch(
                        self.queue,
                        self.consumer_id,
                        min(self.batch_size, free),
                        self.visibility_timeout,
                        wait=self.poll_wait,
                        acknowledge=acks or None,
                    )
                )
                # A stop ends the wait at once; the dequeue itself releases what it leased.
                stopped = asyncio.ensure_future(stopping.wait())
                try:
                    await asyncio.wait({leasing, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopped.cancel()
                    if not leasing.done():
                        leasing.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await leasing
                if leasing.cancelled():
                    self._to_acknowledge.extend(acks)  # maybe not acknowledged: again at stop
                    break
                batch = leasing.result()
            except asyncio.CancelledError:
                self._to_acknowledge.extend(acks)
                raise
            extend_at = [time.monotonic() + self.visibility_timeout / 2]
            for message in batch:
                task = asyncio.create_task(self._handle(message))
                self._running[task] = (message, list(extend_at))

    async def _wait_for(self, event: asyncio.Event) -> None:
        """Waits for ``event`` or the stop request, whichever comes first."""
        waiters = {
            asyncio.ensure_future(event.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _handle(self, message: QueuedEvent) -> None:
        try:
            outcome = self._handler(message)
            if inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            self.report.failed += 1
            log.exception(
                "pgstreams worker %s: the handler failed on message %s of %r; nacked",
                self.consumer_id,
                message.id,
                self.queue,
            )
            await self._settle(self._store.nack(message))
        else:
            self.report.handled += 1
            self._to_acknowledge.append(message)
        finally:
            self._running.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
            self._slot_freed.set()

    async def _keep_leased(self) -> None:
        """Extends the lease of every handler that has run for half its timeout, then every
        half timeout again, for as long as it runs (one task for the whole worker)."""
        half = self.visibility_timeout / 2
        while True:
            await asyncio.sleep(half / 2)
            now = time.monotonic()
            due = [(m, at) for m, at in list(self._running.values()) if at[0] <= now]
            for message, extend_at in due:
                extend_at[0] = now + half
                try:
                    held = await self._store.extend_lease(message, self.visibility_timeout)
                except Exception as error:
                    log.warning(
                        "pgstreams worker %s: extending a lease failed: %s", self.consumer_id, error
                    )
                    continue
                if held:
                    self.report.extended += 1
                else:
                    extend_at[0] = math.inf  # someone else holds it now: stop trying
                    log.warning(
                        "pgstreams worker %s: message %s of %r lost its lease while its "
                        "handler ran; it may be handled again",
                        self.consumer_id,
                        message.id,
                        self.queue,
                    )

    async def _settle(self, step: Awaitable[Any]) -> None:
        """Runs an ack/nack; a failure is logged (the lease then expires and the message
        comes back), never raised into the worker."""
        try:
            await step
        except Exception as error:
            log.warning(
                "pgstreams worker %s: settling a message failed: %s", self.consumer_id, error
            )

    async def _shut_down(self) -> None:
        running = set(self._running)
        if running:
            _, late = await asyncio.wait(running, timeout=self.grace_period)
            # Still running, so still in the map: their messages, before they leave it.
            given_back = [self._running[task][0] for task in late if task in self._running]
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                self.report.interrupted += len(late)
                for message in given_back:
                    await self._settle(self._store.nack(message, delay=0))
        if self._to_acknowledge:
            acks, self._to_acknowledge = self._to_acknowledge, []
            await self._settle(self._store.acknowledge_batch(acks))

    async def run_with_signals(self) -> WorkerReport:
        """``run()``, stopping gracefully on SIGINT or SIGTERM (main thread's loop only)."""
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for signum in signals:
            loop.add_signal_handler(signum, self.stop)
        try:
            return await self.run()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
