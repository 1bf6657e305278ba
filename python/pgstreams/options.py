"""``PostgresOptions``: every setting of a PostgreSQL-backed store, resolved and validated once.

Settings can come from three places, and resolve as **keyword argument > connection string >
default** (DESIGN.md): ``PostgresOptions("…;Maximum Pool Size=20", max_pool_size=100)`` uses 100
because the caller said so in code, while ``PostgresOptions("…;Maximum Pool Size=20")`` uses 20
because the string said so and the default of 100 is only a fallback. Telling "the caller passed
100" from "the caller passed nothing" needs a sentinel default; it prints as the real default, so
``inspect.signature`` and generated docs still show ``max_pool_size=100``.

Validation happens here, before any connection is made, so a bad schema name or timeout is a
:class:`~pgstreams.errors.ConfigurationError` naming the field at construction time rather than a
database error later. Nothing here ever shows the password: ``repr``, ``str`` and
:meth:`PostgresOptions.describe` are safe to log.
"""

from __future__ import annotations

import getpass
import math
import numbers
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, TypedDict, TypeVar, cast

from pgstreams._core import MAX_POOL_SIZE, MAX_READ_BATCH_SIZE
from pgstreams.connstr import ConnectionSettings, parse_connection_string, redact
from pgstreams.durations import MAX_DURATION_SECONDS, MAX_STATEMENT_TIMEOUT_SECONDS, to_seconds
from pgstreams.errors import ConfigurationError

__all__ = ["CoreConfig", "PostgresOptions"]

_T = TypeVar("_T")

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIER_BYTES: Final = 63  # PostgreSQL's NAMEDATALEN - 1

# The keyword arguments of PostgresOptions, in signature order.
_OPTION_NAMES: Final = (
    "schema_name",
    "auto_migrate",
    "read_batch_size",
    "command_timeout",
    "max_pool_size",
    "min_pool_size",
    "connect_timeout",
    "pool_timeout",
    "listen_notify",
    "event_data_index",
)


class _Default:
    """A keyword default that remembers it was not passed, and prints as the value it stands for."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


def _default(value: _T) -> _T:
    """Wrap a default in :class:`_Default`, typed as the value so signatures stay precise."""
    return cast(_T, _Default(value))


_SCHEMA_NAME_DEFAULT: Final = _default("event_streaming")
_TRUE_DEFAULT: Final = _default(True)
_READ_BATCH_SIZE_DEFAULT: Final = _default(1000)
_COMMAND_TIMEOUT_DEFAULT: Final[float | timedelta | None] = _default(30.0)
_MAX_POOL_SIZE_DEFAULT: Final = _default(100)
_MIN_POOL_SIZE_DEFAULT: Final = _default(0)
_NO_LIMIT_DEFAULT: Final[float | timedelta | None] = _default(None)


class CoreConfig(TypedDict):
    """What the Rust core consumes to open its pool (every key always present)."""

    host: str
    port: int
    database: str
    user: str
    password: str | None
    ssl_mode: str
    ssl_root_cert: str | None
    application_name: str
    connect_timeout: float | None
    command_timeout: float | None
    max_pool_size: int
    min_pool_size: int
    pool_timeout: float | None
    schema_name: str
    read_batch_size: int
    listen_notify: bool


@dataclass(frozen=True, init=False, repr=False)
class PostgresOptions:
    """Options of a PostgreSQL-backed store; attributes hold the resolved, validated values.

    ``connection_string`` may be in Npgsql, libpq key/value or URI form (see
    :func:`pgstreams.connstr.parse_connection_string`); the parsed result is ``settings``.
    Timeouts are seconds (``float`` or ``timedelta``), ``None`` meaning no limit.
    ``listen_notify`` lets waiting consumers be woken by ``LISTEN/NOTIFY`` instead of polling;
    ``event_data_index`` keeps the GIN index on event data (turn it off for write-heavy streams
    that never query by content: it costs the server about half its ingestion rate).
    """

    connection_string: str
    schema_name: str
    auto_migrate: bool
    read_batch_size: int
    command_timeout: float | None
    max_pool_size: int
    min_pool_size: int
    connect_timeout: float | None
    pool_timeout: float | None
    listen_notify: bool
    event_data_index: bool
    settings: ConnectionSettings = field(compare=False)
    # Names of the keyword arguments the caller passed, so with_overrides() can re-resolve
    # against a new connection string without mistaking resolved values for explicit ones.
    _explicit: frozenset[str] = field(compare=False)

    def __init__(
        self,
        connection_string: str,
        *,
        schema_name: str = _SCHEMA_NAME_DEFAULT,
        auto_migrate: bool = _TRUE_DEFAULT,
        read_batch_size: int = _READ_BATCH_SIZE_DEFAULT,
        command_timeout: float | timedelta | None = _COMMAND_TIMEOUT_DEFAULT,
        max_pool_size: int = _MAX_POOL_SIZE_DEFAULT,
        min_pool_size: int = _MIN_POOL_SIZE_DEFAULT,
        connect_timeout: float | timedelta | None = _NO_LIMIT_DEFAULT,
        pool_timeout: float | timedelta | None = _NO_LIMIT_DEFAULT,
        listen_notify: bool = _TRUE_DEFAULT,
        event_data_index: bool = _TRUE_DEFAULT,
    ) -> None:
        if not isinstance(connection_string, str):
            raise ConfigurationError(
                f"connection_string must be a str, got {type(connection_string).__name__}"
            )
        settings = parse_connection_string(connection_string)
        given: dict[str, object] = {
            "schema_name": schema_name,
            "auto_migrate": auto_migrate,
            "read_batch_size": read_batch_size,
            "command_timeout": command_timeout,
            "max_pool_size": max_pool_size,
            "min_pool_size": min_pool_size,
            "connect_timeout": connect_timeout,
            "pool_timeout": pool_timeout,
            "listen_notify": listen_notify,
            "event_data_index": event_data_index,
        }
        explicit = frozenset(k for k, v in given.items() if not isinstance(v, _Default))
        # What the connection string may carry; math.inf there means "no limit" (Timeout=0).
        from_string: dict[str, object] = {
            "command_timeout": _no_limit_as_none(settings.command_timeout),
            "max_pool_size": settings.max_pool_size,
            "min_pool_size": settings.min_pool_size,
            "connect_timeout": _no_limit_as_none(settings.connect_timeout),
        }
        mentioned = {
            "command_timeout": settings.command_timeout is not None,
            "max_pool_size": settings.max_pool_size is not None,
            "min_pool_size": settings.min_pool_size is not None,
            "connect_timeout": settings.connect_timeout is not None,
        }

        def resolve(name: str) -> object:
            value = given[name]
            if isinstance(value, _Default):
                return from_string[name] if mentioned.get(name) else value.value
            return value

        resolved_max = _check_count(
            resolve("max_pool_size"), "max_pool_size", minimum=1, maximum=MAX_POOL_SIZE
        )
        resolved_min = _check_count(
            resolve("min_pool_size"), "min_pool_size", minimum=0, maximum=MAX_POOL_SIZE
        )
        if resolved_min > resolved_max:
            raise ConfigurationError(
                f"min_pool_size ({resolved_min}) must not exceed max_pool_size ({resolved_max})"
            )
        values: dict[str, object] = {
            "connection_string": connection_string,
            "schema_name": _check_schema_name(resolve("schema_name")),
            "auto_migrate": _check_bool(resolve("auto_migrate"), "auto_migrate"),
            "read_batch_size": _check_count(
                resolve("read_batch_size"),
                "read_batch_size",
                minimum=1,
                maximum=MAX_READ_BATCH_SIZE,
            ),
            "command_timeout": _check_timeout(
                resolve("command_timeout"), "command_timeout", MAX_STATEMENT_TIMEOUT_SECONDS
            ),
            "max_pool_size": resolved_max,
            "min_pool_size": resolved_min,
            "connect_timeout": _check_timeout(resolve("connect_timeout"), "connect_timeout"),
            "pool_timeout": _check_timeout(resolve("pool_timeout"), "pool_timeout"),
            "listen_notify": _check_bool(resolve("listen_notify"), "listen_notify"),
            "event_data_index": _check_bool(resolve("event_data_index"), "event_data_index"),
            "settings": settings,
            "_explicit": explicit,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def with_overrides(self, **overrides: Any) -> PostgresOptions:
        """Return a copy with ``overrides`` applied; they win over the connection string again.

        Options the caller passed explicitly before stay explicit; the others are re-resolved,
        so ``with_overrides(connection_string=…)`` picks up the new string's pool sizes and
        timeouts. Unknown names raise :class:`~pgstreams.errors.ConfigurationError`.
        """
        _check_option_names(overrides, allow_connection_string=True)
        connection_string = overrides.pop("connection_string", self.connection_string)
        kwargs: dict[str, Any] = {name: getattr(self, name) for name in self._explicit}
        kwargs.update(overrides)
        return PostgresOptions(connection_string, **kwargs)

    @classmethod
    def coerce(
        cls, options_or_connection_string: PostgresOptions | str, **overrides: Any
    ) -> PostgresOptions:
        """Accept what ``connect()`` accepts: options, or a connection string, plus overrides."""
        if isinstance(options_or_connection_string, PostgresOptions):
            if not overrides:
                return options_or_connection_string
            return options_or_connection_string.with_overrides(**overrides)
        if isinstance(options_or_connection_string, str):
            _check_option_names(overrides, allow_connection_string=False)
            return cls(options_or_connection_string, **overrides)
        raise ConfigurationError(
            "expected PostgresOptions or a connection string (str), got "
            f"{type(options_or_connection_string).__name__}"
        )

    def to_core_config(self) -> CoreConfig:
        """The settings the Rust core needs, with libpq's defaults filled in.

        A missing user is the local user name and a missing database is the user name, as in
        libpq. The result contains the password: hand it to the core, never to a log.
        """
        s = self.settings
        user = s.user or _local_user()
        return {
            "host": s.host,
            "port": s.port,
            "database": s.database or user,
            "user": user,
            "password": s.password,
            "ssl_mode": s.ssl_mode,
            "ssl_root_cert": s.ssl_root_cert,
            "application_name": s.application_name or "pgstreams",
            "connect_timeout": self.connect_timeout,
            "command_timeout": self.command_timeout,
            "max_pool_size": self.max_pool_size,
            "min_pool_size": self.min_pool_size,
            "pool_timeout": self.pool_timeout,
            "schema_name": self.schema_name,
            "read_batch_size": self.read_batch_size,
            "listen_notify": self.listen_notify,
        }

    def describe(self) -> str:
        """One safe line for logs and the CLI: ``user@host:port/database schema=name``."""
        s = self.settings
        try:
            user = s.user or _local_user()
        except ConfigurationError:
            user = "?"
        host = f"[{s.host}]" if ":" in s.host and not s.host.startswith("/") else s.host
        database = s.database or user
        return f"{user}@{host}:{s.port}/{database} schema={self.schema_name}"

    def __repr__(self) -> str:
        """All options, with the connection string's password replaced by ``***``."""
        parts = [f"connection_string={redact(self.connection_string)!r}"]
        parts.extend(f"{name}={getattr(self, name)!r}" for name in _OPTION_NAMES)
        return f"PostgresOptions({', '.join(parts)})"


def _no_limit_as_none(seconds: float | None) -> float | None:
    """The connection string's "no limit" (``inf``) is this class's ``None``."""
    return None if seconds is not None and math.isinf(seconds) else seconds


def _check_option_names(overrides: dict[str, Any], *, allow_connection_string: bool) -> None:
    """Refuse unknown option names with ConfigurationError rather than a bare TypeError."""
    allowed = set(_OPTION_NAMES)
    if allow_connection_string:
        allowed.add("connection_string")
    for name in overrides:
        if name not in allowed:
            raise ConfigurationError(
                f"unknown option {name!r}; expected one of {', '.join(sorted(allowed))}"
            )


def _check_schema_name(value: object) -> str:
    """A plain identifier PostgreSQL accepts as a schema name; quoting then makes it inert.

    Only ``[A-Za-z_][A-Za-z0-9_]*`` is accepted, so the name needs no escaping anywhere (SQL,
    logs, the CLI). ``pg_`` is refused in any case: PostgreSQL reserves it, and a DBA typing
    the name unquoted would get it folded to lower case.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"schema_name must be a str, got {type(value).__name__}")
    if not _SCHEMA_NAME.fullmatch(value):
        raise ConfigurationError(
            f"schema_name {value!r} is not a valid schema name: use letters, digits and"
            " underscores, not starting with a digit"
        )
    if len(value.encode()) > _MAX_IDENTIFIER_BYTES:
        raise ConfigurationError(
            f"schema_name {value!r} is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES}-byte"
            " limit for identifiers"
        )
    if value.lower().startswith("pg_"):
        raise ConfigurationError(
            f"schema_name {value!r} starts with 'pg_', which PostgreSQL reserves for system schemas"
        )
    return value


def _check_bool(value: object, name: str) -> bool:
    """Exactly ``True`` or ``False``: ``auto_migrate="false"`` must not mean true."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def _check_count(value: object, name: str, *, minimum: int, maximum: int) -> int:
    """A whole number (not a bool, not a float) from ``minimum`` to ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(f"{name} must be an int, got {value!r}")
    count = int(value)
    if count < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {count}")
    if count > maximum:
        raise ConfigurationError(f"{name} must be at most {maximum}, got {count}")
    return count


def _check_timeout(value: object, name: str, maximum: float = MAX_DURATION_SECONDS) -> float | None:
    """Positive seconds or a timedelta, at most ``maximum``; ``None`` means no limit
    (to_seconds checks the type)."""
    return to_seconds(cast("float | timedelta | None", value), name, maximum=maximum)


def _local_user() -> str:
    """The OS user name, libpq's default user; a ConfigurationError when there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise ConfigurationError(
            "the connection string names no user and the local user name cannot be determined;"
            " add a user to the connection string"
        ) from None
