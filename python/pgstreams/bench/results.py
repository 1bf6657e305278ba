"""Result rows: ``BenchResult``, the builders workloads use, and the table and JSON output.

``ratio`` is always "higher is better": pgstreams / raw for rates, raw / pgstreams for
latencies.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from .errors import BenchmarkError


@dataclass
class BenchResult:
    """One row of the table. ``ratio`` is "higher is better" (see ``ratio_kind``)."""

    benchmark: str
    case: str
    unit: str
    pgstreams: float | None
    raw: float | None
    raw_label: str
    ratio: float | None
    ratio_kind: str
    goal: str = ""
    met: bool | None = None
    repetitions: int = 0
    pgstreams_samples: list[float] = field(default_factory=list)
    raw_samples: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- building


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise BenchmarkError("no samples")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate_result(
    benchmark: str,
    case: str,
    unit: str,
    pgstreams: list[float],
    raw: list[float],
    raw_label: str,
    goal_ratio: float | None,
    **more: Any,
) -> BenchResult:
    """A rate row: medians, pgstreams/raw, goal met when the ratio reaches ``goal_ratio``."""
    ps, rw = median(pgstreams), median(raw)
    ratio = ps / rw if ps is not None and rw else None
    return BenchResult(
        benchmark=benchmark,
        case=case,
        unit=unit,
        pgstreams=ps,
        raw=rw,
        raw_label=raw_label,
        ratio=ratio,
        ratio_kind="pgstreams/raw",
        goal="" if goal_ratio is None else f">= {goal_ratio:.2f}x",
        met=None if goal_ratio is None or ratio is None else ratio >= goal_ratio,
        repetitions=len(pgstreams),
        pgstreams_samples=pgstreams,
        raw_samples=raw,
        **more,
    )


def latency_result(
    benchmark: str,
    case: str,
    pgstreams_ms: float,
    raw_ms: float,
    raw_label: str,
    *,
    goal: str = "",
    met: bool | None = None,
    samples: int = 0,
    **more: Any,
) -> BenchResult:
    """A latency row (ms): ratio raw/pgstreams, so higher is still better."""
    return BenchResult(
        benchmark=benchmark,
        case=case,
        unit="ms",
        pgstreams=pgstreams_ms,
        raw=raw_ms,
        raw_label=raw_label,
        ratio=raw_ms / pgstreams_ms if pgstreams_ms > 0 else None,
        ratio_kind="raw/pgstreams",
        goal=goal,
        met=met,
        repetitions=samples,
        **more,
    )


def latency_rows(
    benchmark: str,
    case: str,
    samples: dict[str, list[float]],
    raw_label: str,
    *,
    goal_p50: float | None = None,
) -> list[BenchResult]:
    """The p50 and p99 rows of ``samples`` (ms, keyed ``pgstreams`` and ``raw``)."""
    ps, rw = samples["pgstreams"], samples["raw"]
    rows = []
    for q in (50, 99):
        ps_ms, raw_ms = percentile(ps, q), percentile(rw, q)
        goal = ""
        met = None
        if q == 50 and goal_p50 is not None:
            goal = f">= {goal_p50:.2f}x (p50 <= {1 / goal_p50:.2f}x raw)"
            met = raw_ms / ps_ms >= goal_p50
        rows.append(
            latency_result(
                benchmark,
                f"{case} p{q}",
                ps_ms,
                raw_ms,
                raw_label,
                goal=goal,
                met=met,
                samples=len(ps),
            )
        )
    return rows


def error_result(benchmark: str, error: BaseException) -> BenchResult:
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return BenchResult(
        benchmark=benchmark,
        case="(failed)",
        unit="",
        pgstreams=None,
        raw=None,
        raw_label="",
        ratio=None,
        ratio_kind="",
        error=message,
    )


# ---------------------------------------------------------------------------------- output


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.3f}"
    if unit == "x":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def format_table(results: Sequence[BenchResult]) -> str:
    """The results as a plain-text table (``ratio``: higher is better)."""
    header = ("benchmark", "case", "pgstreams", "raw", "unit", "ratio", "goal", "met")
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.error is not None:
            rows.append((r.benchmark, f"ERROR {r.error}", "", "", "", "", "", "no"))
            continue
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        rows.append(
            (
                r.benchmark,
                r.case,
                _number(r.pgstreams, r.unit),
                _number(r.raw, r.unit),
                r.unit,
                ratio,
                r.goal or "-",
                met,
            )
        )
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(header)
    ]
    right = {2, 3, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    out.append("")
    out.append(
        "ratio: pgstreams/raw for rates, raw/pgstreams for latencies (ms) - higher is better."
    )
    notes = [f"{r.benchmark} {r.case}: {r.notes}" for r in results if r.notes and not r.error]
    labels = sorted({f"{r.benchmark}: raw = {r.raw_label}" for r in results if r.raw_label})
    out += [f"  {text}" for text in labels + notes]
    return "\n".join(out)


def print_results(results: Sequence[BenchResult], out: TextIO | None = None) -> None:
    """Writes :func:`format_table` of ``results`` to ``out`` (default: stdout); for the CLI."""
    stream = sys.stdout if out is None else out
    stream.write(format_table(results) + "\n")
    stream.flush()


def results_to_json(results: Sequence[BenchResult], *, meta: dict[str, Any] | None = None) -> str:
    return json.dumps(
        {"meta": meta or {}, "results": [r.to_dict() for r in results]}, indent=2, default=str
    )
