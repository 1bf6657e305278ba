"""The Python half of the Rust-to-asyncio bridge (``rust/src/py/bridge.rs``)."""

from __future__ import annotations

import asyncio
from typing import Any


def resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Runs on the event loop (scheduled with ``call_soon_threadsafe`` by a tokio thread):
    hands the outcome of a Rust call to its awaiting task, unless that task was cancelled."""
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
