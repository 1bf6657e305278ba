"""The benchmark runner's counting: a rate is only as true as the units it adds up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from pgstreams.bench.runner import concurrent_rep


async def test_concurrent_rep_counts_every_unit_of_every_worker() -> None:
    done = [0] * 16

    def worker(index: int) -> Callable[[], Awaitable[int]]:
        async def step() -> int:
            await asyncio.sleep(0)  # every worker's step yields, so they interleave
            done[index] += 3
            return 3

        return step

    total, elapsed = await concurrent_rep([worker(i) for i in range(16)], 0.05, 10**9)
    assert total == sum(done)
    assert all(count > 0 for count in done)
    assert elapsed > 0
