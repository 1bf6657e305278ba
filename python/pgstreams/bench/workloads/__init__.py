"""The workloads: one module per benchmark, found by file.

Adding a workload is adding a module here that declares

- ``NAME``: the benchmark's name, the same as the module's (what ``--only`` takes);
- ``ORDER``: an int, its place in a full run (smallest first; no two alike: today's are
  10, 20, ... 70, so a new one can go between two);
- ``async def run(bench: Run) -> list[BenchResult]``: the benchmark, with the machinery of
  ``..runner`` and the row builders of ``..results``.

Modules whose names start with ``_`` (``_shared``: helpers of several workloads) are not
workloads. Discovery imports every workload module, so they must import asyncpg and orjson
only through the ``Run`` (``bench.asyncpg``): listing the benchmarks stays stdlib-only.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Final

from ..results import BenchResult
from ..runner import Run

WorkloadRun = Callable[[Run], Awaitable[list[BenchResult]]]


@dataclass(frozen=True)
class Workload:
    """One benchmark: its name, its place in a run, and the coroutine that runs it."""

    name: str
    order: int
    run: WorkloadRun


def _workload(module: ModuleType) -> Workload:
    """The ``Workload`` a module declares; a ``TypeError`` naming what is wrong, else."""
    file_name = module.__name__.rpartition(".")[2]
    name = getattr(module, "NAME", None)
    order = getattr(module, "ORDER", None)
    run = getattr(module, "run", None)
    if name != file_name:
        raise TypeError(f"{module.__name__}: NAME must be {file_name!r}, got {name!r}")
    if not isinstance(order, int) or isinstance(order, bool):
        raise TypeError(f"{module.__name__}: ORDER must be an int, got {order!r}")
    if not inspect.iscoroutinefunction(run):
        raise TypeError(f"{module.__name__}: needs `async def run(bench: Run)`")
    return Workload(name=file_name, order=order, run=run)


def _discover() -> dict[str, Workload]:
    found: list[Workload] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            found.append(_workload(importlib.import_module(f"{__name__}.{info.name}")))
    found.sort(key=lambda workload: workload.order)
    for first, second in itertools.pairwise(found):
        if first.order == second.order:
            raise TypeError(f"workloads {first.name} and {second.name} have the same ORDER")
    return {workload.name: workload for workload in found}


WORKLOADS: Final = _discover()
"""Every workload by name, in the order they run."""

BENCHMARKS: Final = tuple(WORKLOADS)
"""The benchmark names, in the order they run (``only=`` takes a subset)."""
