"""Progress bars for long work, through tqdm: on stderr, so stdout stays the command's
output, and only on a terminal (tqdm's ``disable=None``), so scripts and logs never see
one."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

# tqdm ships no type information; the ignore stays harmless where types-tqdm is installed.
from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]

__all__ = ["Progress", "elapsed", "progress"]


def on_terminal() -> bool:
    """Would a bar show? (Worth knowing before doing work only a bar needs.)"""
    return sys.stderr.isatty()


class Progress:
    """A bar counting ``unit``s towards ``total`` (None: unknown, then it shows the count
    and the rate without an ETA)."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def advance(self, amount: int) -> None:
        self._bar.update(amount)

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """Writes to stdout inside the block do not tear the bar (it is cleared, then drawn
        again below them), for when stdout and stderr share a terminal."""
        with tqdm.external_write_mode(file=sys.stdout):
            yield


@contextlib.contextmanager
def progress(description: str, total: int | None, unit: str) -> Iterator[Progress]:
    """``with progress("append", total, "ev") as bar: bar.advance(n)``. Done, the bar stays
    as a summary (count, time, rate); failed, it is wiped, so the error printed next stands on
    its own line."""
    bar = tqdm(
        desc=description,
        total=total,
        unit=unit,
        unit_scale=True,
        file=sys.stderr,
        disable=None,
        dynamic_ncols=True,
    )
    try:
        yield Progress(bar)
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


@contextlib.asynccontextmanager
async def elapsed(description: str) -> AsyncIterator[None]:
    """A line that counts the seconds of work that reports no progress of its own (one
    call that runs a while), so a person sees it is still running."""
    bar = tqdm(
        desc=description,
        total=None,
        file=sys.stderr,
        disable=None,
        leave=False,
        bar_format="{desc}: {elapsed}",
    )

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.5)
            bar.refresh()

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
        bar.close()
