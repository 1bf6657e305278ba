"""Argument checks shared by both stores, so a bad argument raises the same error with the
same message whichever store the caller uses, before anything is sent or stored."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from ._core import MAX_NAME_BYTES
from .durations import MAX_DURATION_SECONDS, to_seconds
from .errors import ConfigurationError, SerializationError
from .events import Event

MAX_BIGINT = 2**63 - 1
"""The largest PostgreSQL ``bigint`` (offsets, positions, versions, counts)."""


def check_name(value: object, what: str) -> str:
    """A stream, consumer or group name: a non-empty str without NUL or lone surrogates, at
    most ``MAX_NAME_BYTES`` (1000) bytes in UTF-8 (names are index keys; see the Rust core's
    ``config.rs``)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise ConfigurationError(f"{what} must not be empty")
    if "\x00" in value:
        raise ConfigurationError(f"{what} must not contain the NUL character")
    try:
        encoded = value.encode()
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} contains a lone surrogate") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise ConfigurationError(f"{what} is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    return value


def check_stream(value: object) -> str:
    return check_name(value, "stream")


def check_int(value: object, what: str, *, minimum: int, maximum: int = MAX_BIGINT) -> int:
    """An ``int`` (not a bool) from ``minimum`` to ``maximum`` (by default, what a signed
    64-bit PostgreSQL ``bigint`` holds)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{what} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ConfigurationError(f"{what} must be at least {minimum}, got {value}")
    if value > maximum:
        if maximum == MAX_BIGINT:
            raise ConfigurationError(f"{what} must fit in 64 bits, got {value}")
        raise ConfigurationError(f"{what} must be at most {maximum}, got {value}")
    return value


def check_optional_count(value: object, what: str) -> int | None:
    return None if value is None else check_int(value, what, minimum=0)


def check_expected_version(value: object) -> int | None:
    return None if value is None else check_int(value, "expected_version", minimum=-1)


def check_event(event: object) -> Event:
    if not isinstance(event, Event):
        raise SerializationError(f"event must be a pgstreams.Event, got {type(event).__name__}")
    return event


def check_events(events: Iterable[Any]) -> list[Any]:
    """The batch as a list; each item is checked when the batch is serialized
    (``_core.EventBatch``), which names the first bad one (``events[3]``)."""
    if isinstance(events, (str, bytes, Event)) or not isinstance(events, Iterable):
        raise SerializationError(
            f"events must be a list of pgstreams.Event, got {type(events).__name__}"
        )
    return list(events)


def check_timeout(
    value: float | timedelta, what: str, *, maximum: float = MAX_DURATION_SECONDS
) -> float:
    seconds = to_seconds(value, what, allow_none=False, maximum=maximum)
    assert seconds is not None
    return seconds


def check_delay(value: float | timedelta | None, what: str = "delay") -> float:
    return to_seconds(value, what, allow_zero=True) or 0.0


def check_wait(value: float | timedelta | None) -> float | None:
    return to_seconds(value, "wait", allow_zero=True)
