"""Side-by-side benchmarks: pgstreams against the fastest raw-driver way to do the same work.

Each benchmark runs pgstreams and the raw driver (asyncpg with binary COPY and an orjson jsonb
codec) in the same run, each in fresh ``bench_<run>_<tag>`` schemas that are dropped at the
end, even on error. Every measurement has a warm-up, several repetitions (the median is
reported; the two sides alternate so drift hits both) and a time and count bound per
repetition. Each side's work is checked afterwards (rows counted, offsets and ids compared),
so a broken run reports an error instead of a fast number.

``ratio`` is always "higher is better": pgstreams / raw for rates, raw / pgstreams for
latencies. The goals are DESIGN.md's "Speed goals"; they are targets to beat, not assertions.

Used by ``pgstreams bench`` and ``python benches/run.py``; asyncpg and orjson (the ``bench``
extra) are imported only when a benchmark runs.

The package: ``workloads/`` holds one module per benchmark, found by file (adding a workload is
adding a module there; ``workloads/__init__.py`` says what it declares); ``runner`` is the
machinery they share (the run, per-benchmark scopes, timing, checks); ``results`` the rows and
their table and JSON; ``payloads`` the events written; ``settings`` the sizes of a full or quick
run; ``suite`` runs a selection and is the command line.
"""

from __future__ import annotations

from .errors import BenchDependencyError, BenchmarkError
from .payloads import make_payload
from .results import BenchResult, format_table, print_results, results_to_json
from .settings import DEFAULT_DSN, BenchSettings
from .suite import describe_environment, main, run, run_benchmarks
from .workloads import BENCHMARKS

__all__ = [
    "BENCHMARKS",
    "DEFAULT_DSN",
    "BenchDependencyError",
    "BenchResult",
    "BenchSettings",
    "BenchmarkError",
    "describe_environment",
    "format_table",
    "main",
    "make_payload",
    "print_results",
    "results_to_json",
    "run",
    "run_benchmarks",
]
