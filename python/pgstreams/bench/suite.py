"""Running a selection of the workloads: ``run_benchmarks()``, ``run()`` and the command line
(``main()``, behind ``benches/run.py``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

from .._core import __version__
from ..options import PostgresOptions
from .errors import BenchDependencyError
from .payloads import payload_pool
from .results import BenchResult, error_result, print_results, results_to_json
from .runner import Run, drop_schemas
from .settings import DEFAULT_DSN, BenchSettings
from .workloads import BENCHMARKS, WORKLOADS


def selected(only: Iterable[str] | None) -> list[str]:
    """The names to run, in run order: all, or those of ``only`` (``ValueError`` if unknown)."""
    if only is None:
        return list(BENCHMARKS)
    wanted = list(only)
    unknown = [name for name in wanted if name not in WORKLOADS]
    if unknown:
        raise ValueError(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    return [name for name in BENCHMARKS if name in wanted]


async def run_benchmarks(
    dsn: str,
    *,
    quick: bool = False,
    only: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    settings: BenchSettings | None = None,
) -> list[BenchResult]:
    """Runs the benchmarks (all, or ``only`` these names) against ``dsn``.

    A benchmark that fails (including its own correctness checks) gives one row with
    ``error`` set; the others still run. Every schema created is dropped before returning.
    """
    names = selected(only)
    bench_run = Run(dsn, settings or BenchSettings.for_mode(quick), progress)
    results: list[BenchResult] = []
    try:
        for name in names:
            try:
                results += await asyncio.wait_for(
                    WORKLOADS[name].run(bench_run), bench_run.settings.benchmark_timeout
                )
            except Exception as error:
                results.append(error_result(name, error))
                bench_run.say(f"{name}: FAILED: {error}")
    finally:
        # Each benchmark drops its own schemas; this catches any left by an interruption.
        if bench_run.schemas_created:
            with contextlib.suppress(Exception):
                await drop_schemas(bench_run, bench_run.schemas_created)
    return results


def run(
    dsn: str,
    *,
    quick: bool = False,
    only: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Synchronous :func:`run_benchmarks` (for the CLI)."""
    return asyncio.run(run_benchmarks(dsn, quick=quick, only=only, progress=progress))


def describe_environment(dsn: str, quick: bool) -> dict[str, Any]:
    """What a results file should record about the run (for ``results_to_json(meta=...)``)."""
    sizes = [len(json.dumps(payload, separators=(",", ":"))) for payload in payload_pool(200)]
    return {
        "pgstreams_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "target": PostgresOptions(dsn).describe(),
        "quick": quick,
        "settings": asdict(BenchSettings.for_mode(quick)),
        "payload_bytes_avg": round(sum(sizes) / len(sizes), 1),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python benches/run.py [--dsn DSN] [--quick] [--only NAME ...] [--json OUT]``."""
    parser = argparse.ArgumentParser(
        prog="benches/run.py", description="pgstreams vs the raw driver, side by side"
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("PGSTREAMS_DSN") or os.environ.get("DATABASE_URL") or DEFAULT_DSN,
        help="PostgreSQL to use (default: $PGSTREAMS_DSN, $DATABASE_URL, else the local server)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller and shorter (< 1 minute)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only these: {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(f"... {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    try:
        results = run(args.dsn, quick=args.quick, only=args.only, progress=progress)
    except BenchDependencyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the benchmark schemas were dropped)", file=sys.stderr)
        return 130
    print_results(results)
    print(f"\n({time.perf_counter() - started:.0f} s, {'quick' if args.quick else 'full'} mode)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            out.write(results_to_json(results, meta=describe_environment(args.dsn, args.quick)))
            out.write("\n")
    return 1 if any(r.error for r in results) else 0
