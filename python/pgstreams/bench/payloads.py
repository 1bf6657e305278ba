"""The events both sides write: realistic ~250-byte JSON bodies from a fixed pool."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from typing import Any, Final

from ..events import Event

EVENT_TYPE: Final = "OrderPlaced"
METADATA: Final[dict[str, Any]] = {"source": "bench", "user": "u-42"}
POOL_SEED: Final = 20240601
"""Seeds the payload pool, so every run (and ``describe_environment``) sees the same bodies."""

_FIRST_NAMES: Final = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken")
_LAST_NAMES: Final = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton")
_CITIES: Final = (
    ("London", "GB"),
    ("Paris", "FR"),
    ("Berlin", "DE"),
    ("Lisbon", "PT"),
    ("Oslo", "NO"),
    ("Madrid", "ES"),
)
_TAGS: Final = ("priority", "gift", "repeat-customer", "wholesale", "express", "fragile", "promo")


def make_payload(index: int, rng: random.Random) -> dict[str, Any]:
    """A realistic ~250-byte event body: ids, names, an amount, a nested address, tags."""
    city, country = rng.choice(_CITIES)
    return {
        "order_id": 10_000_000 + index,
        "customer_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "customer_name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        "amount": round(rng.uniform(1.0, 2000.0), 2),
        "quantity": rng.randint(1, 9),
        "address": {
            "street": f"{rng.randint(1, 999)} Main St",
            "city": city,
            "postcode": str(rng.randint(10_000, 99_999)),
            "country": country,
        },
        "tags": rng.sample(_TAGS, k=rng.randint(1, 3)),
    }


def payload_pool(size: int) -> list[dict[str, Any]]:
    """The first ``size`` payloads of the fixed pool (``POOL_SEED``)."""
    rng = random.Random(POOL_SEED)
    return [make_payload(i, rng) for i in range(size)]


class Payloads:
    """Cycles through a pool of distinct payloads (so the GIN index sees real variety)."""

    def __init__(self, pool: list[dict[str, Any]]) -> None:
        self._pool = pool
        self._next = 0

    def take(self, count: int) -> list[dict[str, Any]]:
        start = self._next
        end = start + count
        if end <= len(self._pool):
            chunk = self._pool[start:end]
        else:
            chunk = [self._pool[(start + i) % len(self._pool)] for i in range(count)]
        self._next = end % len(self._pool)
        return chunk


def make_events(payloads: Iterable[dict[str, Any]], correlation_id: str) -> list[Event]:
    """pgstreams ``Event``s of ``payloads``, with the shared type and metadata."""
    return [
        Event(EVENT_TYPE, p, metadata=METADATA, correlation_id=correlation_id) for p in payloads
    ]
