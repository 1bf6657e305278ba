"""The hot paths one call at a time, for ``pytest benches/micro --benchmark-autosave`` and
later ``--benchmark-compare``: the JSON codec, building events, one batch of 1000 rows
decoded, one append. The side-by-side throughput runs stay in ``benches/run.py``."""

from __future__ import annotations

import asyncio
from typing import Any

from pgstreams import Event, _core
from pgstreams.bench.payloads import make_events, payload_pool

PAYLOADS = payload_pool(1000)


def test_json_encode_1000_documents(benchmark: Any) -> None:
    benchmark(lambda: [_core.json_dumps(p) for p in PAYLOADS])


def test_json_decode_1000_documents(benchmark: Any) -> None:
    encoded = [_core.json_dumps(p) for p in PAYLOADS]
    benchmark(lambda: [_core.json_loads(e) for e in encoded])


def test_make_1000_events(benchmark: Any) -> None:
    benchmark(lambda: make_events(PAYLOADS, "micro"))


def test_decode_one_batch_of_1000(
    benchmark: Any, store: Any, loop: asyncio.AbstractEventLoop
) -> None:
    async def one_page() -> Any:
        await store.append_batch("micro-read", make_events(PAYLOADS, "m"))
        return await store._read_stream("micro-read", 0, 1000)

    page = loop.run_until_complete(one_page())
    assert len(page) == 1000
    benchmark(page.events)


def test_one_append(benchmark: Any, store: Any, loop: asyncio.AbstractEventLoop) -> None:
    def append() -> int:
        return loop.run_until_complete(store.append("micro-append", Event("E", {"n": 1})))

    benchmark(append)
