"""The Python half of the Rust-to-asyncio bridge (``rust/src/py/bridge.rs``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def resolve(
    future: asyncio.Future[Any],
    ok: bool,
    value: Any,
    undo: Callable[[Any], None] | None = None,
) -> None:
    """Runs on the event loop (scheduled with ``call_soon_threadsafe`` by a tokio thread):
    hands the outcome of a Rust call to its awaiting task. If that task was cancelled
    meanwhile, a result that must not be lost silently goes to ``undo`` instead (a dequeue's
    leases are released). Deciding here, on the loop, means a result is either delivered or
    undone, never both and never neither."""
    if future.cancelled():
        if ok and undo is not None:
            undo(value)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
