"""One place that turns user-supplied durations into seconds.

Every duration pgstreams accepts (``visibility_timeout``, ``delay``, ``wait``, the timeouts in
``PostgresOptions``, retention ages) may be given as seconds (``int``/``float``) or as a
``datetime.timedelta``. Validating them here, once, means every entry point rejects the same bad
values with the same message, instead of a negative or NaN timeout reaching the database as an
``interval`` and failing (or worse, silently meaning "forever") far from the call that caused it.
"""

from __future__ import annotations

import math
import numbers
from datetime import timedelta

from pgstreams._core import MAX_DURATION_SECONDS, MAX_STATEMENT_TIMEOUT_SECONDS
from pgstreams.errors import ConfigurationError

__all__ = ["MAX_DURATION_SECONDS", "MAX_STATEMENT_TIMEOUT_SECONDS", "to_seconds"]


def to_seconds(
    value: float | timedelta | None,
    name: str,
    *,
    allow_zero: bool = False,
    allow_none: bool = True,
    maximum: float = MAX_DURATION_SECONDS,
) -> float | None:
    """Return ``value`` as a float number of seconds, or ``None`` when it is ``None``.

    ``name`` is the caller-facing name of the argument; it leads the error message so the user
    sees which argument was wrong (``visibility_timeout must be a positive number of seconds or a
    timedelta, got -1``).

    Accepted: ``int``, ``float`` and other real numbers (so ``numpy`` scalars and ``Fraction``
    work), and ``timedelta``. Rejected with :class:`~pgstreams.errors.ConfigurationError`:
    ``bool`` (``True`` is an ``int`` in Python, but ``timeout=True`` is always a mistake), negative
    values, NaN and infinities (an infinite timeout is spelled ``None``, where allowed), zero unless
    ``allow_zero`` (a zero timeout would fail every call; a zero delay is meaningful), ``None``
    unless ``allow_none``, more than ``maximum`` seconds (by default 100 years: what PostgreSQL
    timestamps and the Rust core's clock can always hold; see ``rust/src/config.rs``), and
    every other type.
    """
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(_message(name, value, allow_zero))
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(
            _message(name, value, allow_zero) + f" of type {type(value).__name__}"
        )
    else:
        try:
            seconds = float(value)
        except (OverflowError, ValueError):
            raise ConfigurationError(_message(name, value, allow_zero)) from None
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigurationError(_message(name, value, allow_zero))
    if seconds > maximum:
        raise ConfigurationError(
            f"{name} must be at most {maximum:.0f} seconds ({_spell(maximum)}), got {value!r}"
        )
    return seconds


def _spell(seconds: float) -> str:
    """``3155760000`` -> ``100 years``; ``2147483`` -> ``24.9 days``."""
    days = seconds / 86_400
    return f"{days / 365.25:.3g} years" if days >= 365.25 else f"{days:.3g} days"


def _message(name: str, value: object, allow_zero: bool) -> str:
    """Build the one error text every duration check uses, naming the argument and the value."""
    kind = "non-negative" if allow_zero else "positive"
    return f"{name} must be a {kind} number of seconds or a timedelta, got {value!r}"
