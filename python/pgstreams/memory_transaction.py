"""The in-memory store's transaction (``store.transaction()``; see ``pgstreams.transactions``).

Staged work is judged first and then applied in one synchronous step (no await in between),
so on the event loop it is as atomic as the PostgreSQL flush, and in the same order with the
same rules and errors (``db::transaction`` in the Rust core, migration 005): an event id
repeated across the transaction's appends, then the offset and position commits in key order,
then each append's expected version in call order, then ids already stored. Only after all of
them pass is anything changed. There is no SQL here: ``execute`` and ``fetch`` say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from . import _core
from .backend import Flushed, StagedCommit
from .errors import ConcurrencyError, ConfigurationError, DuplicateEventError

if TYPE_CHECKING:
    from .memory import InMemoryEventStore

__all__ = ["MemoryTransaction"]

_NOTHING_WRITTEN = "nothing in the transaction was written"


def _shown(value: int | None) -> str:
    return "None" if value is None else str(value)


class MemoryTransaction:
    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store
        self._open = True

    async def execute(self, sql: str, params: list[Any]) -> NoReturn:
        raise NotImplementedError(
            "the in-memory store runs no SQL: tx.execute() needs a PostgresEventStore"
        )

    async def fetch(self, sql: str, params: list[Any]) -> NoReturn:
        raise NotImplementedError(
            "the in-memory store runs no SQL: tx.fetch() needs a PostgresEventStore"
        )

    async def rollback(self) -> None:
        self._open = False

    async def commit(
        self,
        appends: list[tuple[str, _core.EventBatch, int | None]],
        enqueues: list[tuple[str, _core.EventBatch, float]],
        commits: list[StagedCommit],
        acknowledgements: list[_core.Receipts],
    ) -> Flushed:
        if not self._open:
            raise ConfigurationError("this transaction is over: nothing more can run in it")
        self._open = False
        store = self._store
        store._check_open()
        rows = [batch.rows() for _, batch, _ in appends]
        self._check_ids(rows)
        commit_order = sorted(
            range(len(commits)),
            key=lambda i: (commits[i][0] is None, commits[i][0] or "", commits[i][1]),
        )
        self._check_commits([commits[i] for i in commit_order])
        first_versions = self._check_versions(appends)

        # Everything holds: apply, in the order PostgreSQL flushes.
        moved = [False] * len(commits)
        for index in commit_order:
            stream, group, value, _, _, _ = commits[index]
            if stream is None:
                outcome = await store._commit_position(group, value, False, None)
            else:
                outcome = await store._commit_offset(stream, group, value, False, None, False)
            moved[index] = outcome[0] == "committed"
        acknowledged = [store._acknowledge_pairs(receipts.pairs()) for receipts in acknowledgements]
        for stream, batch, delay in enqueues:
            await store._enqueue(stream, batch, delay)
        appended = []
        for (stream, _, _), batch_rows, version in zip(appends, rows, first_versions, strict=True):
            result = store._insert_events(stream, batch_rows, store._versions.get(stream, -1))
            assert not batch_rows or result[0] == version + 1
            appended.append((list(result), result.positions))
        # How many each enqueue inserted is not reported by this store (nor needed).
        return appended, [0] * len(enqueues), moved, acknowledged

    def _check_ids(self, rows: list[Any]) -> None:
        seen: set[Any] = set()
        for batch_rows in rows:
            for row in batch_rows:
                if row[0] in seen:
                    raise DuplicateEventError(
                        "an event id appears more than once among this transaction's appends; "
                        f"{_NOTHING_WRITTEN}"
                    )
                seen.add(row[0])

    def _check_commits(self, commits: list[StagedCommit]) -> None:
        """``commit_offset_in_transaction``/``commit_position_in_transaction``, judged
        against what is committed and, for a group committed twice, its earlier commit."""
        store = self._store
        offsets: dict[tuple[str, str], int | None] = {}
        positions: dict[str, int | None] = {}
        for stream, group, value, check_expected, expected, fence in commits:
            if fence is not None:
                store._check_fence(stream, group, *fence)
            if stream is None:
                head = store._last_position
                if value > head:
                    raise ConfigurationError(
                        f"consumer group {group!r}: position {value} is past the end of the "
                        f"global feed (the head is {head}); {_NOTHING_WRITTEN}"
                    )
                held = store._consumer_positions.get(group)
                current = positions.get(group, None if held is None else held[0])
                if check_expected and current != expected:
                    raise ConcurrencyError(
                        None,
                        expected,
                        current,
                        f"consumer group {group!r} on the global feed: expected committed "
                        f"position {_shown(expected)}, but it is {_shown(current)}; "
                        f"{_NOTHING_WRITTEN}",
                    )
                positions[group] = value if current is None else max(current, value)
            else:
                next_offset = store._versions.get(stream, -1) + 1
                if value > next_offset:
                    raise ConfigurationError(
                        f"consumer group {group!r}: offset {value} is past the end of stream "
                        f"{stream!r} (its next offset is {next_offset}); {_NOTHING_WRITTEN}"
                    )
                held_offset = store._consumer_offsets.get((stream, group))
                current = offsets.get(
                    (stream, group), None if held_offset is None else held_offset[0]
                )
                if check_expected and current != expected:
                    raise ConcurrencyError(
                        stream,
                        expected,
                        current,
                        f"consumer group {group!r} on stream {stream!r}: expected committed "
                        f"offset {_shown(expected)}, but it is {_shown(current)}; "
                        f"{_NOTHING_WRITTEN}",
                    )
                offsets[stream, group] = value if current is None else max(current, value)

    def _check_versions(self, appends: list[tuple[str, _core.EventBatch, int | None]]) -> list[int]:
        """Each append's expected version in call order (a stream appended to twice sees its
        first append), then ids already stored; returns each append's version before it."""
        store = self._store
        versions: dict[str, int] = {}
        before = []
        for stream, batch, expected in appends:
            version = versions.get(stream, store._versions.get(stream, -1))
            if expected is not None and expected != version:
                raise ConcurrencyError(
                    stream,
                    expected,
                    version,
                    f"stream {stream!r}: expected version {expected}, but the stream is at "
                    f"version {version}; {_NOTHING_WRITTEN}",
                )
            before.append(version)
            versions[stream] = version + len(batch)
        for _, batch, _ in appends:
            if any(row[0] in store._events_by_id for row in batch.rows()):
                raise DuplicateEventError(
                    "an event id appended in this transaction is already stored; "
                    f"{_NOTHING_WRITTEN}"
                )
        return before
