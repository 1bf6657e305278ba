"""Consumer groups: ``store.subscribe(...)`` and ``store.run_consumer(...)``.

The design
==========

**Units.** A subscription's *selector* names what it reads: one stream (a ``str``), several
(``Selector.streams([...])``), a category (``Selector.prefix("order-")``: every stream whose
name starts with it, new ones included), or the global feed (``Selector.all()``). The unit of
work is a stream: each has its own committed offset per group (the NEXT offset to read). The
global feed is one unit (``""``) whose progress is a committed position (the LAST one
processed).

**Members.** A subscriber is a member of its group: ``consumer_id`` registered in
``consumer_registrations`` under the selector, with a heartbeat every ``heartbeat_interval``
(default 10 s). A member whose last heartbeat is older than its ``session_timeout`` (default
30 s) is removed by whichever member of the group heartbeats next, and its leases go with it:
no separate daemon.

**Leases and balance.** A member works on a unit only while it holds the unit's *lease*
(``consumer_leases``), which is exclusive and lasts ``session_timeout`` unless renewed by the
holder's heartbeat. So two live members never both work on a unit. At each heartbeat a member
learns the group's live members and computes, for every unit, its rendezvous owner (the member
with the highest hash of unit and member id): the units it owns it takes (or renews), the ones
it holds but no longer owns it gives up, after committing (per its strategy) at its next step
between events. A single-stream or global-feed subscription thus has one active member; the
others stand by and take over when it leaves or stops heartbeating. A member that joins or
leaves moves only the units whose owner changes.

**Fencing.** Every change of a unit's holder increments the lease's generation. A commit
carries the generation the member holds the unit under, and the database refuses it
(``ConsumerFencedError``) unless the member still holds the unit under that generation. A
member evicted for missing heartbeats (a long pause, a partition) therefore cannot move the
offset its successor now owns. Automatic commits that are refused drop the unit quietly (a
warning in the log); ``await sub.commit()`` raises it.

**Commit strategies.** An event counts as handled once the next one is asked for.
``"after_batch"`` (default) commits the handled events when the next batch is fetched;
``"after_each"`` when the next event is asked for; ``"periodic"`` every ``commit_interval``
seconds; ``"manual"`` only by ``await sub.commit()``, which commits every event yielded so far,
the current one included. Leaving the ``async with`` block normally (the loop ended, or a
``break``) commits, per the strategy, every event yielded; leaving it by an exception commits
only those handled before the current one (nothing for ``"manual"``). Then it gives up the
leases and deregisters.

**Where it starts.** A unit starts from the group's committed offset or position, else
``from_offset`` (for the global feed: ``after_position``, exclusive), else the beginning.
Having caught up, the subscription follows new appends live (the feed's notification, polling
as a fallback).

**Delivery guarantee: at least once.** An event is yielded again (to this member or another)
exactly when its unit's progress was not committed before the unit changed hands: the member
crashed or was cancelled between handling and committing; it was evicted (missed heartbeats)
and its successor started from the last commit; the group rebalanced while a ``"manual"`` or
``"periodic"`` member had handled events it had not committed yet. Within one member events
come in order per unit, never twice. A handler that writes through a store transaction and
commits its offset in that same transaction (``tx.commit_offset``) gets exactly-once effects
for what it keeps in the same database.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from . import validation as check
from .durations import to_seconds
from .errors import ConfigurationError, ConsumerFencedError, SerializationError
from .events import StoredEvent
from .paging import EventPage, last_position, offset_after, paginate

if TYPE_CHECKING:
    from .base import StoreBase
    from .transactions import Transaction

__all__ = ["CommitStrategy", "Selector", "Subscription"]

log = logging.getLogger("pgstreams")

CommitStrategy = Literal["after_batch", "after_each", "periodic", "manual"]
_STRATEGIES = ("after_batch", "after_each", "periodic", "manual")

# The unit of a global-feed subscription (no stream is named "").
FEED_UNIT = ""
# Selector keys of the kinds other than one stream start with a character no caller's stream
# name would start with by accident, so they cannot be mistaken for a stream's.
_KEY_MARK = "\x1f"


@dataclass(frozen=True)
class Selector:
    """What a subscription reads; a plain ``str`` selects one stream."""

    kind: Literal["stream", "streams", "prefix", "all"]
    names: tuple[str, ...] = ()

    @classmethod
    def stream(cls, name: str) -> Selector:
        return cls("stream", (check.check_stream(name),))

    @classmethod
    def streams(cls, names: Iterable[str]) -> Selector:
        listed = tuple(sorted({check.check_stream(n) for n in names}))
        if not listed:
            raise ConfigurationError("Selector.streams needs at least one stream")
        return cls("streams", listed)

    @classmethod
    def prefix(cls, prefix: str) -> Selector:
        return cls("prefix", (check.check_name(prefix, "prefix"),))

    @classmethod
    def all(cls) -> Selector:
        return cls("all")

    @property
    def key(self) -> str:
        """How members of a group on this selector find each other."""
        if self.kind == "stream":
            return self.names[0]
        return f"{_KEY_MARK}{self.kind}:" + "\x00".join(self.names)


def owner(unit: str, members: list[str]) -> str:
    """The rendezvous owner of ``unit`` among ``members``: the same answer in every process."""
    return max(
        members,
        key=lambda member: (
            hashlib.blake2b(f"{unit}\x00{member}".encode(), digest_size=8).digest(),
            member,
        ),
    )


def _checked_selector(selector: str | Selector) -> Selector:
    if isinstance(selector, Selector):
        return selector
    if isinstance(selector, str):
        return Selector.stream(selector)
    raise SerializationError("selector must be a stream name (str) or a pgstreams.Selector")


class _Unit:
    """A unit this member holds: its fencing generation, where reading goes on, what has
    been yielded, and what is committed."""

    __slots__ = ("committed", "done", "generation", "name", "next", "releasing", "yielded")

    def __init__(self, name: str, generation: int, start: int) -> None:
        self.name = name
        self.generation = generation
        # Progress values: a stream's next offset, or the feed's last position.
        self.next = start  # where reading goes on
        self.yielded = start  # after the last event handed out
        self.done = start  # after the last event whose successor was asked for
        self.committed = start
        self.releasing = False


class Subscription:
    """A member's subscription; see the module's documentation. Use it with ``async with``
    and iterate it (``async for event in sub``)."""

    def __init__(
        self,
        store: StoreBase,
        selector: str | Selector,
        group: str,
        consumer_id: str,
        *,
        batch_size: int = 100,
        commit: CommitStrategy = "after_batch",
        commit_interval: float | timedelta = 5.0,
        from_offset: int | None = None,
        heartbeat_interval: float | timedelta = 10.0,
        session_timeout: float | timedelta = 30.0,
    ) -> None:
        self.selector = _checked_selector(selector)
        self.group = check.check_name(group, "group")
        self.consumer_id = check.check_name(consumer_id, "consumer_id")
        self.batch_size = check.check_int(batch_size, "batch_size", minimum=1, maximum=100_000)
        if commit not in _STRATEGIES:
            raise ConfigurationError(f"commit must be one of {', '.join(_STRATEGIES)}")
        self.commit_strategy: CommitStrategy = commit
        self.commit_interval = _seconds(commit_interval, "commit_interval")
        self.from_offset = (
            None
            if from_offset is None
            else check.check_int(from_offset, "from_offset", minimum=0 if self._by_offset else -1)
        )
        self.heartbeat_interval = _seconds(heartbeat_interval, "heartbeat_interval")
        self.session_timeout = _seconds(session_timeout, "session_timeout")
        if self.session_timeout <= self.heartbeat_interval:
            raise ConfigurationError(
                "session_timeout must be longer than heartbeat_interval (a member would be "
                "evicted between its own heartbeats)"
            )
        self._store = store
        self._units: dict[str, _Unit] = {}
        self._rebalanced = asyncio.Event()
        self._in_hand: str | None = None  # the unit of the event the caller handles now
        self._release_wanted = False  # some unit waits to be given up
        self._committing: asyncio.Future[None] | None = None  # an after-batch commit
        self._heartbeats: asyncio.Task[None] | None = None
        self._last_commit = time.monotonic()
        self._entered = False
        self._left = False

    @property
    def _by_offset(self) -> bool:
        return self.selector.kind != "all"

    @property
    def units(self) -> list[str]:
        """The units this member holds now (stream names; ``""`` for the global feed)."""
        return sorted(name for name, unit in self._units.items() if not unit.releasing)

    # ------------------------------------------------------------------ the block

    async def __aenter__(self) -> Self:
        if self._entered:
            raise ConfigurationError("a subscription can be entered only once")
        self._entered = True
        self._store._check_open()
        await self._heartbeat()
        self._heartbeats = asyncio.create_task(self._keep_heartbeating())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Left normally (the loop ended or broke out): the last event handed out was handled.
        # Left by an exception: maybe while handling it, so only what came before counts.
        await asyncio.shield(self._leave(commit_handed_out=exc is None))

    async def _leave(self, *, commit_handed_out: bool) -> None:
        if self._left:
            return
        self._left = True
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        try:
            if self.commit_strategy != "manual" and not self._store.closed:
                if commit_handed_out:
                    for unit in self._units.values():
                        unit.done = unit.yielded
                await self._commit_done(raise_fenced=False)
        finally:
            if not self._store.closed:
                await self._store._consumer_leave(self.selector.key, self.group, self.consumer_id)
            self._units.clear()

    # ------------------------------------------------------------------ membership

    async def _keep_heartbeating(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next heartbeat tries again
                log.warning(
                    "pgstreams consumer %s of group %r: heartbeat failed: %s",
                    self.consumer_id,
                    self.group,
                    error,
                )

    async def _heartbeat(self) -> None:
        """Registers (again), learns the live members, gives up what it no longer owns (at
        the next step between events) and takes or renews what it owns."""
        store = self._store
        members = await store._consumer_heartbeat(
            self.selector.key, self.group, self.consumer_id, self.session_timeout
        )
        if self.consumer_id not in members:
            members = sorted([*members, self.consumer_id])
        wanted = [u for u in await self._candidate_units() if owner(u, members) == self.consumer_id]
        for name, unit in self._units.items():
            unit.releasing = name not in wanted
            self._release_wanted |= unit.releasing
        # Units being given up are renewed too, until the reader has let them go.
        held = dict(
            await store._consumer_acquire(
                self.group, self.consumer_id, sorted({*wanted, *self._units}), self.session_timeout
            )
        )
        for name, unit in list(self._units.items()):
            if name not in held and not unit.releasing:
                log.warning(
                    "pgstreams consumer %s of group %r lost %r (evicted?); another member "
                    "goes on from the committed offset",
                    self.consumer_id,
                    self.group,
                    name,
                )
                del self._units[name]
        for name, generation in held.items():
            current = self._units.get(name)
            if current is None or current.generation != generation:
                self._units[name] = _Unit(name, generation, await self._start_of(name))
        # What the reader is not in the middle of goes now; the rest at its next step.
        await self._release_pending()
        self._rebalanced.set()

    async def _candidate_units(self) -> list[str]:
        selector = self.selector
        if selector.kind == "all":
            return [FEED_UNIT]
        if selector.kind == "prefix":
            return [info.stream for info in await self._store.list_streams(selector.names[0])]
        return list(selector.names)

    async def _start_of(self, unit: str) -> int:
        """Where a unit just taken starts: the committed offset or position, else
        ``from_offset``, else the beginning."""
        if unit == FEED_UNIT and not self._by_offset:
            committed = await self._store.get_committed_position(self.group)
            default = -1 if self.from_offset is None else self.from_offset
        else:
            committed = await self._store.get_committed_offset(unit, self.group)
            default = 0 if self.from_offset is None else self.from_offset
        return default if committed is None else committed

    async def _release_pending(self) -> None:
        """Gives up the units marked for release, after committing them (per strategy);
        never the unit whose event the caller is handling now."""
        releasing = [
            name for name, unit in self._units.items() if unit.releasing and name != self._in_hand
        ]
        self._release_wanted = any(
            unit.releasing for name, unit in self._units.items() if name not in releasing
        )
        if not releasing:
            return
        if self.commit_strategy != "manual":
            await self._commit_done(raise_fenced=False, only=releasing)
        for name in releasing:
            self._units.pop(name, None)
        await self._store._consumer_release(self.group, self.consumer_id, releasing)

    # ------------------------------------------------------------------ reading

    def __aiter__(self) -> AsyncIterator[StoredEvent]:
        if not self._entered or self._left:
            raise ConfigurationError(
                "iterate a subscription inside `async with store.subscribe(...)`"
            )
        return self._events()

    async def _events(self) -> AsyncIterator[StoredEvent]:
        follower = self._store._feed_follower()
        after_each = self.commit_strategy == "after_each"
        after_batch = self.commit_strategy == "after_batch"
        # Per unit, a reader that pages ahead (the next page is read while this one is
        # handled); kept across rounds, dropped once caught up or when the unit goes.
        readers: dict[str, tuple[_Unit, AsyncGenerator[StoredEvent, None]]] = {}
        try:
            while True:
                seen = follower.generation()
                read_any = False
                for unit in list(self._units.values()):
                    await self._between_steps()
                    if not self._holds(unit):
                        continue
                    held = readers.get(unit.name)
                    if held is None or held[0] is not unit:
                        if held is not None:
                            await held[1].aclose()
                        held = readers[unit.name] = (unit, self._reader(unit))
                    taken = 0
                    async for event in held[1]:
                        if not self._holds(unit):
                            break  # given up or lost meanwhile: the rest is another member's
                        read_any = True
                        taken += 1
                        progress = event.offset + 1 if self._by_offset else event.position
                        unit.next = unit.yielded = progress
                        self._in_hand = unit.name
                        try:
                            yield event
                        finally:  # resumed, or closed by a `break` out of the caller's loop
                            self._in_hand = None
                        unit.done = progress  # the next is asked for: this one is handled
                        if after_each:
                            await self._commit_done(raise_fenced=False)
                        if self._release_wanted or self._periodic_due():
                            await self._between_steps()
                        if taken == self.batch_size:
                            break  # the next unit's turn
                    else:
                        del readers[unit.name]  # caught up: a fresh reader next round
                        await held[1].aclose()
                    if not self._holds(unit) and unit.name in readers:
                        await readers.pop(unit.name)[1].aclose()
                    if after_batch and taken:
                        await self._commit_behind()
                if not read_any:
                    await self._idle(follower, seen)
        finally:
            for _, reader in readers.values():
                await reader.aclose()

    async def _commit_behind(self) -> None:
        """Commits what is handled while the reader goes on (one commit in flight at a time,
        so commits stay in order): the round trip overlaps the next batch's handling."""
        if self._committing is not None:
            await self._committing
        self._committing = asyncio.ensure_future(self._commit_done(raise_fenced=False))

    def _holds(self, unit: _Unit) -> bool:
        return not unit.releasing and self._units.get(unit.name) is unit

    def _reader(self, unit: _Unit) -> AsyncGenerator[StoredEvent, None]:
        """The unit's events from where reading goes on, a batch per round trip."""
        store = self._store

        def fetch(cursor: int, limit: int) -> Awaitable[EventPage]:
            store._check_open()
            if self._by_offset:
                return store._read_stream(unit.name, cursor, limit)
            return store._read_all(cursor, limit)

        advance = offset_after if self._by_offset else last_position
        return paginate(fetch, unit.next, advance, None, self.batch_size)

    def _periodic_due(self) -> bool:
        return (
            self.commit_strategy == "periodic"
            and time.monotonic() - self._last_commit >= self.commit_interval
        )

    async def _between_steps(self) -> None:
        await self._release_pending()
        if self._periodic_due():
            await self._commit_done(raise_fenced=False)

    async def _idle(self, follower: Any, seen: int) -> None:
        """Caught up: waits for an append, a rebalance or the next periodic commit."""
        self._rebalanced.clear()
        waits = [
            asyncio.ensure_future(follower.wait(seen)),
            asyncio.ensure_future(self._rebalanced.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        self._store._check_open()

    # ------------------------------------------------------------------ commits

    async def commit(self) -> None:
        """Commits the progress of every event yielded so far, the current one included.
        Raises ``ConsumerFencedError`` if this member lost a unit it had progress on."""
        for unit in self._units.values():
            unit.done = unit.yielded
        await self._commit_done(raise_fenced=True)

    def commit_in(self, tx: Transaction) -> None:
        """Stages the commit of every event yielded so far (the current one included) in the
        store transaction ``tx``, fenced like ``commit()``: a handler's own writes and how far
        it got then commit together, or not at all (``ConsumerFencedError`` from the
        transaction if this member lost a unit meanwhile)."""
        for unit in self._units.values():
            unit.done = unit.yielded
            if unit.yielded != unit.committed:
                stream = unit.name if self._by_offset else None
                tx._stage_member_commit(
                    stream, self.group, unit.yielded, self.consumer_id, unit.generation
                )

    async def _commit_done(self, *, raise_fenced: bool, only: list[str] | None = None) -> None:
        """Commits each unit's progress up to its last handled event."""
        committing = self._committing
        if committing is not None and committing is not asyncio.current_task():
            self._committing = None
            await committing  # the one in flight first: commits stay in order
        self._last_commit = time.monotonic()
        for name, unit in list(self._units.items()):
            if (only is not None and name not in only) or unit.done == unit.committed:
                continue
            stream = name if self._by_offset else None
            progress = unit.done
            try:
                await self._store._commit_as_member(
                    stream, self.group, progress, self.consumer_id, unit.generation
                )
            except ConsumerFencedError:
                self._units.pop(name, None)
                if raise_fenced:
                    raise
                log.warning(
                    "pgstreams consumer %s of group %r: commit on %r refused (fenced); "
                    "its events since the last commit will be handled again by the unit's holder",
                    self.consumer_id,
                    self.group,
                    name,
                )
                continue
            unit.committed = progress


def _seconds(value: float | timedelta, what: str) -> float:
    seconds = to_seconds(value, what, allow_none=False)
    assert seconds is not None
    return seconds


async def run_consumer(
    subscription: Subscription,
    handler: Callable[[StoredEvent], Awaitable[Any]],
) -> None:
    """Runs ``handler`` on each event of the subscription until cancelled; the subscription's
    strategy commits (``"manual"``: after each handled event)."""
    async with subscription as sub:
        async for event in sub:
            await handler(event)
            if sub.commit_strategy == "manual":
                await sub.commit()
