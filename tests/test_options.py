"""PostgresOptions: precedence (keyword > connection string > default), validation, secrecy."""

from __future__ import annotations

import dataclasses
import inspect
import math
from datetime import timedelta
from typing import Any

import pytest

from pgstreams.connstr import ConnectionSettings
from pgstreams.durations import to_seconds
from pgstreams.errors import ConfigurationError
from pgstreams.options import PostgresOptions

PASSWORD = "s3cr3t-Pa55"
DSN = f"Host=db.example.com;Database=events;Username=app;Password={PASSWORD}"

CORE_CONFIG_KEYS = {
    "host",
    "port",
    "database",
    "user",
    "password",
    "ssl_mode",
    "ssl_root_cert",
    "application_name",
    "connect_timeout",
    "command_timeout",
    "max_pool_size",
    "min_pool_size",
    "pool_timeout",
    "schema_name",
    "read_batch_size",
    "listen_notify",
}

DEFAULTS: dict[str, Any] = {
    "schema_name": "event_streaming",
    "auto_migrate": True,
    "read_batch_size": 1000,
    "command_timeout": 30.0,
    "max_pool_size": 100,
    "min_pool_size": 0,
    "connect_timeout": None,
    "pool_timeout": None,
    "listen_notify": True,
    "event_data_index": True,
}


def _error(*args: Any, **kwargs: Any) -> str:
    """Build PostgresOptions expecting a ConfigurationError; return its message."""
    with pytest.raises(ConfigurationError) as info:
        PostgresOptions(*args, **kwargs)
    return str(info.value)


# --- defaults and signature ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "default"), DEFAULTS.items())
def test_defaults_apply_when_nothing_says_otherwise(name: str, default: Any) -> None:
    assert getattr(PostgresOptions("Host=localhost"), name) == default


@pytest.mark.parametrize(("name", "default"), DEFAULTS.items())
def test_signature_shows_the_real_defaults(name: str, default: Any) -> None:
    parameter = inspect.signature(PostgresOptions).parameters[name]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert repr(parameter.default) == repr(default)


def test_connection_string_is_the_only_positional_parameter() -> None:
    parameters = list(inspect.signature(PostgresOptions).parameters.values())
    assert parameters[0].name == "connection_string"
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    with pytest.raises(TypeError):
        PostgresOptions("Host=h", "my_schema")  # type: ignore[call-arg]


def test_settings_hold_the_parsed_connection_string() -> None:
    options = PostgresOptions(DSN)
    assert isinstance(options.settings, ConnectionSettings)
    assert (options.settings.host, options.settings.database) == ("db.example.com", "events")
    assert options.connection_string == DSN


def test_options_are_frozen() -> None:
    options = PostgresOptions(DSN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_pool_size = 5  # type: ignore[misc]


def test_equal_options_compare_and_hash_equal() -> None:
    assert PostgresOptions(DSN, max_pool_size=5) == PostgresOptions(DSN, max_pool_size=5)
    assert hash(PostgresOptions(DSN)) == hash(PostgresOptions(DSN))
    assert PostgresOptions(DSN) != PostgresOptions(DSN, max_pool_size=5)


# --- precedence: keyword argument > connection string > default -------------------------------


def test_string_beats_default() -> None:
    assert PostgresOptions("Host=h;Maximum Pool Size=20").max_pool_size == 20


def test_explicit_keyword_beats_string() -> None:
    assert PostgresOptions("Host=h;Maximum Pool Size=20", max_pool_size=50).max_pool_size == 50


def test_explicit_keyword_equal_to_the_default_still_beats_string() -> None:
    options = PostgresOptions("Host=h;Maximum Pool Size=20", max_pool_size=100)
    assert options.max_pool_size == 100


def test_settings_keep_what_the_string_said_even_when_overridden() -> None:
    options = PostgresOptions("Host=h;Maximum Pool Size=20", max_pool_size=100)
    assert options.settings.max_pool_size == 20


@pytest.mark.parametrize(
    ("string_part", "name", "from_string", "explicit"),
    [
        ("Minimum Pool Size=5", "min_pool_size", 5, 0),
        ("Maximum Pool Size=20", "max_pool_size", 20, 100),
        ("Command Timeout=60", "command_timeout", 60.0, 30.0),
        ("Timeout=30", "connect_timeout", 30.0, 7.0),
    ],
)
def test_precedence_for_every_setting_the_string_can_carry(
    string_part: str, name: str, from_string: Any, explicit: Any
) -> None:
    dsn = f"Host=h;{string_part}"
    assert getattr(PostgresOptions(dsn), name) == from_string
    assert getattr(PostgresOptions(dsn, **{name: explicit}), name) == explicit


def test_seed_pooling_string_resolves_min_and_max() -> None:
    options = PostgresOptions(
        "Host=localhost;Database=events;Username=app;Password=pass;"
        "Minimum Pool Size=5;Maximum Pool Size=100;"
    )
    assert (options.min_pool_size, options.max_pool_size) == (5, 100)


def test_seed_timeout_string_resolves_connect_and_command_timeouts() -> None:
    options = PostgresOptions(
        "Host=localhost;Database=events;Username=app;Password=pass;Timeout=30;Command Timeout=60;"
    )
    assert (options.connect_timeout, options.command_timeout) == (30.0, 60.0)


@pytest.mark.parametrize(
    "dsn", ["Host=h;Timeout=0;Command Timeout=0", "postgresql://h/db?connect_timeout=0"]
)
def test_zero_timeout_in_the_string_means_no_limit(dsn: str) -> None:
    options = PostgresOptions(dsn)
    assert options.connect_timeout is None
    if "Command" in dsn:
        assert options.command_timeout is None


def test_explicit_none_beats_the_string_timeout() -> None:
    assert (
        PostgresOptions("Host=h;Command Timeout=60", command_timeout=None).command_timeout is None
    )


def test_explicit_timeout_beats_a_no_limit_string() -> None:
    assert PostgresOptions("Host=h;Command Timeout=0", command_timeout=5).command_timeout == 5.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(timedelta(seconds=90), 90.0), (timedelta(milliseconds=250), 0.25), (2, 2.0), (0.5, 0.5)],
)
def test_timeouts_accept_seconds_and_timedelta(value: Any, seconds: float) -> None:
    options = PostgresOptions(
        "Host=h", command_timeout=value, connect_timeout=value, pool_timeout=value
    )
    assert options.command_timeout == seconds
    assert options.connect_timeout == seconds
    assert options.pool_timeout == seconds
    assert isinstance(options.command_timeout, float)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        'a"b',
        "a b",
        "",
        "x" * 64,
        "pg_x",
        "PG_Catalog",
        "pg_",
        "1abc",
        "drop table x;--",
        "a-b",
        "a.b",
        "events\n",
        "événements",
        "schema'; DROP SCHEMA public; --",
    ],
)
def test_bad_schema_names_are_refused(name: str) -> None:
    assert "schema_name" in _error("Host=h", schema_name=name)


@pytest.mark.parametrize("name", ["event_streaming", "_x", "x" * 63, "Events2", "pgx", "tenant_42"])
def test_good_schema_names_are_accepted(name: str) -> None:
    assert PostgresOptions("Host=h", schema_name=name).schema_name == name


@pytest.mark.parametrize("name", [None, 5, b"events"])
def test_schema_name_must_be_a_string(name: Any) -> None:
    assert "schema_name" in _error("Host=h", schema_name=name)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("read_batch_size", 0),
        ("read_batch_size", -1),
        ("read_batch_size", 1.5),
        ("read_batch_size", True),
        ("read_batch_size", "10"),
        ("read_batch_size", None),
        ("command_timeout", -1),
        ("command_timeout", 0),
        ("command_timeout", float("nan")),
        ("command_timeout", float("inf")),
        ("command_timeout", "30"),
        ("command_timeout", True),
        ("command_timeout", timedelta(0)),
        ("command_timeout", timedelta(seconds=-1)),
        ("connect_timeout", -0.5),
        ("connect_timeout", 0),
        ("connect_timeout", "soon"),
        ("pool_timeout", -1),
        ("pool_timeout", 0.0),
        ("pool_timeout", [1]),
        ("max_pool_size", 0),
        ("max_pool_size", -1),
        ("max_pool_size", 2.5),
        ("max_pool_size", True),
        ("max_pool_size", None),
        ("min_pool_size", -1),
        ("min_pool_size", False),
        ("min_pool_size", "0"),
        ("auto_migrate", 1),
        ("auto_migrate", "false"),
        ("auto_migrate", None),
        ("listen_notify", 0),
        ("listen_notify", "yes"),
        ("event_data_index", 1),
        ("event_data_index", None),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: Any) -> None:
    assert field in _error("Host=h", **{field: value})


def test_min_pool_size_may_not_exceed_max() -> None:
    message = _error("Host=h", min_pool_size=10, max_pool_size=5)
    assert "min_pool_size" in message
    assert "max_pool_size" in message


def test_min_pool_size_from_string_is_checked_against_explicit_max() -> None:
    assert "min_pool_size" in _error("Host=h;Minimum Pool Size=50", max_pool_size=10)


def test_min_pool_size_equal_to_max_is_fine() -> None:
    options = PostgresOptions("Host=h", min_pool_size=5, max_pool_size=5)
    assert (options.min_pool_size, options.max_pool_size) == (5, 5)


@pytest.mark.parametrize("value", [None, 5, b"Host=h", ["Host=h"]])
def test_connection_string_must_be_a_string(value: Any) -> None:
    assert "connection_string" in _error(value)


def test_bad_connection_string_raises_configuration_error() -> None:
    assert "Bogus" in _error("Host=h;Bogus=1")


# --- with_overrides and coerce ------------------------------------------------------------------


def test_with_overrides_keywords_win_again() -> None:
    options = PostgresOptions("Host=h;Maximum Pool Size=20")
    assert options.with_overrides(max_pool_size=100).max_pool_size == 100


def test_with_overrides_leaves_the_original_unchanged() -> None:
    options = PostgresOptions("Host=h")
    changed = options.with_overrides(schema_name="other")
    assert (options.schema_name, changed.schema_name) == ("event_streaming", "other")


def test_with_overrides_keeps_earlier_explicit_values() -> None:
    options = PostgresOptions("Host=h;Maximum Pool Size=20", max_pool_size=50)
    changed = options.with_overrides(read_batch_size=10)
    assert (changed.max_pool_size, changed.read_batch_size) == (50, 10)


def test_with_overrides_new_connection_string_is_re_resolved() -> None:
    options = PostgresOptions("Host=h;Maximum Pool Size=20")
    changed = options.with_overrides(connection_string="Host=other;Maximum Pool Size=30")
    assert (changed.settings.host, changed.max_pool_size) == ("other", 30)


def test_with_overrides_new_connection_string_does_not_beat_explicit_values() -> None:
    options = PostgresOptions("Host=h", max_pool_size=50)
    changed = options.with_overrides(connection_string="Host=other;Maximum Pool Size=30")
    assert changed.max_pool_size == 50


def test_with_overrides_validates() -> None:
    with pytest.raises(ConfigurationError, match="read_batch_size"):
        PostgresOptions("Host=h").with_overrides(read_batch_size=0)


def test_with_overrides_unknown_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="max_pool"):
        PostgresOptions("Host=h").with_overrides(max_pool=5)


def test_coerce_from_a_connection_string() -> None:
    options = PostgresOptions.coerce("Host=h;Maximum Pool Size=20", schema_name="s1")
    assert (options.max_pool_size, options.schema_name) == (20, "s1")


def test_coerce_returns_options_unchanged_without_overrides() -> None:
    options = PostgresOptions(DSN)
    assert PostgresOptions.coerce(options) is options


def test_coerce_applies_overrides_to_options() -> None:
    options = PostgresOptions("Host=h;Maximum Pool Size=20")
    assert PostgresOptions.coerce(options, max_pool_size=100).max_pool_size == 100


@pytest.mark.parametrize("value", [None, 5, b"Host=h", {"host": "h"}])
def test_coerce_refuses_other_types(value: Any) -> None:
    with pytest.raises(ConfigurationError, match=type(value).__name__):
        PostgresOptions.coerce(value)


def test_coerce_unknown_override_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="bogus"):
        PostgresOptions.coerce("Host=h", bogus=1)


# --- to_core_config -----------------------------------------------------------------------------


def test_core_config_has_exactly_the_keys_the_core_consumes() -> None:
    assert set(PostgresOptions(DSN).to_core_config()) == CORE_CONFIG_KEYS


def test_core_config_values() -> None:
    options = PostgresOptions(
        "postgresql://app:pw@db:6432/events?sslmode=require&sslrootcert=/ca.pem"
        "&application_name=billing&connect_timeout=5",
        schema_name="s1",
        read_batch_size=10,
        command_timeout=timedelta(seconds=2),
        max_pool_size=8,
        min_pool_size=2,
        pool_timeout=3,
        listen_notify=False,
    )
    assert options.to_core_config() == {
        "host": "db",
        "port": 6432,
        "database": "events",
        "user": "app",
        "password": "pw",
        "ssl_mode": "verify-ca",
        "ssl_root_cert": "/ca.pem",
        "application_name": "billing",
        "connect_timeout": 5.0,
        "command_timeout": 2.0,
        "max_pool_size": 8,
        "min_pool_size": 2,
        "pool_timeout": 3.0,
        "schema_name": "s1",
        "read_batch_size": 10,
        "listen_notify": False,
    }


def test_core_config_application_name_defaults_to_pgstreams() -> None:
    assert PostgresOptions(DSN).to_core_config()["application_name"] == "pgstreams"


def test_core_config_database_defaults_to_user() -> None:
    config = PostgresOptions("Host=h;Username=app").to_core_config()
    assert (config["user"], config["database"]) == ("app", "app")


def test_core_config_user_defaults_to_the_local_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pgstreams.options.getpass.getuser", lambda: "alice")
    config = PostgresOptions("Host=h").to_core_config()
    assert (config["user"], config["database"]) == ("alice", "alice")


def test_core_config_without_any_user_name_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_user() -> str:
        raise OSError("no user")

    monkeypatch.setattr("pgstreams.options.getpass.getuser", no_user)
    with pytest.raises(ConfigurationError, match="user"):
        PostgresOptions("Host=h").to_core_config()


def test_core_config_carries_the_password_for_the_core() -> None:
    assert PostgresOptions(DSN).to_core_config()["password"] == PASSWORD


def test_core_config_no_limit_timeouts_are_none() -> None:
    config = PostgresOptions("Host=h;Timeout=0", command_timeout=None).to_core_config()
    assert (config["connect_timeout"], config["command_timeout"]) == (None, None)


# --- describe and repr --------------------------------------------------------------------------


def test_describe_format() -> None:
    options = PostgresOptions(f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/postgres")
    assert options.describe() == "postgres@127.0.0.1:5432/postgres schema=event_streaming"


@pytest.mark.parametrize(
    ("dsn", "schema", "expected"),
    [
        ("Host=::1;Username=app;Database=ev", "s1", "app@[::1]:5432/ev schema=s1"),
        ("Host=/tmp;Port=5433;Username=app", "s2", "app@/tmp:5433/app schema=s2"),
        (DSN, "event_streaming", "app@db.example.com:5432/events schema=event_streaming"),
    ],
)
def test_describe_variants(dsn: str, schema: str, expected: str) -> None:
    assert PostgresOptions(dsn, schema_name=schema).describe() == expected


@pytest.mark.parametrize(
    "dsn",
    [
        DSN,
        f"host=h user=app password={PASSWORD}",
        f"host=h user=app password='{PASSWORD}'",
        f"postgresql://app:{PASSWORD}@h/db",
        f"postgresql://h/db?user=app&password={PASSWORD}",
        f'Host=h;PWD="{PASSWORD};with;semicolons"',
    ],
)
def test_password_never_in_repr_str_or_describe(dsn: str) -> None:
    options = PostgresOptions(dsn)
    assert PASSWORD not in repr(options)
    assert PASSWORD not in str(options)
    assert PASSWORD not in options.describe()
    assert PASSWORD not in repr(options.settings)
    assert "***" in repr(options)


def test_repr_shows_the_resolved_options() -> None:
    text = repr(PostgresOptions("Host=h;Maximum Pool Size=20", schema_name="s1"))
    assert "max_pool_size=20" in text
    assert "schema_name='s1'" in text
    assert "Host=h" in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schema_name": "bad name"},
        {"min_pool_size": 500},
        {"read_batch_size": 0},
        {"command_timeout": -1},
        {"bogus": 1},
    ],
)
def test_option_errors_never_contain_the_password(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        PostgresOptions.coerce(DSN, **kwargs)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [f"{DSN};Bogus=1", f"{DSN};Port=x", f"host=h password={PASSWORD} bogus=1"],
)
def test_connection_string_errors_from_options_never_contain_the_password(dsn: str) -> None:
    assert PASSWORD not in _error(dsn)


# --- durations ----------------------------------------------------------------------------------


def test_to_seconds_message_names_the_argument_and_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        to_seconds(-1, "visibility_timeout")
    assert str(info.value) == (
        "visibility_timeout must be a positive number of seconds or a timedelta, got -1"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (0.25, 0.25), (timedelta(minutes=2), 120.0), (None, None)],
)
def test_to_seconds_converts(value: Any, expected: float | None) -> None:
    assert to_seconds(value, "delay") == expected


@pytest.mark.parametrize(
    "value", [True, False, -0.001, math.nan, math.inf, -math.inf, "1", timedelta(seconds=-1), [1]]
)
def test_to_seconds_refuses(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="delay"):
        to_seconds(value, "delay")


@pytest.mark.parametrize("value", [0, 0.0, timedelta(0)])
def test_to_seconds_zero_only_when_allowed(value: Any) -> None:
    assert to_seconds(value, "delay", allow_zero=True) == 0.0
    with pytest.raises(ConfigurationError, match="delay"):
        to_seconds(value, "delay")


def test_to_seconds_none_only_when_allowed() -> None:
    with pytest.raises(ConfigurationError, match="wait"):
        to_seconds(None, "wait", allow_none=False)
