"""Consumer groups' progress, written once on the shared base: per stream, the NEXT offset a
group reads (Kafka's semantics); on the global feed, the LAST position it processed
(positions have gaps, so the next one is not known).

Both are forward only: committing less than what is stored changes nothing and returns
False, so a lagging member cannot move its group back (``reset_offset`` moves it on
purpose). Neither may pass the end: an offset past the stream's next one, or a position above
the head, is a ``ValueError``. ``expected`` makes a commit conditional, for exactly-once
handoffs between processors: omitted, no check; None, nothing may be committed yet; n, the
committed value must be n. A failed expectation raises ``ConcurrencyError`` and changes
nothing; of N committers expecting the same value, exactly one succeeds.
"""

from __future__ import annotations

import enum
from abc import abstractmethod
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Literal

from . import validation as check
from .backend import Backend
from .errors import ConcurrencyError, ConfigurationError

__all__ = ["OMITTED", "CommitOutcome", "ConsumerGroupInfo", "OffsetsApi", "Omitted"]


class Omitted(enum.Enum):
    """The type of ``OMITTED``: "no ``expected`` given", which ``None`` cannot say (``None``
    is a meaningful expectation: nothing committed yet)."""

    OMITTED = "omitted"


OMITTED: Final = Omitted.OMITTED

# What a commit primitive answers: (outcome, the committed value found or written, the bound:
# the stream's next offset or the head position). Outcome: committed, behind, past_end,
# conflict.
CommitOutcome = tuple[Literal["committed", "behind", "past_end", "conflict"], int | None, int]


@dataclass(frozen=True)
class MemberInfo:
    """A registered member of a consumer group (``store.subscribe``): its id, the units it
    holds (stream names; ``""`` for the global feed; none for a member standing by) and its
    last heartbeat."""

    consumer_id: str
    units: tuple[str, ...]
    last_heartbeat: datetime


@dataclass(frozen=True)
class ConsumerGroupInfo:
    """A consumer group's progress. On a stream: ``committed_offset`` (the next offset it
    reads) and ``lag`` (the stream's next offset minus it). On the global feed (``stream``
    None): ``committed_position`` (the last position processed) and ``lag`` (how many events
    come after it)."""

    stream: str | None
    group: str
    committed_offset: int | None
    committed_position: int | None
    lag: int
    updated_at: datetime
    members: tuple[MemberInfo, ...] = ()
    """The group's registered members (subscribers), with what each holds."""


def expectation(expected: int | Omitted | None, what: str) -> tuple[bool, int | None]:
    """(check, expected value) of an ``expected`` argument."""
    if expected is OMITTED:
        return False, None
    if expected is None:
        return True, None
    return True, check.check_int(expected, f"expected {what}", minimum=0)


class OffsetsApi(Backend):
    """Consumer offsets and positions over their primitives."""

    @abstractmethod
    async def _commit_offset(
        self,
        stream: str,
        group: str,
        offset: int,
        check_expected: bool,
        expected: int | None,
        force: bool,
    ) -> CommitOutcome:
        """``commit_offset()`` of migration 001: the rules above, under the group's lock."""

    @abstractmethod
    async def _committed_offset(self, stream: str, group: str) -> int | None: ...

    @abstractmethod
    async def _delete_consumer_group(self, stream: str, group: str) -> bool: ...

    @abstractmethod
    async def _commit_position(
        self, group: str, position: int, check_expected: bool, expected: int | None
    ) -> CommitOutcome:
        """``commit_position()`` of migration 001."""

    @abstractmethod
    async def _committed_position(self, group: str) -> int | None: ...

    @abstractmethod
    async def _delete_position_group(self, group: str) -> bool: ...

    @abstractmethod
    async def _consumer_groups(self, stream: str | None) -> list[ConsumerGroupInfo]:
        """Every group (of ``stream`` only, if given; else of every stream, then the global
        feed's, stream None), by stream then group name."""

    async def commit_offset(
        self,
        stream: str,
        group: str,
        offset: int,
        *,
        expected: int | Omitted | None = OMITTED,
    ) -> bool:
        """Stores ``offset`` as the NEXT offset ``group`` reads from ``stream``. True when
        stored (or already there); False when the group is already further (nothing
        changes). Past the stream's next offset: ``ConfigurationError`` (a ``ValueError``)."""
        check.check_stream(stream)
        check.check_name(group, "group")
        check.check_int(offset, "offset", minimum=0)
        check_expected, value = expectation(expected, "offset")
        self._check_open()
        outcome = await self._commit_offset(stream, group, offset, check_expected, value, False)
        return _judge(outcome, stream, group, offset, "offset", value)

    async def reset_offset(self, stream: str, group: str, offset: int) -> None:
        """Moves ``group`` on ``stream`` to ``offset``, back or forward (a deliberate replay
        or skip); never past the stream's next offset."""
        check.check_stream(stream)
        check.check_name(group, "group")
        check.check_int(offset, "offset", minimum=0)
        self._check_open()
        outcome = await self._commit_offset(stream, group, offset, False, None, True)
        _judge(outcome, stream, group, offset, "offset", None)

    async def get_committed_offset(self, stream: str, group: str) -> int | None:
        """The next offset ``group`` reads from ``stream``; None when it never committed."""
        check.check_stream(stream)
        check.check_name(group, "group")
        self._check_open()
        return await self._committed_offset(stream, group)

    async def delete_consumer_group(self, stream: str | None, group: str) -> bool:
        """Forgets ``group``'s progress on ``stream`` (``stream`` None: on the global feed).
        True if there was any."""
        check.check_name(group, "group")
        if stream is not None:
            check.check_stream(stream)
        self._check_open()
        if stream is None:
            return await self._delete_position_group(group)
        return await self._delete_consumer_group(stream, group)

    async def list_consumer_groups(self, stream: str | None = None) -> list[ConsumerGroupInfo]:
        """Every consumer group with its progress and lag: those of ``stream``, or of every
        stream followed by the global feed's."""
        if stream is not None:
            check.check_stream(stream)
        self._check_open()
        groups = await self._consumer_groups(stream)
        members: dict[str, list[MemberInfo]] = {}
        for group, member, heartbeat, units in await self._consumer_members():
            members.setdefault(group, []).append(MemberInfo(member, tuple(units), heartbeat))
        return [replace(g, members=tuple(members.get(g.group, ()))) for g in groups]

    async def commit_position(
        self, group: str, position: int, *, expected: int | Omitted | None = OMITTED
    ) -> bool:
        """Stores ``position`` as the LAST position of the global feed ``group`` processed.
        True when stored (or already there); False when the group is already further. Above
        ``get_head_position()``: ``ConfigurationError`` (a ``ValueError``)."""
        check.check_name(group, "group")
        check.check_int(position, "position", minimum=0)
        check_expected, value = expectation(expected, "position")
        self._check_open()
        outcome = await self._commit_position(group, position, check_expected, value)
        return _judge(outcome, None, group, position, "position", value)

    async def get_committed_position(self, group: str) -> int | None:
        """The last position of the global feed ``group`` processed; None when never."""
        check.check_name(group, "group")
        self._check_open()
        return await self._committed_position(group)


def _judge(
    outcome: CommitOutcome,
    stream: str | None,
    group: str,
    value: int,
    what: str,
    expected: int | None,
) -> bool:
    """A commit primitive's answer as the public result or error."""
    result, current, bound = outcome
    where = f"stream {stream!r}" if stream is not None else "the global feed"
    if result == "past_end":
        end = f"its next offset is {bound}" if stream is not None else f"the head is {bound}"
        raise ConfigurationError(
            f"consumer group {group!r}: {what} {value} is past the end of {where} ({end})"
        )
    if result == "conflict":
        raise ConcurrencyError(
            stream,
            expected,
            current,
            f"consumer group {group!r} on {where}: expected committed {what} {expected}, "
            f"but it is {current}; nothing was committed",
        )
    return result == "committed"
