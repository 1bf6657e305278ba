"""The benchmarks' two errors, and the lazy import of the ``bench`` extra that raises one."""

from __future__ import annotations

import importlib
from typing import Any


class BenchmarkError(Exception):
    """A benchmark found its own work wrong (a count, an offset, a missing message)."""


class BenchDependencyError(ImportError):
    """asyncpg or orjson (the ``bench`` extra) is not installed."""


def require(module: str) -> Any:
    """Imports ``module`` (asyncpg, orjson) when a run starts, never when the package loads."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise BenchDependencyError(
            f"the benchmarks need {module}, which is not installed: "
            "pip install 'pgstreams[bench]' (asyncpg and orjson)"
        ) from error
