"""Per-stream configuration: the original's ``StreamConfiguration`` and its five parts, as
frozen dataclasses that check every field when built, and the retry backoff the queue uses.

What each part does in pgstreams (the same in both stores):

- ``dead_letter_queue``: honoured by the queue. ``max_delivery_attempts``, ``retry_delay`` and
  the exponential backoff apply to nacks without a ``delay`` and to expired leases;
  ``enabled=False`` removes the delivery limit (a message is retried until acknowledged, and
  ``nack(requeue=False)`` deletes it and logs its id at WARNING). Setting or deleting a
  configuration applies at once to the messages already queued.
  ``dead_letter_stream_name`` is stored, not enforced: dead letters stay with their stream.
- ``retention``: ``max_age``, ``max_event_count``, ``respect_consumer_groups`` and
  ``max_dead_letter_age`` are applied by ``apply_retention_policies()`` and override the
  retention policies for this stream. ``max_size_bytes``, ``enable_partitioning`` and
  ``partition_interval`` are stored, not enforced.
- ``performance``: ``batch_size`` is how many events a read of this stream fetches per round
  trip. ``enable_compression``, ``enable_indexing`` and ``indexed_fields`` are stored, not
  enforced (PostgreSQL compresses large values by itself; the event data index is the
  store-wide ``event_data_index`` option).
- ``lifecycle`` and ``access_control``: stored, not enforced. pgstreams creates streams on
  first write, archives and deletes nothing by itself, and checks no reader or writer: use
  PostgreSQL roles and grants for access control.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, cast

from . import validation as check
from ._core import MAX_NAME_BYTES, MAX_READ_BATCH_SIZE
from .durations import MAX_DURATION_SECONDS, to_seconds
from .errors import ConfigurationError

__all__ = [
    "AccessControlSettings",
    "DeadLetterSettings",
    "LifecycleSettings",
    "PerformanceSettings",
    "RetentionSettings",
    "StreamConfiguration",
    "backoff_seconds",
]

DEFAULT_MAX_DELIVERY_ATTEMPTS = 5  # the column default of queue_events.max_delivery_attempts
# What a message's delivery limit is when its stream's dead letters are disabled: the largest
# PostgreSQL integer, which a delivery count (one more per dequeue) never reaches.
UNLIMITED_DELIVERY_ATTEMPTS = 2**31 - 1
MAX_DELIVERY_ATTEMPTS = 1_000_000
MAX_BACKOFF_MULTIPLIER = 1000.0
MAX_DESCRIPTION_BYTES = 10_000
MAX_LIST_ITEMS = 1000  # tags, reader and writer lists, indexed fields
MAX_EVENTS_PER_SECOND = 1_000_000_000


def backoff_seconds(
    retry_delay: float, multiplier: float, max_retry_delay: float | None, delivery_count: int
) -> float:
    """The delay before the next delivery after delivery number ``delivery_count`` failed:
    ``retry_delay * multiplier ** (delivery_count - 1)``, at most ``max_retry_delay`` (else
    100 years). The exponent is clamped first to the one that reaches the cap, so no
    multiplier or count can overflow: with the cap at 100 years and delays of at least a
    microsecond, that exponent is at most ln(3.2e15)/ln(multiplier), about 36/ln(multiplier).
    The twin of ``backoff_seconds()`` in migration 004."""
    cap = MAX_DURATION_SECONDS if max_retry_delay is None else max_retry_delay
    if retry_delay <= 0:
        return 0.0
    if multiplier <= 1 or delivery_count <= 1:
        return min(retry_delay, cap)
    reaching_cap = max(0, math.ceil(math.log(cap / retry_delay) / math.log(multiplier)))
    exponent = min(delivery_count - 1, reaching_cap)
    return min(retry_delay * multiplier**exponent, cap)


# ---------------------------------------------------------------------------- field checks


def duration(value: object, what: str, *, allow_zero: bool = False) -> timedelta | None:
    """An optional duration (seconds or ``timedelta``, at most 100 years) as a ``timedelta``."""
    if value is not None and not isinstance(value, (timedelta, numbers.Real)):
        raise ConfigurationError(
            f"{what} must be a number of seconds or a timedelta, got {type(value).__name__}"
        )
    seconds = to_seconds(cast("float | timedelta | None", value), what, allow_zero=allow_zero)
    return None if seconds is None else timedelta(seconds=seconds)


def flag(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{what} must be a bool, got {type(value).__name__}")
    return value


def optional_count(value: object, what: str, *, maximum: int = check.MAX_BIGINT) -> int | None:
    return None if value is None else check.check_int(value, what, minimum=0, maximum=maximum)


def text(value: object, what: str, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """Free text (may be empty): no NUL (PostgreSQL refuses it), no lone surrogate."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a str, got {type(value).__name__}")
    if "\x00" in value:
        raise ConfigurationError(f"{what} must not contain the NUL character")
    try:
        encoded = value.encode()
    except UnicodeEncodeError:
        raise ConfigurationError(f"{what} contains a lone surrogate") from None
    if len(encoded) > max_bytes:
        raise ConfigurationError(f"{what} is longer than {max_bytes} bytes in UTF-8")
    return value


def names(values: object, what: str) -> tuple[str, ...]:
    """A list of names (readers, writers, fields) as a tuple."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigurationError(f"{what} must be a list of str, got {type(values).__name__}")
    listed = tuple(values)
    if len(listed) > MAX_LIST_ITEMS:
        raise ConfigurationError(f"{what} has more than {MAX_LIST_ITEMS} items")
    for index, item in enumerate(listed):
        check.check_name(item, f"{what}[{index}]")
    return listed


def _set(instance: object, name: str, value: object) -> None:
    """Stores a normalized field on a frozen dataclass (from ``__post_init__`` only)."""
    object.__setattr__(instance, name, value)


def _seconds(value: timedelta | float | None) -> float | None:
    """A normalized duration field (always a ``timedelta`` or None after ``__post_init__``)
    in seconds."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _timedelta(value: Any) -> timedelta | None:
    return None if value is None else timedelta(seconds=float(value))


# ---------------------------------------------------------------------------- the parts


@dataclass(frozen=True)
class RetentionSettings:
    """The stream's retention; when it sets ``max_age`` or ``max_event_count`` (or
    ``max_dead_letter_age``), it replaces the retention policies for this stream.
    ``max_size_bytes``, ``enable_partitioning`` and ``partition_interval`` are stored, not
    enforced."""

    max_age: timedelta | float | None = None
    max_size_bytes: int | None = None
    max_event_count: int | None = None
    enable_partitioning: bool = False
    partition_interval: timedelta | float | None = None
    respect_consumer_groups: bool = False
    max_dead_letter_age: timedelta | float | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        _set(self, "max_age", duration(self.max_age, f"{name}.max_age"))
        optional_count(self.max_size_bytes, f"{name}.max_size_bytes")
        optional_count(self.max_event_count, f"{name}.max_event_count")
        flag(self.enable_partitioning, f"{name}.enable_partitioning")
        _set(
            self,
            "partition_interval",
            duration(self.partition_interval, f"{name}.partition_interval"),
        )
        flag(self.respect_consumer_groups, f"{name}.respect_consumer_groups")
        _set(
            self,
            "max_dead_letter_age",
            duration(self.max_dead_letter_age, f"{name}.max_dead_letter_age"),
        )

    @property
    def limits_events(self) -> bool:
        """Does it say anything about the events (then it overrides the policies)?"""
        return self.max_age is not None or self.max_event_count is not None

    def to_document(self) -> dict[str, Any]:
        return {
            "max_age": _seconds(self.max_age),
            "max_size_bytes": self.max_size_bytes,
            "max_event_count": self.max_event_count,
            "enable_partitioning": self.enable_partitioning,
            "partition_interval": _seconds(self.partition_interval),
            "respect_consumer_groups": self.respect_consumer_groups,
            "max_dead_letter_age": _seconds(self.max_dead_letter_age),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> RetentionSettings:
        return cls(
            max_age=_timedelta(document.get("max_age")),
            max_size_bytes=document.get("max_size_bytes"),
            max_event_count=document.get("max_event_count"),
            enable_partitioning=document.get("enable_partitioning", False),
            partition_interval=_timedelta(document.get("partition_interval")),
            respect_consumer_groups=document.get("respect_consumer_groups", False),
            max_dead_letter_age=_timedelta(document.get("max_dead_letter_age")),
        )


@dataclass(frozen=True)
class DeadLetterSettings:
    """How the stream's queue retries and gives up. Enforced, except
    ``dead_letter_stream_name`` (stored: dead letters stay with their stream)."""

    enabled: bool = True
    dead_letter_stream_name: str | None = None
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS
    retry_delay: timedelta | float | None = None
    enable_exponential_backoff: bool = False
    backoff_multiplier: float = 2.0
    max_retry_delay: timedelta | float | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        flag(self.enabled, f"{name}.enabled")
        if self.dead_letter_stream_name is not None:
            check.check_name(self.dead_letter_stream_name, f"{name}.dead_letter_stream_name")
        check.check_int(
            self.max_delivery_attempts,
            f"{name}.max_delivery_attempts",
            minimum=1,
            maximum=MAX_DELIVERY_ATTEMPTS,
        )
        _set(
            self,
            "retry_delay",
            duration(self.retry_delay, f"{name}.retry_delay", allow_zero=True),
        )
        flag(self.enable_exponential_backoff, f"{name}.enable_exponential_backoff")
        multiplier = self.backoff_multiplier
        if (
            isinstance(multiplier, bool)
            or not isinstance(multiplier, numbers.Real)
            or not 1.0 <= float(multiplier) <= MAX_BACKOFF_MULTIPLIER
        ):
            raise ConfigurationError(
                f"{name}.backoff_multiplier must be a number from 1 to "
                f"{MAX_BACKOFF_MULTIPLIER:g}, got {multiplier!r}"
            )
        _set(self, "backoff_multiplier", float(multiplier))
        _set(self, "max_retry_delay", duration(self.max_retry_delay, f"{name}.max_retry_delay"))

    @property
    def delivery_limit(self) -> int:
        """The delivery limit of the stream's messages (none, in effect, when disabled)."""
        return self.max_delivery_attempts if self.enabled else UNLIMITED_DELIVERY_ATTEMPTS

    def retry_delay_after(self, delivery_count: int) -> float | None:
        """Seconds before redelivery after delivery ``delivery_count`` failed (nacked without
        a delay, or its lease expired); None without a retry delay. ``retry_delay()`` of
        migration 004."""
        if self.retry_delay is None:
            return None
        multiplier = self.backoff_multiplier if self.enable_exponential_backoff else 1.0
        return backoff_seconds(
            _seconds(self.retry_delay) or 0.0,
            multiplier,
            _seconds(self.max_retry_delay),
            delivery_count,
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "dead_letter_stream_name": self.dead_letter_stream_name,
            "max_delivery_attempts": self.max_delivery_attempts,
            "retry_delay": _seconds(self.retry_delay),
            "enable_exponential_backoff": self.enable_exponential_backoff,
            "backoff_multiplier": self.backoff_multiplier,
            "max_retry_delay": _seconds(self.max_retry_delay),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> DeadLetterSettings:
        return cls(
            enabled=document["enabled"],
            dead_letter_stream_name=document.get("dead_letter_stream_name"),
            max_delivery_attempts=document["max_delivery_attempts"],
            retry_delay=_timedelta(document.get("retry_delay")),
            enable_exponential_backoff=document["enable_exponential_backoff"],
            backoff_multiplier=float(document["backoff_multiplier"]),
            max_retry_delay=_timedelta(document.get("max_retry_delay")),
        )


@dataclass(frozen=True)
class LifecycleSettings:
    """Stored, not enforced: pgstreams creates a stream on its first write and archives or
    deletes nothing by itself (use retention, ``delete_stream`` or ``truncate_stream``)."""

    auto_create: bool = True
    auto_archive: bool = False
    archive_after: timedelta | float | None = None
    auto_delete: bool = False
    delete_after: timedelta | float | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        flag(self.auto_create, f"{name}.auto_create")
        flag(self.auto_archive, f"{name}.auto_archive")
        _set(self, "archive_after", duration(self.archive_after, f"{name}.archive_after"))
        flag(self.auto_delete, f"{name}.auto_delete")
        _set(self, "delete_after", duration(self.delete_after, f"{name}.delete_after"))

    def to_document(self) -> dict[str, Any]:
        return {
            "auto_create": self.auto_create,
            "auto_archive": self.auto_archive,
            "archive_after": _seconds(self.archive_after),
            "auto_delete": self.auto_delete,
            "delete_after": _seconds(self.delete_after),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> LifecycleSettings:
        return cls(
            auto_create=document.get("auto_create", True),
            auto_archive=document.get("auto_archive", False),
            archive_after=_timedelta(document.get("archive_after")),
            auto_delete=document.get("auto_delete", False),
            delete_after=_timedelta(document.get("delete_after")),
        )


@dataclass(frozen=True)
class PerformanceSettings:
    """``batch_size``: events per round trip when reading this stream (else the store's
    ``read_batch_size``). The rest is stored, not enforced."""

    batch_size: int | None = None
    enable_compression: bool = False
    enable_indexing: bool = True
    indexed_fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.batch_size is not None:
            check.check_int(
                self.batch_size, f"{name}.batch_size", minimum=1, maximum=MAX_READ_BATCH_SIZE
            )
        flag(self.enable_compression, f"{name}.enable_compression")
        flag(self.enable_indexing, f"{name}.enable_indexing")
        _set(self, "indexed_fields", names(self.indexed_fields, f"{name}.indexed_fields"))

    def to_document(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "enable_compression": self.enable_compression,
            "enable_indexing": self.enable_indexing,
            "indexed_fields": list(self.indexed_fields),
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> PerformanceSettings:
        return cls(
            batch_size=document.get("batch_size"),
            enable_compression=document.get("enable_compression", False),
            enable_indexing=document.get("enable_indexing", True),
            indexed_fields=tuple(document.get("indexed_fields", ())),
        )


@dataclass(frozen=True)
class AccessControlSettings:
    """Stored, not enforced: pgstreams checks no reader, writer or rate. Grant or revoke
    PostgreSQL privileges on the schema to control access."""

    public_read: bool = True
    public_write: bool = True
    allowed_readers: tuple[str, ...] = ()
    denied_readers: tuple[str, ...] = ()
    allowed_writers: tuple[str, ...] = ()
    denied_writers: tuple[str, ...] = ()
    max_consumer_groups: int | None = None
    max_events_per_second: int | None = None

    def __post_init__(self) -> None:
        name = type(self).__name__
        flag(self.public_read, f"{name}.public_read")
        flag(self.public_write, f"{name}.public_write")
        for part in ("allowed_readers", "denied_readers", "allowed_writers", "denied_writers"):
            _set(self, part, names(getattr(self, part), f"{name}.{part}"))
        optional_count(self.max_consumer_groups, f"{name}.max_consumer_groups", maximum=2**31 - 1)
        optional_count(
            self.max_events_per_second,
            f"{name}.max_events_per_second",
            maximum=MAX_EVENTS_PER_SECOND,
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "public_read": self.public_read,
            "public_write": self.public_write,
            "allowed_readers": list(self.allowed_readers),
            "denied_readers": list(self.denied_readers),
            "allowed_writers": list(self.allowed_writers),
            "denied_writers": list(self.denied_writers),
            "max_consumer_groups": self.max_consumer_groups,
            "max_events_per_second": self.max_events_per_second,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> AccessControlSettings:
        return cls(
            public_read=document.get("public_read", True),
            public_write=document.get("public_write", True),
            allowed_readers=tuple(document.get("allowed_readers", ())),
            denied_readers=tuple(document.get("denied_readers", ())),
            allowed_writers=tuple(document.get("allowed_writers", ())),
            denied_writers=tuple(document.get("denied_writers", ())),
            max_consumer_groups=document.get("max_consumer_groups"),
            max_events_per_second=document.get("max_events_per_second"),
        )


@dataclass(frozen=True)
class StreamConfiguration:
    """The configuration of one stream name (its persistent stream and its queue alike).
    See the module's documentation for what each part does and what is only stored."""

    stream_name: str
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    dead_letter_queue: DeadLetterSettings = field(default_factory=DeadLetterSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
    access_control: AccessControlSettings = field(default_factory=AccessControlSettings)

    def __post_init__(self) -> None:
        check.check_name(self.stream_name, "stream_name")
        if self.description is not None:
            text(self.description, "description", max_bytes=MAX_DESCRIPTION_BYTES)
        if not isinstance(self.tags, Mapping):
            raise ConfigurationError(
                f"tags must be a mapping of str to str, got {type(self.tags).__name__}"
            )
        if len(self.tags) > MAX_LIST_ITEMS:
            raise ConfigurationError(f"tags has more than {MAX_LIST_ITEMS} entries")
        for key, value in self.tags.items():
            check.check_name(key, "tags key")
            text(value, f"tags[{key!r}]")
        _set(self, "tags", MappingProxyType(dict(self.tags)))
        for part, kind in (
            ("retention", RetentionSettings),
            ("dead_letter_queue", DeadLetterSettings),
            ("lifecycle", LifecycleSettings),
            ("performance", PerformanceSettings),
            ("access_control", AccessControlSettings),
        ):
            if not isinstance(getattr(self, part), kind):
                raise ConfigurationError(
                    f"{part} must be a pgstreams.{kind.__name__}, "
                    f"got {type(getattr(self, part)).__name__}"
                )

    def to_document(self) -> dict[str, Any]:
        """The JSON document the PostgreSQL store sends (durations in seconds)."""
        return {
            "description": self.description,
            "tags": dict(self.tags),
            "retention": self.retention.to_document(),
            "dead_letter_queue": self.dead_letter_queue.to_document(),
            "lifecycle": self.lifecycle.to_document(),
            "performance": self.performance.to_document(),
            "access_control": self.access_control.to_document(),
        }

    @classmethod
    def from_document(cls, stream_name: str, document: Mapping[str, Any]) -> StreamConfiguration:
        return cls(
            stream_name,
            description=document.get("description"),
            tags=document.get("tags") or {},
            retention=RetentionSettings.from_document(document.get("retention") or {}),
            dead_letter_queue=DeadLetterSettings.from_document(document["dead_letter_queue"]),
            lifecycle=LifecycleSettings.from_document(document.get("lifecycle") or {}),
            performance=PerformanceSettings.from_document(document.get("performance") or {}),
            access_control=AccessControlSettings.from_document(
                document.get("access_control") or {}
            ),
        )
