"""The ``eventsourcing`` library (9.5) on pgstreams: ``PERSISTENCE_MODULE=pgstreams.eventsourcing``.

Settings (read through eventsourcing's ``Environment``, so ``<APPNAME>_PGSTREAMS_DSN`` beats
``PGSTREAMS_DSN``):

- ``PGSTREAMS_DSN``: any connection string ``pgstreams.connect`` takes;
- ``PGSTREAMS_SCHEMA``: the pgstreams schema (default: pgstreams' own default);
- ``PGSTREAMS_IN_MEMORY=y``: a ``pgstreams.InMemoryEventStore`` instead (no DSN needed);
- ``ORIGINATOR_ID_TYPE``: ``uuid`` (the default) or ``text``, as for eventsourcing's
  PostgreSQL module: the type of the ``originator_id`` values read back;
- ``CREATE_TABLE``: ``no`` leaves the tracking table alone (pgstreams' own schema is migrated
  by ``connect``).

How eventsourcing's records map onto pgstreams:

- A stored event is a pgstreams event of the persistent stream ``{events_name}:{originator_id}``
  (``events_name`` is what eventsourcing's SQL recorders name the table: ``stored_events``,
  ``<appname>_events``, ``<appname>_snapshots``), so applications and their snapshots can share
  one schema and each application's notification log holds only its own events. The topic is
  the event type, the state is ``data["state"]`` (base64: it is bytes, often compressed or
  encrypted), the originator version is ``metadata["originator_version"]``.
- The event id is a UUIDv5 of the stream and the originator version, so a version used twice
  collides on pgstreams' unique event id: eventsourcing's ``IntegrityError``. Any unused
  version is accepted, in any order, as eventsourcing's SQL recorders accept them.
- Notification ids are pgstreams' global positions (gap-safe: a reader never passes an event
  that commits later). They have gaps where other applications' events (or failed writes) are.
- Every insert is one pgstreams transaction: the events of several aggregates and the
  tracking record of a process application are written all together or not at all.
- Tracking records live in the table ``eventsourcing_tracking`` of the pgstreams schema (one
  row per tracking recorder and upstream application, as eventsourcing's single-row tracking);
  with the in-memory store, in a dict.

The recorders are synchronous, pgstreams is asyncio. On PostgreSQL inserts and reads go
straight to pgstreams' Rust core from the caller's thread (``_core.BlockingCore`` and its
``BlockingTransaction``: a call costs the round trip and two thread switches). The rest (the
in-memory store, the rarer ``max_notification_id``, ``max_tracking_id``, creating the tracking
table, subscriptions) runs on one event loop per factory, in a daemon thread, and the caller
waits for it there.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import itertools
import os
import sys
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ClassVar, Final, Literal, TypeVar, cast

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    InternalError,
    ListenNotifySubscription,
    Notification,
    OperationalError,
    PersistenceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from . import _core, errors
from .events import Event
from .events import StoredEvent as PgStoredEvent
from .memory import InMemoryEventStore
from .postgres import PostgresEventStore, connect
from .transactions import Transaction
from .validation import MAX_BIGINT

__all__ = [
    "Factory",
    "PgStreamsAggregateRecorder",
    "PgStreamsApplicationRecorder",
    "PgStreamsDatastore",
    "PgStreamsFactory",
    "PgStreamsProcessRecorder",
    "PgStreamsSubscription",
    "PgStreamsTrackingRecorder",
]

_T = TypeVar("_T")

Store = PostgresEventStore | InMemoryEventStore
OriginatorIdType = Literal["uuid", "text"]

EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "pgstreams:eventsourcing:event")
"""The namespace of the event ids: ``uuid5(EVENT_ID_NAMESPACE, f"{stream}:{version}")``."""

TRACKING_TABLE: Final = "eventsourcing_tracking"

# How many events a notification read asks for once other recorders' events were in its way.
FOREIGN_PAGE: Final = 500

# The stream name is the events name, this separator, then the originator id. Names may not
# contain it, so no application's streams start with another application's prefix.
SEPARATOR: Final = ":"


# ---------------------------------------------------------------------------------- errors


def _sqlstate_error(error: errors.DatabaseError) -> type[PersistenceError]:
    """eventsourcing's PEP 249 class for a PostgreSQL error, by its SQLSTATE class."""
    sqlstate = error.sqlstate or ""
    if sqlstate.startswith("23"):
        return IntegrityError
    if sqlstate.startswith("22"):
        return DataError
    if sqlstate.startswith(("42", "3F")):
        return ProgrammingError
    if sqlstate.startswith(("08", "53", "57", "40")):
        return OperationalError
    if sqlstate.startswith("XX"):
        return InternalError
    return DatabaseError


def translate_error(error: errors.EventStreamingError) -> PersistenceError:
    """The eventsourcing error a pgstreams error stands for (the cause is kept by the caller's
    ``raise ... from``): eventsourcing's applications catch these, never pgstreams' own."""
    kind: type[PersistenceError]
    if isinstance(error, errors.DuplicateEventError | errors.ConcurrencyError):
        kind = IntegrityError
    elif isinstance(error, errors.StoreClosedError):
        kind = InterfaceError
    elif isinstance(error, errors.StoreTimeoutError | errors.MigrationError):
        kind = OperationalError
    elif isinstance(
        error,
        errors.SerializationError | errors.ConfigurationError | errors.UndecodableEventError,
    ):
        kind = DataError
    elif isinstance(error, errors.InternalError):
        kind = InternalError
    elif isinstance(error, errors.DatabaseError):
        kind = _sqlstate_error(error)
    else:
        kind = PersistenceError
    return kind(str(error))


# ---------------------------------------------------------------------------------- the loop


class _MemoryTracking:
    """The in-memory store's tracking records: the highest notification id per (tracking
    recorder, upstream application). ``lock`` is held from the check to the record, across the
    transaction of the events, so two inserts of the same tracking cannot both pass."""

    def __init__(self) -> None:
        self.max_ids: dict[tuple[str, str], int] = {}
        self.lock = asyncio.Lock()

    def check(self, tracking_name: str, tracking: Tracking) -> None:
        current = self.max_ids.get((tracking_name, tracking.application_name))
        if current is not None and current >= tracking.notification_id:
            raise IntegrityError(
                f"tracking {tracking.application_name!r} {tracking.notification_id}: "
                f"not above the recorded {current}"
            )

    def record(self, tracking_name: str, tracking: Tracking) -> None:
        self.max_ids[(tracking_name, tracking.application_name)] = tracking.notification_id


class PgStreamsDatastore:
    """One pgstreams store and the event loop it runs on, shared by a factory's recorders.

    The loop runs in a daemon thread; ``run`` submits a coroutine from any thread and waits for
    its result, raising eventsourcing's errors for pgstreams' ones. ``close`` closes the store
    and stops the loop. A process forked after the datastore was made cannot use it (the loop
    thread was not forked): it raises ``InterfaceError`` there instead of hanging."""

    def __init__(self, open_store: Callable[[], Awaitable[Store]]) -> None:
        self._pid = os.getpid()
        self._closed = False
        self._close_lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="pgstreams-eventsourcing", daemon=True
        )
        self._thread.start()
        _OPEN_DATASTORES.add(self)
        self.memory_tracking = _MemoryTracking()
        self._tracking_table_created = False
        try:

            async def opened() -> Store:
                return await open_store()

            self.store: Store = self.run(opened())
        except BaseException:
            self._stop_loop()
            raise
        # The store's calls without the loop (PostgreSQL only; see the module's documentation).
        self.blocking: _core.BlockingCore | None = None
        if isinstance(self.store, PostgresEventStore):
            self.blocking = self.store._core.blocking()

    @property
    def is_postgres(self) -> bool:
        return isinstance(self.store, PostgresEventStore)

    @property
    def tracking_table(self) -> str:
        """The tracking table's qualified name (PostgreSQL only)."""
        assert isinstance(self.store, PostgresEventStore)
        # pgstreams accepts only plain identifiers as schema names, so quoting makes it inert.
        return f'"{self.store.options.schema_name}".{TRACKING_TABLE}'

    def _check_usable(self) -> None:
        if os.getpid() != self._pid:
            raise InterfaceError(
                f"this pgstreams datastore was made in process {self._pid} and cannot be used "
                f"in the forked process {os.getpid()}: make the application in the child"
            )
        if self._closed:
            raise InterfaceError("the pgstreams datastore is closed")

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Runs ``coroutine`` on the store's loop and returns its result (from any thread but
        the loop's own)."""
        with self._close_lock:
            try:
                self._check_usable()
            except InterfaceError:
                coroutine.close()
                raise
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            self._pending.add(future)
        try:
            return future.result()
        except errors.EventStreamingError as error:
            raise translate_error(error) from error
        except concurrent.futures.CancelledError:
            if self._closed:
                raise InterfaceError("the pgstreams datastore was closed during the call") from None
            raise
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): cancel the work too; pgstreams
            # calls are safe to cancel at any instant.
            future.cancel()
            raise
        finally:
            with self._close_lock:
                self._pending.discard(future)

    def call(self, method: Callable[..., _T], *args: Any) -> _T:
        """Calls ``method`` (of ``self.blocking``) in this thread, raising eventsourcing's
        errors for pgstreams' ones."""
        self._check_usable()
        try:
            return method(*args)
        except errors.EventStreamingError as error:
            raise translate_error(error) from error

    def append_strict(self, stream: str, events: list[Event]) -> list[int]:
        """Appends ``events`` to ``stream`` in one transaction of its own; their positions. An
        event id stored before fails it (``IntegrityError``), even when the call looks like a
        retry of the one that stored it: here an id is a version, used once."""
        blocking = self.blocking
        assert blocking is not None

        def append() -> list[int]:
            _, positions = blocking.append(stream, _core.EventBatch(events), None, True)
            return positions

        return self.call(append)

    def write_blocking(
        self,
        runs: Sequence[tuple[str, list[Event]]],
        before: Callable[[_core.BlockingTransaction], None] | None = None,
    ) -> list[int]:
        """What the module's ``write`` does, from this thread (PostgreSQL): the runs appended
        in one transaction, after ``before(tx)`` ran in it; the events' positions, in order."""
        blocking = self.blocking
        assert blocking is not None
        store = self.store
        assert isinstance(store, PostgresEventStore)

        def transaction() -> list[int]:
            tx = blocking.begin(store._default_transaction_timeout())
            try:
                if before is not None:
                    before(tx)
                appends: list[tuple[str, _core.EventBatch, int | None]] = [
                    (stream, _core.EventBatch(events), None) for stream, events in runs
                ]
                appended = tx.commit(appends, [], [], [])[0]
            except BaseException:
                # The error that got here is the one to raise, whatever the rollback meets.
                with contextlib.suppress(errors.EventStreamingError):
                    tx.rollback()
                raise
            return [position for _, positions in appended for position in positions]

        return self.call(transaction)

    def read_stream(self, stream: str) -> list[PgStoredEvent]:
        """Every event of ``stream``, in offset order, through the loop."""

        async def collected() -> list[PgStoredEvent]:
            return [event async for event in self.store.read_stream(stream)]

        return self.run(collected())

    def read_feed(
        self, after: int, count: int, event_types: list[str] | None, stop: int | None
    ) -> list[PgStoredEvent]:
        """Up to ``count`` events of the feed after position ``after`` (of ``event_types``, up
        to position ``stop``), through the loop."""

        async def collected() -> list[PgStoredEvent]:
            feed = self.store.read_all(
                after_position=after, max_count=count, event_types=event_types, until_position=stop
            )
            return [event async for event in feed]

        return self.run(collected())

    def submit(self, coroutine: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Starts ``coroutine`` on the store's loop without waiting (background work that
        ``close`` cancels)."""
        with self._close_lock:
            if self._closed or os.getpid() != self._pid:
                coroutine.close()
                raise InterfaceError("the pgstreams datastore is closed")
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def create_tracking_table(self) -> None:
        """Creates the tracking table if missing (once per datastore; idempotent)."""
        if self._tracking_table_created or not self.is_postgres:
            return
        statement = (
            f"CREATE TABLE IF NOT EXISTS {self.tracking_table} ("
            "tracking_name text NOT NULL, "
            "application_name text NOT NULL, "
            "notification_id bigint NOT NULL, "
            "PRIMARY KEY (tracking_name, application_name))"
        )
        try:
            async with self.store.transaction() as tx:
                await tx.execute(statement)
        except errors.DatabaseError as error:
            # Two processes creating it at once: the loser's IF NOT EXISTS can still fail on
            # the catalog's unique index (23505) or see the table appear (42P07). It exists.
            if error.sqlstate not in ("23505", "42P07"):
                raise
        self._tracking_table_created = True

    def close(self) -> None:
        """Closes the store and stops the loop; calls still running raise ``InterfaceError``.
        Idempotent; a no-op in a forked child."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if os.getpid() != self._pid or not self._thread.is_alive() or sys.is_finalizing():
            return  # (finalizing: the loop's thread cannot run any more; nothing to wait for)
        if threading.current_thread() is self._thread:
            # Collected on the loop's own thread: it cannot wait for itself.
            task = self._loop.create_task(self._shut_down())
            task.add_done_callback(lambda _: self._loop.stop())
            return
        with contextlib.suppress(Exception):
            shutting_down = asyncio.run_coroutine_threadsafe(self._shut_down(), self._loop)
            shutting_down.result(timeout=30)
        self._stop_loop()

    async def _shut_down(self) -> None:
        """Closes the store, then cancels the calls still running, so no caller waits for a
        loop about to stop."""
        store = getattr(self, "store", None)
        try:
            if store is not None:
                await store.close()
        finally:
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

    def _stop_loop(self) -> None:
        self._closed = True
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        # A call submitted as the loop stopped never started: it must not wait forever.
        with self._close_lock:
            stranded = list(self._pending)
        for future in stranded:
            future.cancel()
        if not self._thread.is_alive():
            self._loop.close()

    def __del__(self) -> None:
        # An application that is never closed still lets go of its connections when collected.
        with contextlib.suppress(Exception):
            self.close()


_OPEN_DATASTORES: weakref.WeakSet[PgStreamsDatastore] = weakref.WeakSet()


@atexit.register
def _close_open_datastores() -> None:
    """Closes the datastores still open at exit, while their loops' threads can still run
    (registered after pgstreams' own shutdown, so it runs before it)."""
    for datastore in list(_OPEN_DATASTORES):
        datastore.close()


# ---------------------------------------------------------------------------------- recorders


InTransaction = Callable[[Transaction], Awaitable[None]]


async def write(
    store: Store, runs: Sequence[tuple[str, list[Event]]], before: InTransaction | None = None
) -> list[int]:
    """Appends each run (stream, events) in one pgstreams transaction, after awaiting
    ``before(tx)`` in it (the tracking record); returns the events' positions, in order. An
    event id already stored (a version used twice) fails it all: ``DuplicateEventError``."""
    async with store.transaction() as tx:
        if before is not None:
            await before(tx)
        # Staged, not awaited: sent at the end of the block, with the commit.
        handles = [tx.append_batch(stream, events) for stream, events in runs]
    return [position for handle in handles for position in handle.result().positions]


def not_written_by_eventsourcing(originator_id: object, version: int | None) -> DataError:
    """The error for a row of a recorder's stream that another program wrote: one without a
    version or without a state."""
    what = "an originator_version" if version is None else f"a state (version {version})"
    return DataError(
        f"an event of originator {originator_id} was not written by eventsourcing: it has no {what}"
    )


def bigint(number: int) -> int:
    """``number`` within PostgreSQL's bigint: a bound past every stored version or position
    means the same as the largest one (eventsourcing passes any int)."""
    return max(-MAX_BIGINT - 1, min(number, MAX_BIGINT))


def _check_name(name: str, what: str) -> str:
    if not name or SEPARATOR in name:
        raise ProgrammingError(f"{what} {name!r} must be non-empty and without {SEPARATOR!r}")
    return name


class PgStreamsRecorder:
    """What every recorder of a datastore shares: the datastore and how stream names are
    made and read back."""

    def __init__(
        self,
        datastore: PgStreamsDatastore,
        *,
        originator_id_type: OriginatorIdType = "uuid",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.datastore = datastore
        if originator_id_type not in ("uuid", "text"):
            raise ProgrammingError(
                f"originator_id_type must be 'uuid' or 'text', got {originator_id_type!r}"
            )
        self.originator_id_type = originator_id_type


class PgStreamsAggregateRecorder(PgStreamsRecorder, AggregateRecorder):
    """Stored events as events of the persistent streams ``{events_name}:{originator_id}``."""

    def __init__(
        self,
        datastore: PgStreamsDatastore,
        *,
        events_name: str = "stored_events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.events_name = _check_name(events_name, "events_name")
        self.stream_prefix = events_name + SEPARATOR

    # -------------------------------------------------------------- names and encoding

    def stream_name(self, originator_id: uuid.UUID | str) -> str:
        """The pgstreams stream of an originator. With the ``uuid`` type, a str id is written
        in its canonical form (as PostgreSQL's uuid column would store it)."""
        if self.originator_id_type == "uuid" and not isinstance(originator_id, uuid.UUID):
            try:
                originator_id = uuid.UUID(str(originator_id))
            except ValueError:
                raise DataError(f"originator_id {originator_id!r} is not a UUID") from None
        return self.stream_prefix + str(originator_id)

    def originator_id(self, stream: str) -> uuid.UUID | str:
        text = stream[len(self.stream_prefix) :]
        return uuid.UUID(text) if self.originator_id_type == "uuid" else text

    @staticmethod
    def to_event(stream: str, stored_event: StoredEvent) -> Event:
        version = stored_event.originator_version
        return Event(
            stored_event.topic,
            {"state": base64.b64encode(stored_event.state).decode("ascii")},
            metadata={"originator_version": version},
            id=uuid.uuid5(EVENT_ID_NAMESPACE, f"{stream}:{version}"),
        )

    @staticmethod
    def originator_version(event: PgStoredEvent) -> int:
        try:
            return int(event.metadata["originator_version"])
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"event {event.id} of stream {event.stream!r} (offset {event.offset}) was not "
                "written by eventsourcing: its metadata has no originator_version"
            ) from None

    @staticmethod
    def state(event: PgStoredEvent) -> bytes:
        try:
            return base64.b64decode(event.data["state"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"event {event.id} of stream {event.stream!r} (offset {event.offset}) was not "
                "written by eventsourcing: its data has no base64 state"
            ) from None

    def runs(self, stored_events: Sequence[StoredEvent]) -> list[tuple[str, list[Event]]]:
        """The events as appends: one per run of consecutive events of one originator, so the
        positions (notification ids) follow the order of ``stored_events``."""
        runs: list[tuple[str, list[Event]]] = []
        last_id: object = object()
        stream = ""
        for stored_event in stored_events:
            if stored_event.originator_id != last_id:
                last_id = stored_event.originator_id
                stream = self.stream_name(stored_event.originator_id)
                runs.append((stream, []))
            runs[-1][1].append(self.to_event(stream, stored_event))
        return runs

    # -------------------------------------------------------------- writing

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self.record(stored_events)
        return None

    def record(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Appends the events in one transaction; returns their positions. One aggregate's
        events are one append of their own (no transaction to open and flush); the events of
        several go through a pgstreams transaction."""
        runs = self.runs(stored_events)
        if not runs:
            return []
        if self.datastore.blocking is None:
            return self.datastore.run(write(self.datastore.store, runs))
        if len(runs) == 1:
            return self.datastore.append_strict(*runs[0])
        return self.datastore.write_blocking(runs)

    # -------------------------------------------------------------- reading

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return self._select_events(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)

    def _select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        # pgstreams indexes offsets, not originator versions, and the two need not move
        # together (snapshots skip versions, an older snapshot may be taken after a newer one,
        # any unused version is accepted, in any order), so no read of part of a stream can
        # prove it found every version of a range. On PostgreSQL the server filters and sorts
        # the stream's events by version; in memory the whole stream is read and sorted here.
        if limit is not None and limit <= 0:
            return []
        stream = self.stream_name(originator_id)
        if self.datastore.blocking is not None:
            return self._select_versions(stream, gt, lte, desc, limit)
        versioned = [
            (self.originator_version(event), event) for event in self.datastore.read_stream(stream)
        ]
        if any(a[0] >= b[0] for a, b in itertools.pairwise(versioned)):
            versioned.sort(key=lambda pair: pair[0])
        selected = [
            (version, event)
            for version, event in versioned
            if (gt is None or version > gt) and (lte is None or version <= lte)
        ]
        if desc:
            selected.reverse()
        if limit is not None:
            selected = selected[:limit]
        # The originator id as eventsourcing's SQL recorders return it: of the column's type.
        read_id = self.originator_id(stream)
        return [
            StoredEvent(
                originator_id=read_id,
                originator_version=version,
                topic=event.type,
                state=self.state(event),
            )
            for version, event in selected
        ]

    def _select_versions(
        self, stream: str, gt: int | None, lte: int | None, desc: bool, limit: int | None
    ) -> list[StoredEvent]:
        """``select_events`` on PostgreSQL: the versions filtered, sorted and limited by the
        server, as eventsourcing's own recorders do (in one round trip; the stream's index
        finds its events, the sort is of one aggregate's events). A row another tool wrote
        (no version) sorts first and fails the read; a version that is not a number fails
        the cast (``DataError``)."""
        blocking = self.datastore.blocking
        assert blocking is not None
        gt, lte, limit = (None if n is None else bigint(n) for n in (gt, lte, limit))
        rows = self.datastore.call(blocking.select_versions, stream, gt, lte, limit, desc)
        read_id = self.originator_id(stream)
        selected = []
        for version, topic, state in rows:
            if version is None or state is None:
                raise not_written_by_eventsourcing(read_id, version)
            selected.append(
                StoredEvent(
                    originator_id=read_id, originator_version=version, topic=topic, state=state
                )
            )
        return selected


class PgStreamsApplicationRecorder(PgStreamsAggregateRecorder, ApplicationRecorder):
    """An aggregate recorder whose events also form the application's notification log: the
    events of its streams in global position order."""

    def __init__(self, datastore: PgStreamsDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._listeners: set[threading.Event] = set()
        self._listeners_lock = threading.Lock()

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = self.record(stored_events)
        self._notify_listeners()
        # As eventsourcing's PostgreSQL recorder: None when there was nothing to insert.
        return positions or None

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        return self._select_notifications(
            start, limit, stop, topics, inclusive_of_start=inclusive_of_start
        )

    def _select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None,
        topics: Sequence[str],
        *,
        inclusive_of_start: bool,
    ) -> list[Notification]:
        after = -1 if start is None else max(start - 1 if inclusive_of_start else start, -1)
        if limit <= 0 or (stop is not None and stop <= after) or after >= MAX_BIGINT:
            return []
        limit = bigint(limit)
        stop = None if stop is None else bigint(stop)
        # The feed is read in position order, a window at a time, and this recorder's events
        # are picked out of each window (by the server on PostgreSQL), not by
        # read_all(stream_prefix=...): a prefix that matches most of the feed (an application
        # alone in its schema, the usual case) is planned, on statistics older than the
        # events, as a scan of every stream of the prefix and a sort, not as the position
        # index's first `limit` rows. Topics are filtered in SQL.
        event_types = list(topics) or None
        selected: list[Notification] = []
        count = limit
        while True:
            rows = self._feed_rows(after, count, event_types, stop)
            for position, originator_id, topic, state, version in rows:
                if originator_id is None:
                    continue  # another recorder's
                if version is None or state is None:
                    raise not_written_by_eventsourcing(originator_id, version)
                selected.append(
                    Notification(
                        id=position,
                        originator_id=originator_id,
                        originator_version=version,
                        topic=topic,
                        state=state,
                    )
                )
                if len(selected) == limit:
                    return selected
            if len(rows) < count:
                return selected  # the end of the feed (or of the range)
            after = rows[-1][0]
            # Other recorders' events are in the way: read further ahead per round trip.
            count = max(limit - len(selected), FOREIGN_PAGE)

    def _feed_rows(
        self, after: int, count: int, event_types: list[str] | None, stop: int | None
    ) -> list[tuple[Any, ...]]:
        """Up to ``count`` events of the feed after ``after`` (of ``event_types``, up to
        ``stop``) as ``(position, originator id, topic, state, version)``, the last four None
        for another recorder's event. On PostgreSQL the server picks this recorder's events
        out and decodes their state, in one round trip."""
        blocking = self.datastore.blocking
        if blocking is not None:
            until = MAX_BIGINT if stop is None else stop
            uuid_ids = self.originator_id_type == "uuid"
            return self.datastore.call(
                blocking.select_notifications,
                after,
                until,
                count,
                self.stream_prefix,
                event_types,
                uuid_ids,
            )
        return [
            (
                event.position,
                self.originator_id(event.stream),
                event.type,
                self.state(event),
                self.originator_version(event),
            )
            if event.stream.startswith(self.stream_prefix)
            else (event.position, None, None, None, None)
            for event in self.datastore.read_feed(after, count, event_types, stop)
        ]

    def max_notification_id(self) -> int | None:
        return self.datastore.run(self._max_notification_id())

    async def _max_notification_id(self) -> int | None:
        # The feed's head is the newest event of any recorder in the schema: look for this
        # one's newest below it in windows growing eightfold, so the usual case (an
        # application alone in its schema, or one that wrote last) is one read of one event.
        store = self.datastore.store
        upper = await store.get_head_position()
        window = 1
        while upper > 0:
            lower = max(upper - window, 0)
            newest = None
            async for event in store.read_all(after_position=lower, until_position=upper):
                if event.stream.startswith(self.stream_prefix):
                    newest = event.position
            if newest is not None:
                return newest
            upper = lower
            window *= 8
        return None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return PgStreamsSubscription(recorder=self, gt=gt, topics=topics)

    def listen(self, listener: threading.Event) -> None:
        with self._listeners_lock:
            self._listeners.add(listener)

    def unlisten(self, listener: threading.Event) -> None:
        with self._listeners_lock:
            self._listeners.discard(listener)

    def _notify_listeners(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.set()


class PgStreamsSubscription(ListenNotifySubscription[PgStreamsApplicationRecorder]):
    """Notifications after ``gt``, then new ones as they are recorded. Inserts through this
    recorder wake it at once; any other append to the store (another recorder, another
    process) wakes it through ``read_all(follow=True)``: pgstreams' notification of appends,
    with polling as its fallback."""

    def __init__(
        self,
        recorder: PgStreamsApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        # Before the base class starts the puller, whose failure calls stop().
        self._watching: concurrent.futures.Future[None] | None = None
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._recorder.listen(self._has_been_notified)
        datastore = self._recorder.datastore
        try:
            self._watching = datastore.submit(self._watch_appends(datastore.store))
        except BaseException:
            self.stop()
            raise

    async def _watch_appends(self, store: Store) -> None:
        """Wakes the puller (``_has_been_notified``) whenever the feed moves."""
        try:
            while not self._has_been_stopped:
                head = await store.get_head_position()
                # Everything up to the head is read by the pull this wakes (the puller clears
                # the flag before it reads), so only appends after it need watching.
                self._has_been_notified.set()
                async for _ in store.read_all(after_position=head, follow=True, max_count=1):
                    pass
        finally:
            # Stopped, or the store failed or closed: let the puller run (and raise) once more.
            self._has_been_notified.set()

    def stop(self) -> None:
        super().stop()
        self._recorder.unlisten(self._has_been_notified)
        if self._watching is not None:
            self._watching.cancel()


class PgStreamsTrackingRecorder(PgStreamsRecorder, TrackingRecorder):
    """Tracking records: the highest notification id processed per upstream application,
    under this recorder's ``tracking_name`` (what eventsourcing's SQL recorders name the
    table). A new one must be above the recorded one (eventsourcing's single-row tracking)."""

    def __init__(
        self,
        datastore: PgStreamsDatastore,
        *,
        tracking_name: str = "notification_tracking",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, **kwargs)
        self.tracking_name = tracking_name

    def create_table(self) -> None:
        self.datastore.run(self.datastore.create_tracking_table())

    def insert_tracking(self, tracking: Tracking) -> None:
        self.record_tracked([], tracking)

    def record_tracked(
        self, runs: Sequence[tuple[str, list[Event]]], tracking: Tracking
    ) -> list[int]:
        """Appends the runs and records ``tracking``, all or nothing; the events' positions.
        On PostgreSQL from this thread (``Core.blocking()``), in memory through the loop."""
        if self.datastore.blocking is None:
            return self.datastore.run(self.write_tracked(runs, tracking))
        sql, params = self.tracking_statement(tracking)

        def track(tx: _core.BlockingTransaction) -> None:
            if tx.execute(sql, params) == 0:
                raise self.not_above_recorded(tracking)

        return self.datastore.write_blocking(runs, track)

    async def write_tracked(
        self, runs: Sequence[tuple[str, list[Event]]], tracking: Tracking
    ) -> list[int]:
        """``record_tracked`` on the loop."""
        store = self.datastore.store
        if self.datastore.is_postgres:

            async def track(tx: Transaction) -> None:
                await self.insert_tracking_row(tx, tracking)

            return await write(store, runs, track)
        # The in-memory store has no SQL: check, write the events, then record, all under
        # the lock, so no other insert of the same tracking can pass the check meanwhile.
        memory = self.datastore.memory_tracking
        async with memory.lock:
            memory.check(self.tracking_name, tracking)
            positions = await write(store, runs) if runs else []
            memory.record(self.tracking_name, tracking)
        return positions

    async def insert_tracking_row(self, tx: Transaction, tracking: Tracking) -> None:
        """Records ``tracking`` in the transaction ``tx`` (PostgreSQL), or raises
        ``IntegrityError`` (which rolls ``tx`` back) when its notification id is not above the
        one recorded. A materialized view subclassing this recorder updates its own tables
        with ``tx.execute`` and calls this in the same transaction: exactly once."""
        sql, params = self.tracking_statement(tracking)
        if await tx.execute(sql, *params) == 0:
            raise self.not_above_recorded(tracking)

    def tracking_statement(self, tracking: Tracking) -> tuple[str, list[Any]]:
        """The statement recording ``tracking`` and its parameters. One statement: a new row,
        or the row raised to a higher notification id; no row touched means it was not
        higher."""
        sql = (
            f"INSERT INTO {self.datastore.tracking_table} AS t "
            "(tracking_name, application_name, notification_id) VALUES ($1, $2, $3) "
            "ON CONFLICT (tracking_name, application_name) DO UPDATE "
            "SET notification_id = excluded.notification_id "
            "WHERE t.notification_id < excluded.notification_id"
        )
        return sql, [self.tracking_name, tracking.application_name, tracking.notification_id]

    @staticmethod
    def not_above_recorded(tracking: Tracking) -> IntegrityError:
        return IntegrityError(
            f"tracking {tracking.application_name!r} {tracking.notification_id}: not above "
            "the notification id already recorded"
        )

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.datastore.run(self._max_tracking_id(application_name))

    async def _max_tracking_id(self, application_name: str) -> int | None:
        if not self.datastore.is_postgres:
            return self.datastore.memory_tracking.max_ids.get(
                (self.tracking_name, application_name)
            )
        async with self.datastore.store.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT notification_id FROM {self.datastore.tracking_table} "
                "WHERE tracking_name = $1 AND application_name = $2",
                self.tracking_name,
                application_name,
            )
        return int(rows[0][0]) if rows else None


class PgStreamsProcessRecorder(
    PgStreamsTrackingRecorder, PgStreamsApplicationRecorder, ProcessRecorder
):
    """An application recorder whose inserts may carry a tracking record (``tracking=``),
    written in the same transaction as the events."""

    def __init__(
        self,
        datastore: PgStreamsDatastore,
        *,
        events_name: str = "stored_events",
        tracking_name: str = "notification_tracking",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, events_name=events_name, tracking_name=tracking_name, **kwargs)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is None:
            return super().insert_events(stored_events)
        positions = self.record_tracked(self.runs(stored_events), tracking)
        self._notify_listeners()
        return positions or None


# ---------------------------------------------------------------------------------- factory


class PgStreamsFactory(InfrastructureFactory[PgStreamsTrackingRecorder]):
    """Makes the recorders of one application on one pgstreams store (see the module's
    documentation for the settings)."""

    PGSTREAMS_DSN = "PGSTREAMS_DSN"
    PGSTREAMS_SCHEMA = "PGSTREAMS_SCHEMA"
    PGSTREAMS_IN_MEMORY = "PGSTREAMS_IN_MEMORY"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"
    CREATE_TABLE = "CREATE_TABLE"

    aggregate_recorder_class: ClassVar[type[PgStreamsAggregateRecorder]] = (
        PgStreamsAggregateRecorder
    )
    application_recorder_class: ClassVar[type[PgStreamsApplicationRecorder]] = (
        PgStreamsApplicationRecorder
    )
    tracking_recorder_class: ClassVar[type[PgStreamsTrackingRecorder]] = PgStreamsTrackingRecorder
    process_recorder_class: ClassVar[type[PgStreamsProcessRecorder]] = PgStreamsProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        originator_id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if originator_id_type not in ("uuid", "text"):
            raise OSError(
                f"Invalid {self.ORIGINATOR_ID_TYPE} {originator_id_type!r}, "
                "must be 'uuid' or 'text'"
            )
        self.originator_id_type = cast(OriginatorIdType, originator_id_type)
        self.datastore = PgStreamsDatastore(self._store_opener())

    def _store_opener(self) -> Callable[[], Awaitable[Store]]:
        if strtobool(self.env.get(self.PGSTREAMS_IN_MEMORY) or "no"):

            async def in_memory() -> Store:
                return InMemoryEventStore()

            return in_memory
        dsn = self.env.get(self.PGSTREAMS_DSN)
        if not dsn:
            raise OSError(
                f"pgstreams connection string not found in environment with key "
                f"'{self.PGSTREAMS_DSN}' (or set '{self.PGSTREAMS_IN_MEMORY}=y')"
            )
        schema = self.env.get(self.PGSTREAMS_SCHEMA)
        overrides = {"schema_name": schema} if schema else {}

        async def on_postgres() -> Store:
            return await connect(dsn, **overrides)

        return on_postgres

    def env_create_table(self) -> bool:
        return strtobool(self.env.get(self.CREATE_TABLE) or "yes")

    def _prefix(self, default: str) -> str:
        return self.env.name.lower() or default

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return type(self).aggregate_recorder_class(
            self.datastore,
            events_name=f"{self._prefix('stored')}_{purpose}",
            originator_id_type=self.originator_id_type,
        )

    def application_recorder(self) -> ApplicationRecorder:
        recorder_class = type(self).application_recorder_class
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        if topic:
            recorder_class = resolve_topic(topic)
            assert issubclass(recorder_class, PgStreamsApplicationRecorder)
        return recorder_class(
            self.datastore,
            events_name=f"{self._prefix('stored')}_events",
            originator_id_type=self.originator_id_type,
        )

    def tracking_recorder(
        self, tracking_recorder_class: type[PgStreamsTrackingRecorder] | None = None
    ) -> PgStreamsTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = (
                resolve_topic(topic) if topic else type(self).tracking_recorder_class
            )
        assert tracking_recorder_class is not None
        assert issubclass(tracking_recorder_class, PgStreamsTrackingRecorder)
        recorder = tracking_recorder_class(
            self.datastore,
            tracking_name=f"{self._prefix('notification')}_tracking",
            originator_id_type=self.originator_id_type,
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        recorder_class = type(self).process_recorder_class
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        if topic:
            recorder_class = resolve_topic(topic)
            assert issubclass(recorder_class, PgStreamsProcessRecorder)
        recorder = recorder_class(
            self.datastore,
            events_name=f"{self._prefix('stored')}_events",
            tracking_name=f"{self._prefix('notification')}_tracking",
            originator_id_type=self.originator_id_type,
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder

    def close(self) -> None:
        with contextlib.suppress(AttributeError):
            self.datastore.close()


Factory = PgStreamsFactory
