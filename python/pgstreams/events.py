"""The event a caller writes (``Event``) and the results both stores return (``StoredEvent``,
``QueuedEvent``, ``DeadLetter``): frozen classes of the Rust core, one of each for both
stores.

``Event`` checks its arguments where it is made: ``type`` a non-empty str, ``metadata`` a
mapping (copied), ``id`` a ``uuid.UUID`` or its text (a time-ordered UUIDv7 when not given,
``new_event_id()``), ``correlation_id``/``causation_id`` a str or None, ``version`` an int
from 1 to 2**31-1; types and ids at most 1000 bytes of UTF-8. A wrong type raises
``SerializationError`` (a ``TypeError``), a bad value ``ConfigurationError`` (a
``ValueError``). What its data may hold is checked when it is stored. ``with_metadata(extra)``
returns a copy with ``extra`` merged in.

``AppendResult`` is what an append returns: the offsets, as a ``list`` (so ``== [0, 1]`` and
every use of a list of offsets keep working), with ``.positions``: each event's global
position, in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._core import DeadLetter, Event, QueuedEvent, StoredEvent, new_event_id

__all__ = ["AppendResult", "DeadLetter", "Event", "QueuedEvent", "StoredEvent", "new_event_id"]


class AppendResult(list[int]):
    """The offsets of appended events, with ``positions``: their global positions."""

    def __init__(self, offsets: Iterable[int] = (), positions: Iterable[int] = ()) -> None:
        super().__init__(offsets)
        self.positions: list[int] = list(positions)

    def __repr__(self) -> str:
        return f"AppendResult({list(self)!r}, positions={self.positions!r})"
