"""Transactions across streams, queues and consumer progress: ``store.transaction()``.

``async with store.transaction() as tx:`` is one PostgreSQL transaction on one held
connection. Store operations called on ``tx`` are *staged*: checked at once (a bad argument
raises there), sent at the end of the block together with COMMIT in one round trip, and
applied all or nothing. Each returns a :class:`Staged` handle whose ``result()`` is known once
the block has committed. The caller's own SQL (``await tx.execute(...)``, ``await
tx.fetch(...)``) runs at once on the same connection, so a read model and the offset it was
built up to commit together (exactly once).

Leaving the block by an exception, a cancellation or the timeout rolls everything back:
nothing is written anywhere, the caller's rows included. A failed expectation at commit (a
stream's ``expected_version``, a consumer group's ``expected``) raises ``ConcurrencyError``
from the ``async with``; an event id already stored, ``DuplicateEventError``; an offset past
the end of its stream, ``ConfigurationError``.

Staged work is flushed in a fixed order, whatever the order of the calls: consumer offsets and
positions, acknowledgements, enqueues, then the appends (stream rows locked in name order, then
the global feed's lock, last and only for the insert and the COMMIT). So two transactions
cannot deadlock on the store's rows, no client think-time ever holds the feed's lock, and the
feed stays gap-safe. Events get positions in call order. An offset committed in the same
transaction as appends to that stream is judged against the stream before those appends.

Inside a transaction there are no retries: an id already stored is a ``DuplicateEventError``
even when the stored events look like a retry of this append (outside, ``append_batch``
answers a retry with the first call's offsets).

The whole transaction, from ``async with`` to the end of the COMMIT, is bounded by
``timeout`` (default: the store's ``command_timeout``; the in-memory store: none); past it the
block is cancelled, rolled back, and ``StoreTimeoutError`` raised. The server also ends a
transaction left idle that long, so a client that dies inside one cannot hold its locks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from . import _core
from . import validation as check
from .backend import Flushed, StagedCommit, TransactionSession
from .durations import MAX_STATEMENT_TIMEOUT_SECONDS
from .errors import ConfigurationError, StoreTimeoutError
from .events import AppendResult, Event
from .offsets import OMITTED, Omitted, expectation
from .protocol import Receipt

if TYPE_CHECKING:
    from .base import StoreBase

__all__ = ["Staged", "Transaction"]

T = TypeVar("T")


class Staged(Generic[T]):
    """The result of an operation staged in a transaction: known once the transaction has
    committed (``result()`` before then raises ``asyncio.InvalidStateError``)."""

    __slots__ = ("_done", "_value", "_what")

    def __init__(self, what: str) -> None:
        self._what = what
        self._done = False
        self._value: T | None = None

    def __repr__(self) -> str:
        state = f"= {self._value!r}" if self._done else "(not committed)"
        return f"<Staged {self._what} {state}>"

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if not self._done:
            raise asyncio.InvalidStateError(
                f"{self._what}: its transaction has not committed (yet, or it was rolled back)"
            )
        return self._value  # type: ignore[return-value]

    def _set(self, value: T) -> None:
        self._value = value
        self._done = True


class Transaction:
    """One transaction of a store; see the module's documentation. Get one from
    ``store.transaction(timeout=...)`` and use it once, with ``async with``."""

    def __init__(self, store: StoreBase, timeout: float | timedelta | None) -> None:
        if timeout is None:
            self._timeout = store._default_transaction_timeout()
        else:
            self._timeout = check.check_timeout(
                timeout, "timeout", maximum=MAX_STATEMENT_TIMEOUT_SECONDS
            )
        self._store = store
        self._session: TransactionSession | None = None
        self._deadline: asyncio.Timeout | None = None
        self._finished = False
        self._appends: list[tuple[str, _core.EventBatch, int | None]] = []
        self._append_handles: list[Callable[[list[int], list[int]], None]] = []
        self._enqueues: list[tuple[str, _core.EventBatch, float]] = []
        self._enqueue_handles: list[Staged[Any]] = []
        self._enqueued_ids: list[Any] = []
        self._commits: list[StagedCommit] = []
        self._commit_handles: list[Staged[bool]] = []
        self._acknowledgements: list[_core.Receipts] = []
        self._ack_handles: list[Staged[bool]] = []

    # ------------------------------------------------------------------ the block

    async def __aenter__(self) -> Self:
        if self._session is not None or self._finished:
            raise ConfigurationError("a transaction can be entered only once")
        self._store._check_open()
        self._deadline = asyncio.timeout(self._timeout)
        await self._deadline.__aenter__()
        try:
            self._session = await self._store._begin(self._timeout)
        except BaseException as error:
            await self._leave_deadline(error)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        assert session is not None, "__aexit__ without __aenter__"
        self._finished = True
        if exc is None:
            try:
                flushed = await session.commit(
                    self._appends, self._enqueues, self._commits, self._acknowledgements
                )
            except BaseException as error:
                await self._leave_deadline(error)
                raise
            await self._leave_deadline(None)
            self._fill(flushed)
            return
        # Shielded: a second cancellation must not stop the rollback half-way (and if the
        # connection goes meanwhile, the server rolls back anyway).
        await asyncio.shield(session.rollback())
        await self._leave_deadline(exc)

    async def _leave_deadline(self, error: BaseException | None) -> None:
        """Leaves the timeout; a block it cancelled raises ``StoreTimeoutError``."""
        deadline = self._deadline
        assert deadline is not None
        try:
            await deadline.__aexit__(
                None if error is None else type(error),
                error,
                None if error is None else error.__traceback__,
            )
        except TimeoutError as timed_out:
            if isinstance(timed_out, StoreTimeoutError):
                raise
            raise StoreTimeoutError(
                f"the transaction took longer than its timeout ({self._timeout} s) and was "
                "rolled back; nothing in it was written"
            ) from timed_out

    def _fill(self, flushed: Flushed) -> None:
        appended, _enqueued, moved, acknowledged = flushed
        for fill, (offsets, positions) in zip(self._append_handles, appended, strict=True):
            fill(offsets, positions)
        for handle, ids in zip(self._enqueue_handles, self._enqueued_ids, strict=True):
            handle._set(ids)
        for commit_handle, committed in zip(self._commit_handles, moved, strict=True):
            commit_handle._set(committed)
        for ack_handle, count in zip(self._ack_handles, acknowledged, strict=True):
            ack_handle._set(count > 0)

    def _check_staging(self) -> None:
        if self._finished:
            raise ConfigurationError("this transaction is over: nothing more can be staged in it")
        if self._session is None:
            raise ConfigurationError(
                "stage operations inside `async with store.transaction() as tx:`"
            )

    # ------------------------------------------------------------------ staged operations

    def append_batch(
        self, stream: str, events: Iterable[Event], *, expected_version: int | None = None
    ) -> Staged[AppendResult]:
        """Stages an atomic append of ``events`` to ``stream``; the handle gives its
        ``AppendResult`` (offsets, with ``.positions``) after commit."""
        check.check_stream(stream)
        listed = check.check_events(events)
        expected = check.check_expected_version(expected_version)
        batch = _core.EventBatch(listed)
        self._check_staging()
        handle: Staged[AppendResult] = Staged(f"append_batch({stream!r})")
        self._appends.append((stream, batch, expected))
        self._append_handles.append(
            lambda offsets, positions: handle._set(AppendResult(offsets, positions))
        )
        return handle

    def append(
        self,
        stream: str,
        event: Event,
        metadata: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
    ) -> Staged[int]:
        """Stages the append of one event; the handle gives its offset after commit."""
        check.check_stream(stream)
        check.check_event(event)
        if metadata:
            event = event.with_metadata(metadata)
        expected = check.check_expected_version(expected_version)
        batch = _core.EventBatch([event])
        self._check_staging()
        handle: Staged[int] = Staged(f"append({stream!r})")
        self._appends.append((stream, batch, expected))
        self._append_handles.append(lambda offsets, _positions: handle._set(offsets[0]))
        return handle

    def enqueue(
        self, stream: str, event: Event, *, delay: float | timedelta | None = None
    ) -> Staged[uuid.UUID]:
        """Stages one message (the transactional outbox: sent only if the transaction
        commits); the handle gives its id."""
        check.check_stream(stream)
        check.check_event(event)
        return self._stage_enqueue(stream, [event], delay, event.id, f"enqueue({stream!r})")

    def enqueue_batch(
        self, stream: str, events: Iterable[Event], *, delay: float | timedelta | None = None
    ) -> Staged[list[uuid.UUID]]:
        """Stages a batch of messages; the handle gives their ids in order."""
        check.check_stream(stream)
        listed = check.check_events(events)
        ids = [event.id for event in listed]
        return self._stage_enqueue(stream, listed, delay, ids, f"enqueue_batch({stream!r})")

    def _stage_enqueue(
        self,
        stream: str,
        events: list[Event],
        delay: float | timedelta | None,
        ids: Any,
        what: str,
    ) -> Staged[Any]:
        seconds = check.check_delay(delay)
        batch = _core.EventBatch(events, unique_ids=False)
        self._check_staging()
        handle: Staged[Any] = Staged(what)
        self._enqueues.append((stream, batch, seconds))
        self._enqueue_handles.append(handle)
        self._enqueued_ids.append(ids)
        return handle

    def commit_offset(
        self, stream: str, group: str, offset: int, *, expected: int | Omitted | None = OMITTED
    ) -> Staged[bool]:
        """Stages ``store.commit_offset`` (same rules); a failed ``expected`` fails the whole
        transaction with ``ConcurrencyError``."""
        check.check_stream(stream)
        check.check_name(group, "group")
        check.check_int(offset, "offset", minimum=0)
        check_expected, value = expectation(expected, "offset")
        self._check_staging()
        return self._stage_commit((stream, group, offset, check_expected, value, None))

    def commit_position(
        self, group: str, position: int, *, expected: int | Omitted | None = OMITTED
    ) -> Staged[bool]:
        """Stages ``store.commit_position`` (same rules), as ``commit_offset``."""
        check.check_name(group, "group")
        check.check_int(position, "position", minimum=0)
        check_expected, value = expectation(expected, "position")
        self._check_staging()
        return self._stage_commit((None, group, position, check_expected, value, None))

    def _stage_member_commit(
        self, stream: str | None, group: str, value: int, member: str, generation: int
    ) -> Staged[bool]:
        """A consumer group member's commit, fenced (``Subscription.commit_in``)."""
        self._check_staging()
        return self._stage_commit((stream, group, value, False, None, (member, generation)))

    def _stage_commit(self, commit: StagedCommit) -> Staged[bool]:
        stream, group, value, _, _, _ = commit
        where = "the global feed" if stream is None else repr(stream)
        handle: Staged[bool] = Staged(f"commit of group {group!r} on {where} to {value}")
        self._commits.append(commit)
        self._commit_handles.append(handle)
        return handle

    def acknowledge(self, event_or_id: Receipt) -> Staged[bool]:
        """Stages ``store.acknowledge``: the message goes only if the transaction commits."""
        receipts = _core.Receipts([event_or_id])
        self._check_staging()
        handle: Staged[bool] = Staged("acknowledge")
        self._acknowledgements.append(receipts)
        self._ack_handles.append(handle)
        return handle

    # ------------------------------------------------------------------ the caller's SQL

    async def execute(self, sql: str, *params: Any) -> int:
        """Runs the caller's statement at once, in this transaction (``$1``-style
        parameters); returns the number of rows it affected. PostgreSQL only."""
        session = self._sql_session(sql)
        return int(await session.execute(sql, list(params)))

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Runs the caller's query at once, in this transaction; returns its rows as tuples.
        PostgreSQL only."""
        session = self._sql_session(sql)
        return list(await session.fetch(sql, list(params)))

    def _sql_session(self, sql: str) -> TransactionSession:
        if not isinstance(sql, str):
            raise ConfigurationError("sql must be a str")
        self._check_staging()
        assert self._session is not None
        return self._session
