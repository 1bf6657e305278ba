"""Sizes and bounds of a run (full or ``--quick``), and the default server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_DSN: Final = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and bounds of one run (``for_mode(quick)``)."""

    quick: bool
    repetitions: int
    rep_seconds: float
    warmup_seconds: float
    max_events_per_rep: int
    read_events: int
    read_repetitions: int
    queue_messages: int
    queue_repetitions: int
    latency_samples: int
    wake_samples: int
    backlog_delayed: int
    payload_pool: int
    benchmark_timeout: float

    @classmethod
    def for_mode(cls, quick: bool) -> BenchSettings:
        if quick:
            return cls(
                quick=True,
                repetitions=3,
                rep_seconds=0.25,
                warmup_seconds=0.1,
                max_events_per_rep=25_000,
                read_events=20_000,
                read_repetitions=3,
                queue_messages=5_000,
                queue_repetitions=3,
                latency_samples=200,
                wake_samples=50,
                backlog_delayed=20_000,
                payload_pool=5_000,
                benchmark_timeout=120.0,
            )
        return cls(
            quick=False,
            repetitions=5,
            rep_seconds=1.0,
            warmup_seconds=0.3,
            max_events_per_rep=100_000,
            read_events=100_000,
            read_repetitions=3,
            queue_messages=20_000,
            queue_repetitions=5,
            latency_samples=1000,
            wake_samples=200,
            backlog_delayed=100_000,
            payload_pool=20_000,
            benchmark_timeout=400.0,
        )
