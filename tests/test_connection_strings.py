"""Connection-string parsing: the three forms users bring, their TLS meanings, and secrecy.

Every string here is a case a user can actually write; the seed guide's examples come first
because DESIGN.md requires each of them to parse.
"""

from __future__ import annotations

import math

import pytest

from pgstreams.connstr import ConnectionSettings, parse_connection_string, redact
from pgstreams.errors import ConfigurationError

PASSWORD = "s3cr3t-Pa55"

# The four strings of the seed guide's "Connection String Examples", verbatim.
SEED_LOCAL = "Host=localhost;Database=events;Username=postgres;Password=postgres;"
SEED_PRODUCTION = (
    "Host=prod-db.example.com;Database=events;Username=app_user;Password=secret;"
    "SSL Mode=Require;Trust Server Certificate=false;"
)
SEED_POOLING = (
    "Host=localhost;Database=events;Username=app;Password=pass;"
    "Minimum Pool Size=5;Maximum Pool Size=100;"
)
SEED_TIMEOUTS = (
    "Host=localhost;Database=events;Username=app;Password=pass;Timeout=30;Command Timeout=60;"
)


def _error(s: str) -> str:
    """Parse ``s``, expecting a ConfigurationError, and return its message."""
    with pytest.raises(ConfigurationError) as info:
        parse_connection_string(s)
    return str(info.value)


# --- the seed guide's examples ----------------------------------------------------------------


def test_seed_local_development() -> None:
    assert parse_connection_string(SEED_LOCAL) == ConnectionSettings(
        host="localhost", port=5432, database="events", user="postgres", password="postgres"
    )


def test_seed_production_with_ssl_verifies_the_server() -> None:
    settings = parse_connection_string(SEED_PRODUCTION)
    assert (settings.host, settings.database, settings.user, settings.password) == (
        "prod-db.example.com",
        "events",
        "app_user",
        "secret",
    )
    assert settings.ssl_mode == "verify-full"


def test_seed_connection_pooling() -> None:
    settings = parse_connection_string(SEED_POOLING)
    assert (settings.min_pool_size, settings.max_pool_size) == (5, 100)
    assert (settings.connect_timeout, settings.command_timeout) == (None, None)


def test_seed_timeout_settings() -> None:
    settings = parse_connection_string(SEED_TIMEOUTS)
    assert (settings.connect_timeout, settings.command_timeout) == (30.0, 60.0)
    assert (settings.min_pool_size, settings.max_pool_size) == (None, None)


def test_seed_guide_step_3_string_without_trailing_semicolon() -> None:
    settings = parse_connection_string("Host=localhost;Database=events;Username=user;Password=pass")
    assert (settings.user, settings.password) == ("user", "pass")


def test_unmentioned_settings_are_defaults_or_none() -> None:
    assert parse_connection_string("Host=localhost") == ConnectionSettings()
    assert ConnectionSettings() == ConnectionSettings(
        host="localhost",
        port=5432,
        database=None,
        user=None,
        password=None,
        ssl_mode="prefer",
        ssl_root_cert=None,
        application_name=None,
        min_pool_size=None,
        max_pool_size=None,
        connect_timeout=None,
        command_timeout=None,
    )


# --- Npgsql form: keys, synonyms, values ------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["Host", "Server", "Data Source", "DataSource", "host", "SERVER", "data  source"]
)
def test_npgsql_host_synonyms(key: str) -> None:
    assert parse_connection_string(f"{key}=db.example.com").host == "db.example.com"


@pytest.mark.parametrize("key", ["Database", "DB", "Initial Catalog", "InitialCatalog", "database"])
def test_npgsql_database_synonyms(key: str) -> None:
    assert parse_connection_string(f"Host=h;{key}=events").database == "events"


@pytest.mark.parametrize(
    "key", ["Username", "User Name", "User ID", "UserId", "User Id", "User", "UID", "USERNAME"]
)
def test_npgsql_user_synonyms(key: str) -> None:
    assert parse_connection_string(f"Host=h;{key}=app").user == "app"


@pytest.mark.parametrize("key", ["Password", "PWD", "PSW", "password", "pwd"])
def test_npgsql_password_synonyms(key: str) -> None:
    assert parse_connection_string(f"Host=h;{key}={PASSWORD}").password == PASSWORD


@pytest.mark.parametrize(
    "key", ["SSL Mode", "SslMode", "sslmode", "SSLMODE", "ssl mode", "Ssl  Mode"]
)
def test_npgsql_keys_are_case_and_space_insensitive(key: str) -> None:
    assert parse_connection_string(f"Host=h;{key}=Disable").ssl_mode == "disable"


@pytest.mark.parametrize(
    ("key", "field", "expected"),
    [
        ("Port", "port", 6432),
        ("Minimum Pool Size", "min_pool_size", 7),
        ("Min Pool Size", "min_pool_size", 7),
        ("MinPoolSize", "min_pool_size", 7),
        ("Maximum Pool Size", "max_pool_size", 7),
        ("Max Pool Size", "max_pool_size", 7),
        ("MaxPoolSize", "max_pool_size", 7),
        ("Timeout", "connect_timeout", 7.0),
        ("Command Timeout", "command_timeout", 7.0),
        ("CommandTimeout", "command_timeout", 7.0),
    ],
)
def test_npgsql_numeric_keys(key: str, field: str, expected: float) -> None:
    value = 6432 if field == "port" else 7
    assert getattr(parse_connection_string(f"Host=h;{key}={value}"), field) == expected


@pytest.mark.parametrize("key", ["Application Name", "ApplicationName", "application name"])
def test_npgsql_application_name(key: str) -> None:
    assert parse_connection_string(f"Host=h;{key}=billing").application_name == "billing"


@pytest.mark.parametrize("key", ["Root Certificate", "RootCertificate", "SSL Root Cert"])
def test_npgsql_root_certificate(key: str) -> None:
    settings = parse_connection_string(f"Host=h;{key}=/etc/ca.pem")
    assert settings.ssl_root_cert == "/etc/ca.pem"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a;b=c"', "a;b=c"),
        ('"say ""hi"""', 'say "hi"'),
        ("'it''s'", "it's"),
        ('" padded "', " padded "),
        ('  "spaced quotes"  ', "spaced quotes"),
        ("unquoted with spaces", "unquoted with spaces"),
        ("  trimmed  ", "trimmed"),
    ],
)
def test_npgsql_quoted_and_unquoted_values(value: str, expected: str) -> None:
    assert parse_connection_string(f"Host=h;Password={value};Port=5433").password == expected


def test_npgsql_spaces_around_keys_and_equals() -> None:
    settings = parse_connection_string("  Host = db ;  Port = 6432 ; Database =  events ")
    assert (settings.host, settings.port, settings.database) == ("db", 6432, "events")


def test_npgsql_empty_segments_and_trailing_semicolons() -> None:
    settings = parse_connection_string(";;Host=db;;;Port=6432;;")
    assert (settings.host, settings.port) == ("db", 6432)


def test_npgsql_last_value_of_a_repeated_key_wins() -> None:
    assert parse_connection_string("Host=a;Server=b;Port=1;Port=2").host == "b"
    assert parse_connection_string("Host=a;Port=1;Port=2").port == 2


@pytest.mark.parametrize(
    ("host_value", "host", "port"),
    [
        ("db:6432", "db", 6432),
        ("db,6432", "db", 6432),
        ("[::1]:6432", "::1", 6432),
        ("[::1]", "::1", 5432),
        ("::1", "::1", 5432),
        ("2001:db8::7", "2001:db8::7", 5432),
        ("10.0.0.5:6000", "10.0.0.5", 6000),
        ("/var/run/postgresql", "/var/run/postgresql", 5432),
    ],
)
def test_npgsql_host_with_embedded_port(host_value: str, host: str, port: int) -> None:
    settings = parse_connection_string(f"Host={host_value}")
    assert (settings.host, settings.port) == (host, port)


def test_npgsql_port_in_host_beats_port_key() -> None:
    assert parse_connection_string("Host=db:6432;Port=5432").port == 6432


def test_unix_socket_directory_is_recognised() -> None:
    assert parse_connection_string("Host=/var/run/postgresql").is_unix_socket
    assert not parse_connection_string("Host=localhost").is_unix_socket


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "yes", "1"])
def test_npgsql_pooling_true_is_accepted(value: str) -> None:
    assert parse_connection_string(f"Host=h;Pooling={value}").host == "h"


@pytest.mark.parametrize("value", ["false", "False", "no", "0"])
def test_npgsql_pooling_false_is_refused(value: str) -> None:
    message = _error(f"Host=h;Pooling={value}")
    assert "Pooling" in message
    assert "always pools" in message


@pytest.mark.parametrize(("value", "expected"), [("0", math.inf), ("2.5", 2.5), ("15", 15.0)])
def test_npgsql_timeout_zero_means_no_limit(value: str, expected: float) -> None:
    settings = parse_connection_string(f"Host=h;Timeout={value};Command Timeout={value}")
    assert settings.connect_timeout == expected
    assert settings.command_timeout == expected


# --- TLS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ssl", "expected"),
    [
        ("", "prefer"),
        ("SSL Mode=Disable", "disable"),
        ("SSL Mode=Allow", "prefer"),
        ("SSL Mode=Prefer", "prefer"),
        ("SSL Mode=Require", "verify-full"),
        ("SSL Mode=require", "verify-full"),
        ("SSL Mode=Require;Trust Server Certificate=false", "verify-full"),
        ("SSL Mode=Require;Root Certificate=/ca.pem", "verify-full"),
        ("SSL Mode=VerifyCA", "verify-ca"),
        ("SSL Mode=VerifyFull", "verify-full"),
        ("SSL Mode=verify-full", "verify-full"),
        ("SSL Mode=Prefer;Trust Server Certificate=true", "prefer"),
        ("Trust Server Certificate=true", "prefer"),
    ],
)
def test_npgsql_ssl_modes(ssl: str, expected: str) -> None:
    assert parse_connection_string(f"Host=h;{ssl}").ssl_mode == expected


@pytest.mark.parametrize("flag", ["true", "True", "TRUE", "yes", "Yes", "1"])
def test_npgsql_trust_server_certificate_makes_require_encrypt_only(flag: str) -> None:
    s = f"Host=h;SSL Mode=Require;Trust Server Certificate={flag}"
    assert parse_connection_string(s).ssl_mode == "require"


@pytest.mark.parametrize("flag", ["false", "no", "0", "FALSE"])
def test_npgsql_trust_server_certificate_false_keeps_verification(flag: str) -> None:
    s = f"Host=h;SSL Mode=Require;TrustServerCertificate={flag}"
    assert parse_connection_string(s).ssl_mode == "verify-full"


@pytest.mark.parametrize(
    ("mode", "expected"), [("VerifyCA", "verify-ca"), ("VerifyFull", "verify-full")]
)
def test_npgsql_explicit_verify_mode_wins_over_trust_server_certificate(
    mode: str, expected: str
) -> None:
    s = f"Host=h;SSL Mode={mode};Trust Server Certificate=true"
    assert parse_connection_string(s).ssl_mode == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("disable", "disable"),
        ("allow", "prefer"),
        ("prefer", "prefer"),
        ("require", "require"),
        ("verify-ca", "verify-ca"),
        ("verify-full", "verify-full"),
    ],
)
def test_libpq_sslmodes_mean_what_they_mean_in_libpq(mode: str, expected: str) -> None:
    assert parse_connection_string(f"host=h sslmode={mode}").ssl_mode == expected
    assert parse_connection_string(f"postgresql://h/db?sslmode={mode}").ssl_mode == expected


@pytest.mark.parametrize(
    "s",
    [
        "host=h sslmode=require sslrootcert=/etc/ca.pem",
        "sslrootcert=/etc/ca.pem sslmode=require host=h",
        "postgresql://h/db?sslmode=require&sslrootcert=/etc/ca.pem",
    ],
)
def test_libpq_require_with_root_cert_behaves_as_verify_ca(s: str) -> None:
    settings = parse_connection_string(s)
    assert settings.ssl_mode == "verify-ca"
    assert settings.ssl_root_cert == "/etc/ca.pem"


@pytest.mark.parametrize(
    ("mode", "expected"), [("prefer", "prefer"), ("verify-full", "verify-full")]
)
def test_libpq_root_cert_does_not_change_other_modes(mode: str, expected: str) -> None:
    s = f"host=h sslmode={mode} sslrootcert=/etc/ca.pem"
    assert parse_connection_string(s).ssl_mode == expected


def test_libpq_sslrootcert_system_means_verify_full_with_system_roots() -> None:
    settings = parse_connection_string("host=h sslrootcert=system")
    assert (settings.ssl_mode, settings.ssl_root_cert) == ("verify-full", None)


def test_libpq_sslrootcert_system_refuses_a_weaker_mode() -> None:
    assert "sslrootcert=system" in _error("host=h sslmode=require sslrootcert=system")


def test_uri_ssl_true_is_libpq_jdbc_compatibility_for_require() -> None:
    assert parse_connection_string("postgresql://h/db?ssl=true").ssl_mode == "require"


# --- libpq key/value form -----------------------------------------------------------------------


def test_libpq_key_value_all_supported_keys() -> None:
    s = (
        "host=db.example.com port=6432 dbname=events user=app password=pw sslmode=verify-full"
        " sslrootcert=/etc/ca.pem connect_timeout=10 application_name=billing"
    )
    assert parse_connection_string(s) == ConnectionSettings(
        host="db.example.com",
        port=6432,
        database="events",
        user="app",
        password="pw",
        ssl_mode="verify-full",
        ssl_root_cert="/etc/ca.pem",
        application_name="billing",
        connect_timeout=10.0,
    )


def test_libpq_spaces_around_equals() -> None:
    settings = parse_connection_string("host = db   port= 6432 dbname =events")
    assert (settings.host, settings.port, settings.database) == ("db", 6432, "events")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (r"'it\'s'", "it's"),
        (r"'back\\slash'", "back\\slash"),
        ("'with spaces'", "with spaces"),
        ("'semi;colon'", "semi;colon"),
        ("''", None),
        (r"esc\ aped", "esc aped"),
    ],
)
def test_libpq_quoted_values(value: str, expected: str | None) -> None:
    assert parse_connection_string(f"host=h password={value} port=5433").password == expected


def test_libpq_connect_timeout_zero_means_no_limit() -> None:
    assert parse_connection_string("host=h connect_timeout=0").connect_timeout == math.inf


def test_libpq_unix_socket_host() -> None:
    settings = parse_connection_string("host=/var/run/postgresql dbname=events")
    assert settings.host == "/var/run/postgresql"
    assert settings.is_unix_socket


def test_libpq_fallback_application_name_is_used_when_no_application_name() -> None:
    assert parse_connection_string("host=h fallback_application_name=a").application_name == "a"
    s = "host=h fallback_application_name=a application_name=b"
    assert parse_connection_string(s).application_name == "b"


def test_lowercase_single_key_is_the_same_in_both_forms() -> None:
    assert parse_connection_string("host=db") == parse_connection_string("Host=db")


# --- URI form -------------------------------------------------------------------------------------


def test_uri_from_design_document() -> None:
    settings = parse_connection_string("postgresql://user:pass@host:5432/db?sslmode=require")
    assert settings == ConnectionSettings(
        host="host", port=5432, database="db", user="user", password="pass", ssl_mode="require"
    )


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "PostgreSQL"])
def test_uri_schemes(scheme: str) -> None:
    assert parse_connection_string(f"{scheme}://app@db/events").database == "events"


def test_uri_percent_decoding() -> None:
    settings = parse_connection_string("postgresql://us%40er:p%40ss%2Fw%3Ard@db/my%20db")
    assert (settings.user, settings.password, settings.database) == ("us@er", "p@ss/w:rd", "my db")


def test_uri_plus_is_not_a_space() -> None:
    assert parse_connection_string("postgresql://u:a+b@db/x").password == "a+b"


@pytest.mark.parametrize(
    ("uri", "host", "port"),
    [
        ("postgresql://[::1]:5433/db", "::1", 5433),
        ("postgresql://[::1]/db", "::1", 5432),
        ("postgresql://u:p@[2001:db8::1]:6000/db", "2001:db8::1", 6000),
        ("postgresql://[fe80::1%25eth0]/db", "fe80::1%eth0", 5432),
        ("postgresql://127.0.0.1:6543", "127.0.0.1", 6543),
        ("postgresql://", "localhost", 5432),
        ("postgresql:///db", "localhost", 5432),
        ("postgresql://%2Fvar%2Frun%2Fpostgresql/db", "/var/run/postgresql", 5432),
        ("postgresql:///db?host=/tmp&port=5433", "/tmp", 5433),
    ],
)
def test_uri_hosts(uri: str, host: str, port: int) -> None:
    settings = parse_connection_string(uri)
    assert (settings.host, settings.port) == (host, port)


def test_uri_query_parameters() -> None:
    s = (
        "postgresql://db/events?user=app&password=pw&connect_timeout=5"
        "&application_name=my%20app&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem"
    )
    settings = parse_connection_string(s)
    assert (settings.user, settings.password, settings.connect_timeout) == ("app", "pw", 5.0)
    assert (settings.application_name, settings.ssl_mode) == ("my app", "verify-full")
    assert settings.ssl_root_cert == "/etc/ca.pem"


def test_uri_without_user_info_or_database() -> None:
    settings = parse_connection_string("postgresql://db.example.com")
    assert (settings.user, settings.password, settings.database) == (None, None, None)


def test_uri_user_without_password() -> None:
    settings = parse_connection_string("postgresql://app@db/events")
    assert (settings.user, settings.password) == ("app", None)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", ["", "   ", "\n\t"])
def test_empty_connection_string_is_refused(s: str) -> None:
    assert "empty" in _error(s)


def test_non_string_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        parse_connection_string(b"Host=h")  # type: ignore[arg-type]


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_connection_string("Host=h;Bogus=1")


@pytest.mark.parametrize(
    ("s", "key"),
    [
        ("Host=h;Bogus Key=1", "Bogus Key"),
        ("Host=h;Frobnicate=yes;Port=5432", "Frobnicate"),
        ("host=h bogus=1", "bogus"),
        ("postgresql://h/db?bogus=1", "bogus"),
        ("postgresql://h/db?sslmode=require&Frob=2", "Frob"),
    ],
)
def test_unknown_key_error_names_the_key(s: str, key: str) -> None:
    message = _error(s)
    assert repr(key) in message
    assert "unknown" in message


@pytest.mark.parametrize(
    ("s", "key"),
    [
        ("host=h sslcert=/c.pem", "sslcert"),
        ("host=h options=-csearch_path=x", "options"),
        ("postgresql://h/db?target_session_attrs=read-write", "target_session_attrs"),
        ("Host=h;Keepalive=10", "Keepalive"),
        ("Host=h;Search Path=x", "Search Path"),
        ("Host=h;Client Certificate=/c.pem", "Client Certificate"),
    ],
)
def test_known_but_unsupported_key_is_refused_not_ignored(s: str, key: str) -> None:
    message = _error(s)
    assert repr(key) in message
    assert "not supported" in message


@pytest.mark.parametrize(
    ("s", "hint"),
    [
        ("Host=h;dbname=events", "Database"),
        ("host=h Database=events", "dbname"),
        ("postgresql://h/db?Maximum%20Pool%20Size=5", "Npgsql"),
    ],
)
def test_other_forms_key_gets_a_hint(s: str, hint: str) -> None:
    assert hint in _error(s)


@pytest.mark.parametrize(
    ("s", "key", "value"),
    [
        ("Host=h;Port=abc", "Port", "abc"),
        ("Host=h;Port=0", "Port", "0"),
        ("Host=h;Port=65536", "Port", "65536"),
        ("Host=h;Port=-1", "Port", "-1"),
        ("Host=h;Port=54.32", "Port", "54.32"),
        ("Host=db:notaport", "Host", "notaport"),
        ("host=h port=x5432", "port", "x5432"),
        ("postgresql://h:99999/db", "port", "99999"),
        ("Host=h;SSL Mode=Sometimes", "SSL Mode", "Sometimes"),
        ("host=h sslmode=sometimes", "sslmode", "sometimes"),
        ("Host=h;Trust Server Certificate=maybe", "Trust Server Certificate", "maybe"),
        ("Host=h;Pooling=perhaps", "Pooling", "perhaps"),
        ("Host=h;Timeout=soon", "Timeout", "soon"),
        ("Host=h;Timeout=-1", "Timeout", "-1"),
        ("Host=h;Command Timeout=-5", "Command Timeout", "-5"),
        ("host=h connect_timeout=-1", "connect_timeout", "-1"),
        ("postgresql://h/db?connect_timeout=later", "connect_timeout", "later"),
        ("Host=h;Minimum Pool Size=-1", "Minimum Pool Size", "-1"),
        ("Host=h;Maximum Pool Size=0", "Maximum Pool Size", "0"),
        ("Host=h;Max Pool Size=ten", "Max Pool Size", "ten"),
        ("Host=h;Min Pool Size=1.5", "Min Pool Size", "1.5"),
    ],
)
def test_bad_value_error_names_key_and_value(s: str, key: str, value: str) -> None:
    message = _error(s)
    assert key in message
    assert value in message


@pytest.mark.parametrize(
    "s",
    [
        "Host=a,b",
        "Host=a,b,5432",
        "host=a,b",
        "host=h port=5432,5433",
        "postgresql://h1,h2/db",
        "postgresql://h1:5432,h2:5432/db",
    ],
)
def test_several_hosts_are_refused(s: str) -> None:
    assert "several" in _error(s)


@pytest.mark.parametrize(
    "s",
    [
        "Host=localhost Port=5432",  # Npgsql pairs need ';'
        "Host=a:1:2:3:4",
        "host=a:1",
        "postgresql://::1/db",
        "postgresql://[::1/db",
    ],
)
def test_malformed_hosts_are_refused(s: str) -> None:
    _error(s)


@pytest.mark.parametrize(
    "s",
    [
        "localhost",
        "Host=h;justaword",
        "host=h dbname",
        "Host=h;=value",
        'Host="unterminated',
        "host='unterminated",
        'Host="h" trailing;Port=1',
        "postgresql://h/db?sslmode",
        "postgresql://u:p%zz@h/db",
        "postgresql://h/db#fragment",
        "mysql://u@h/db",
        "jdbc:postgresql://h/db",
    ],
)
def test_malformed_strings_are_refused(s: str) -> None:
    _error(s)


def test_host_separated_by_space_explains_the_npgsql_separator() -> None:
    assert "';'" in _error("Host=localhost Port=5432")


# --- secrecy ------------------------------------------------------------------------------------


def test_settings_repr_masks_the_password() -> None:
    settings = parse_connection_string(f"Host=h;Password={PASSWORD}")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert "password='***'" in repr(settings)


def test_settings_repr_without_password_says_none() -> None:
    assert "password=None" in repr(parse_connection_string("Host=h"))


def test_settings_still_carry_the_password() -> None:
    assert parse_connection_string(f"Host=h;Password={PASSWORD}").password == PASSWORD


@pytest.mark.parametrize(
    "s",
    [
        f"Host=h;Username=app;Password={PASSWORD};Database=events",
        f"Host=h;PWD={PASSWORD}",
        f"Host=h;psw={PASSWORD};",
        f'Host=h;Password="{PASSWORD};x=y";Port=5432',
        f"Host=h;Password='{PASSWORD}'",
        f"Host=h;Pass word={PASSWORD}",
        f"host=h password={PASSWORD} dbname=events",
        f"host=h password='{PASSWORD} with spaces' dbname=events",
        f"postgresql://app:{PASSWORD}@h:5432/events",
        f"postgresql://app:{PASSWORD}@h/events?sslmode=require",
        f"postgresql://h/events?user=app&password={PASSWORD}&sslmode=require",
        f"postgres://:{PASSWORD}@h",
    ],
)
def test_redact_hides_the_password_in_every_form(s: str) -> None:
    redacted = redact(s)
    assert PASSWORD not in redacted
    assert "***" in redacted


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        ("Host=h;Password=pw;Port=5432", "Host=h;Password=***;Port=5432"),
        ('Host=h;Password="p;w";Port=5432', "Host=h;Password=***;Port=5432"),
        ("host=h password='p w' port=5432", "host=h password=*** port=5432"),
        ("postgresql://app:pw@h:5432/db", "postgresql://app:***@h:5432/db"),
        (
            "postgresql://h/db?password=pw&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
    ],
)
def test_redact_keeps_everything_but_the_password(s: str, expected: str) -> None:
    assert redact(s) == expected


@pytest.mark.parametrize(
    "s",
    [SEED_LOCAL.replace("Password=postgres;", ""), "host=h dbname=x", "postgresql://app@h/db", ""],
)
def test_redact_leaves_strings_without_password_alone(s: str) -> None:
    assert redact(s) == s


def test_redact_hides_the_percent_encoded_password() -> None:
    redacted = redact("postgresql://app:p%40ss%2Fword@h/db")
    assert "p%40ss" not in redacted
    assert "%2Fword" not in redacted


@pytest.mark.parametrize(
    "s",
    [
        f'Host=h;Password="{PASSWORD}',
        f"host=h password='{PASSWORD}",
        f"postgresql://app:{PASSWORD}/x@h/db",
        f"postgresql://app:{PASSWORD}?x@h/db",
        f"Host=h;Password={PASSWORD[:6]};{PASSWORD[6:]}",
        f"host=h password={PASSWORD[:6]} {PASSWORD[6:]}",
    ],
)
def test_redact_hides_the_password_in_malformed_strings(s: str) -> None:
    redacted = redact(s)
    assert PASSWORD[:6] not in redacted
    assert PASSWORD[6:] not in redacted


@pytest.mark.parametrize(
    "s",
    [
        f"Host=h;Password={PASSWORD};Bogus Key=1",
        f"Bogus Key=1;Password={PASSWORD}",
        f"Host=h;Password={PASSWORD};Port=abc",
        f"Host=h;Password={PASSWORD};SSL Mode=Sometimes",
        f"Host=h;Password={PASSWORD};Maximum Pool Size=0",
        f"Host=h;Password={PASSWORD};Pooling=false",
        f"Host=h;Password={PASSWORD};Keepalive=10",
        f'Host=h;Password="{PASSWORD}',
        f'Host=h;Password="{PASSWORD}" x',
        f"Host=h x;Password={PASSWORD}",
        f"host=h password={PASSWORD} bogus=1",
        f"host=h password={PASSWORD} port=abc",
        f"host=h password='{PASSWORD}",
        f"host=x password={PASSWORD};y",  # looks like Npgsql: host value swallows the password
        f"postgresql://app:{PASSWORD}@h/db?bogus=1",
        f"postgresql://app:{PASSWORD}@h:99999/db",
        f"postgresql://app:{PASSWORD}@h1,h2/db",
        f"postgresql://h/db?password={PASSWORD}&sslmode=sometimes",
        f"postgresql://app:{PASSWORD}%zz@h/db",
        f"postgresql://app:{PASSWORD}/x@h/db",
        f"Host={PASSWORD}x y;Password={PASSWORD}",
        f"Host=postgresql://app:{PASSWORD}@h",
    ],
)
def test_error_messages_never_contain_the_password(s: str) -> None:
    assert PASSWORD not in _error(s)


@pytest.mark.parametrize(
    "s",
    [
        f"Host=h;Password={PASSWORD[:6]};{PASSWORD[6:]}",
        f"Host=h;Password={PASSWORD[:6]};{PASSWORD[6:]}=x;",
        f"host=h password={PASSWORD[:6]} {PASSWORD[6:]}",
        f"host=h password={PASSWORD[:6]} {PASSWORD[6:]}=x",
        f"postgresql://h/db?password={PASSWORD[:6]}&{PASSWORD[6:]}",
        f"postgresql://app:{PASSWORD[:6]}/{PASSWORD[6:]}@h/db",
        f"postgresql://app:{PASSWORD[:6]}?{PASSWORD[6:]}@h/db",
    ],
)
def test_error_messages_hide_a_password_split_by_an_unquoted_separator(s: str) -> None:
    message = _error(s)
    assert PASSWORD[:6] not in message
    assert PASSWORD[6:] not in message


@pytest.mark.parametrize("rest", ["xyzzyword=1", "Xyzzy Word=1", "xyzzyword"])
def test_a_password_tail_that_looks_like_a_key_is_not_shown(rest: str) -> None:
    """``Password=pl;xyzzyword=1``: the password held a ';' and lost its quotes; what follows
    is probably the rest of it, however much it looks like a key."""
    message = _error(f"Host=h;Password=pl;{rest};Username=u")
    assert "xyzzy" not in message.lower()
    assert "double quotes" in message
