"""Parsing of the three connection-string forms users bring, into one :class:`ConnectionSettings`.

pgstreams is a port of a .NET package, so its users arrive with Npgsql strings
(``Host=…;Database=…;SSL Mode=Require;``); Python and command-line users arrive with libpq
key/value strings (``host=… dbname=…``) and URIs (``postgresql://user@host/db``). All three are
accepted, detected automatically, and reduced to the same frozen settings object, so the rest of
the library (and the Rust core) never has to know which form a user wrote.

Rules that hold for every form:

* Unknown keys and bad values raise :class:`~pgstreams.errors.ConfigurationError` naming the key
  (and, except for a password, the bad value). Options pgstreams knows but does not support (for
  example libpq's ``sslcert`` or Npgsql's ``Keepalive``) are refused with that reason instead of
  being silently ignored: a user who asked for a client certificate must not get a connection
  without one.
* A password never appears in an error message, a ``repr`` or a log line; :func:`redact` is the
  tool for showing a connection string safely.
* A repeated key takes its last value (as in libpq and ``DbConnectionStringBuilder``).
* A timeout of ``0`` means "no limit" in both libpq and Npgsql; it is kept as ``math.inf`` so that
  "the string said no limit" stays distinguishable from "the string did not say" (``None``).

TLS follows each form's own meaning (see DESIGN.md, "Options and connection strings"):

* libpq forms behave as libpq: ``require`` encrypts without verifying, except that ``require``
  together with ``sslrootcert`` behaves as ``verify-ca`` (libpq's backwards-compatible rule; unlike
  libpq, the default ``~/.postgresql/root.crt`` is not looked for, because parsing does not touch
  the file system). ``sslrootcert=system`` means the system roots and implies ``verify-full``, as
  in libpq 16. ``allow`` is treated as ``prefer``: the Rust driver has no "try plaintext first"
  mode, and ``prefer`` is the closest mode that never refuses a server ``allow`` would accept.
* The Npgsql form behaves as Npgsql: ``SSL Mode=Require`` encrypts *and verifies* the server
  certificate and host name (``verify-full``), unless ``Trust Server Certificate=true``, which
  encrypts without verifying (``require``). With ``VerifyCA``/``VerifyFull`` the explicit verify
  mode wins over ``Trust Server Certificate``: a user who spelled out verification gets it.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote

from pgstreams.errors import ConfigurationError

__all__ = ["SSL_MODES", "ConnectionSettings", "parse_connection_string", "redact"]

SSL_MODES: tuple[str, ...] = ("disable", "prefer", "require", "verify-ca", "verify-full")
"""The TLS modes the Rust core understands, weakest first."""

_MASK = "***"


@dataclass(frozen=True, repr=False)
class ConnectionSettings:
    """Where and how to connect, whichever connection-string form it came from.

    ``host`` starting with ``/`` is a Unix-socket directory. The pool and timeout fields are
    ``None`` when the string did not mention them, so that ``PostgresOptions`` can apply
    "keyword argument > connection string > default"; a timeout of ``math.inf`` means the
    string explicitly asked for no limit (``Timeout=0``, ``connect_timeout=0``).
    """

    host: str = "localhost"
    port: int = 5432
    database: str | None = None
    user: str | None = None
    password: str | None = None
    ssl_mode: str = "prefer"
    ssl_root_cert: str | None = None
    application_name: str | None = None
    min_pool_size: int | None = None
    max_pool_size: int | None = None
    connect_timeout: float | None = None
    command_timeout: float | None = None

    def __post_init__(self) -> None:
        """Refuse impossible values, so a hand-built instance is as trustworthy as a parsed one."""
        if not self.host:
            raise ConfigurationError("host must not be empty")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ConfigurationError(f"port must be an int, got {type(self.port).__name__}")
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"port must be from 1 to 65535, got {self.port}")
        if self.ssl_mode not in SSL_MODES:
            raise ConfigurationError(
                f"ssl_mode must be one of {', '.join(SSL_MODES)}, got {self.ssl_mode!r}"
            )
        for name in ("min_pool_size", "max_pool_size"):
            count = getattr(self, name)
            if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
                raise ConfigurationError(f"{name} must be an int or None, got {count!r}")
            if count is not None and count < 0:
                raise ConfigurationError(f"{name} must not be negative, got {count}")
        for name in ("connect_timeout", "command_timeout"):
            seconds = getattr(self, name)
            if seconds is not None and not (
                isinstance(seconds, int | float)
                and not isinstance(seconds, bool)
                and not math.isnan(seconds)
                and seconds > 0
            ):
                raise ConfigurationError(
                    f"{name} must be a positive number of seconds, math.inf or None,"
                    f" got {seconds!r}"
                )

    @property
    def is_unix_socket(self) -> bool:
        """Whether ``host`` names a Unix-socket directory rather than a network host."""
        return self.host.startswith("/")

    def __repr__(self) -> str:
        """Show every field except the password's value, which becomes ``'***'`` when set."""
        parts = []
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "password" and value is not None:
                value = _MASK
            parts.append(f"{name}={value!r}")
        return f"ConnectionSettings({', '.join(parts)})"


def parse_connection_string(s: str) -> ConnectionSettings:
    """Parse an Npgsql, libpq key/value or URI connection string into :class:`ConnectionSettings`.

    The form is detected: ``postgresql://`` / ``postgres://`` is a URI; a string whose first key
    is a (lower-case) libpq keyword and which has no ``;`` outside quoted values is libpq
    key/value; anything else is read as Npgsql ``Key=Value;`` (whose keys are case- and
    space-insensitive, so ``SSL Mode``, ``sslmode`` and ``SslMode`` are one key).

    Raises :class:`~pgstreams.errors.ConfigurationError` naming the offending key; messages never
    contain the password.
    """
    if not isinstance(s, str):
        raise ConfigurationError(f"connection string must be a str, got {type(s).__name__}")
    try:
        return _parse(s)
    except ConfigurationError as exc:
        # The parsers never put a password into a message; this is the second line of defence,
        # in case a mistyped string made part of a password look like a key or a value.
        raise ConfigurationError(_scrub(str(exc), s)) from None


def redact(s: str) -> str:
    """Return ``s`` with every password replaced by ``***``, whichever form ``s`` is in.

    Meant for error messages, reprs and logs. It never raises, also on malformed strings, and
    errs on the side of hiding too much: text that follows a password and does not parse as a
    key/value pair (a password with an unquoted ``;`` or space, say) is hidden as well.
    """
    if not isinstance(s, str):
        return _MASK
    spans = _merge(_secret_spans(s))
    out: list[str] = []
    last = 0
    for start, end in spans:
        out.append(s[last:start])
        out.append(_MASK)
        last = end
    out.append(s[last:])
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Form detection and the common result


_URI_PREFIX = re.compile(r"\s*(postgres(?:ql)?)://", re.IGNORECASE)
_ANY_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://")

# fmt: off
# libpq keywords pgstreams understands, and the ones it knows but refuses (so the error can say
# "not supported" rather than "unknown", and so a string using them is still detected as libpq).
_LIBPQ_SUPPORTED = frozenset(
    {
    "host", "port", "dbname", "user", "password", "sslmode", "sslrootcert", "connect_timeout",
    "application_name", "fallback_application_name",
    }
)
_LIBPQ_UNSUPPORTED = frozenset(
    {
    "hostaddr", "passfile", "require_auth", "channel_binding", "options", "client_encoding",
    "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
    "tcp_user_timeout", "replication", "gssencmode", "gsslib", "gssdelegation", "krbsrvname",
    "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode",
    "sslcrl", "sslcrldir", "sslsni", "requirepeer", "requiressl", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "service", "target_session_attrs", "load_balance_hosts",
    "min_protocol_version", "max_protocol_version", "scram_client_key", "scram_server_key",
    }
)
# fmt: on
_LIBPQ_KEYWORDS = _LIBPQ_SUPPORTED | _LIBPQ_UNSUPPORTED

_LIBPQ_SSL_MODES = {
    "disable": "disable",
    "allow": "prefer",
    "prefer": "prefer",
    "require": "require",
    "verify-ca": "verify-ca",
    "verify-full": "verify-full",
}

# Npgsql keys after normalisation (lower case, no white space) -> the field they set.
_NPGSQL_KEYS = {
    "host": "host",
    "server": "host",
    "datasource": "host",
    "port": "port",
    "database": "database",
    "db": "database",
    "initialcatalog": "database",
    "username": "user",
    "userid": "user",
    "user": "user",
    "uid": "user",
    "password": "password",
    "pwd": "password",
    "psw": "password",
    "sslmode": "ssl_mode",
    "trustservercertificate": "trust_server_certificate",
    "rootcertificate": "ssl_root_cert",
    "sslrootcert": "ssl_root_cert",
    "timeout": "connect_timeout",
    "commandtimeout": "command_timeout",
    "minimumpoolsize": "min_pool_size",
    "minpoolsize": "min_pool_size",
    "maximumpoolsize": "max_pool_size",
    "maxpoolsize": "max_pool_size",
    "applicationname": "application_name",
    "pooling": "pooling",
}
# fmt: off
_NPGSQL_UNSUPPORTED = frozenset(
    {
    "passfile", "enlist", "searchpath", "clientencoding", "encoding", "timezone",
    "sslnegotiation", "sslcertificate", "sslkey", "sslpassword", "clientcertificate",
    "clientcertificatekey", "checkcertificaterevocation", "integratedsecurity",
    "kerberosservicename", "krbsrvname", "includerealm", "persistsecurityinfo", "logparameters",
    "includeerrordetail", "channelbinding", "gssencryptionmode", "requireauth",
    "connectionidlelifetime", "connectionpruninginterval", "connectionlifetime",
    "loadbalancetimeout", "cancellationtimeout", "targetsessionattributes", "loadbalancehosts",
    "hostrecheckseconds", "keepalive", "tcpkeepalive", "tcpkeepalivetime",
    "tcpkeepaliveinterval", "readbuffersize", "writebuffersize", "socketreceivebuffersize",
    "socketsendbuffersize", "maxautoprepare", "autoprepareminusages", "noresetonclose",
    "options", "arraynullabilitymode", "multiplexing", "writecoalescingbufferthresholdbytes",
    "loadtablecomposites", "servercompatibilitymode", "internalcommandtimeout", "protocol",
    "ssl",
    }
)
# fmt: on
_NPGSQL_PASSWORD_KEYS = frozenset(k for k, field in _NPGSQL_KEYS.items() if field == "password")

_NPGSQL_SSL_MODES = {
    "disable": "disable",
    "allow": "prefer",
    "prefer": "prefer",
    "require": "require",
    "verifyca": "verify-ca",
    "verifyfull": "verify-full",
}

# For "unknown key" hints: each field's name in the other form.
_LIBPQ_NAME_OF_FIELD = {
    "host": "host",
    "port": "port",
    "database": "dbname",
    "user": "user",
    "password": "password",
    "ssl_mode": "sslmode",
    "ssl_root_cert": "sslrootcert",
    "connect_timeout": "connect_timeout",
    "application_name": "application_name",
}
_NPGSQL_NAME_OF_FIELD = {
    "host": "Host",
    "port": "Port",
    "database": "Database",
    "user": "Username",
    "password": "Password",
    "ssl_mode": "SSL Mode",
    "ssl_root_cert": "Root Certificate",
    "connect_timeout": "Timeout",
    "application_name": "Application Name",
}
_FIELD_OF_LIBPQ_NAME = {v: k for k, v in _LIBPQ_NAME_OF_FIELD.items()}

_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


@dataclass
class _Collected:
    """What one parse found, before the form's TLS rules and defaults are applied."""

    host: str | None = None
    port: int | None = None
    host_port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None
    ssl_mode: str | None = None
    trust_server_certificate: bool | None = None
    ssl_root_cert: str | None = None
    application_name: str | None = None
    fallback_application_name: str | None = None
    min_pool_size: int | None = None
    max_pool_size: int | None = None
    connect_timeout: float | None = None
    command_timeout: float | None = None

    def settings(self, *, ssl_mode: str) -> ConnectionSettings:
        """Build the settings, applying defaults for what the string left out."""
        port = self.host_port if self.host_port is not None else self.port
        return ConnectionSettings(
            host=self.host or "localhost",
            port=5432 if port is None else port,
            database=self.database,
            user=self.user,
            password=self.password,
            ssl_mode=ssl_mode,
            ssl_root_cert=self.ssl_root_cert,
            application_name=self.application_name or self.fallback_application_name,
            min_pool_size=self.min_pool_size,
            max_pool_size=self.max_pool_size,
            connect_timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
        )


def _fail(message: str) -> NoReturn:
    """Raise the one error type of this module, with a prefix that says what was being parsed."""
    raise ConfigurationError(f"connection string: {message}")


def _parse(s: str) -> ConnectionSettings:
    """Detect the form of ``s`` and hand it to that form's parser."""
    if not s.strip():
        _fail("the connection string is empty")
    if _URI_PREFIX.match(s):
        return _parse_uri(s)
    if s.lstrip().lower().startswith("jdbc:"):
        _fail("JDBC URLs are not supported; drop the 'jdbc:' prefix to get a postgresql:// URI")
    scheme = _ANY_SCHEME.match(s)
    if scheme:
        _fail(f"unsupported URI scheme {scheme.group(1)!r}; use postgresql:// or postgres://")
    if _looks_like_libpq(s):
        return _parse_libpq(s)
    return _parse_npgsql(s)


def _looks_like_libpq(s: str) -> bool:
    """Tell the libpq form: first key a lower-case libpq keyword, no ``;`` outside quotes."""
    items = _libpq_tokens(s)
    if not items or not isinstance(items[0], _Pair) or items[0].key not in _LIBPQ_KEYWORDS:
        return False
    for item in items:
        # Only the key part of a quoted pair counts: a quoted value may hold a ';'.
        quoted = isinstance(item, _Pair) and item.quoted
        end = item.value_start if isinstance(item, _Pair) and quoted else item.end
        text = s[item.start : end]
        if ";" in text:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Tokenisers. They never raise: they report what they found (including junk and unterminated
# quotes) with positions, so the same code serves strict parsing and best-effort redaction.


@dataclass(frozen=True)
class _Pair:
    """One ``key=value``; ``value`` is unquoted and unescaped, the spans index the raw string."""

    key: str
    value: str
    start: int
    value_start: int
    value_end: int
    end: int
    quoted: bool = False
    unterminated: bool = False
    trailing_text: bool = False


@dataclass(frozen=True)
class _Junk:
    """Text that is not a ``key=value`` pair."""

    start: int
    end: int


_Item = _Pair | _Junk


def _npgsql_tokens(s: str) -> list[_Item]:
    """Split an Npgsql (``DbConnectionStringBuilder``) string into pairs.

    Pairs are separated by ``;``; a value may be enclosed in double or single quotes, a doubled
    quote inside standing for itself; white space around keys and unquoted values is dropped.
    """
    items: list[_Item] = []
    n = len(s)
    i = 0
    while i < n:
        while i < n and (s[i] == ";" or s[i].isspace()):
            i += 1
        if i >= n:
            break
        start = i
        eq = s.find("=", i)
        semi = s.find(";", i)
        if eq == -1 or (semi != -1 and semi < eq):
            end = n if semi == -1 else semi
            items.append(_Junk(start, end))
            i = end
            continue
        key = s[i:eq].strip()
        j = eq + 1
        while j < n and s[j] != ";" and s[j].isspace():
            j += 1
        if j < n and s[j] in "\"'":
            quote = s[j]
            k = j + 1
            chars: list[str] = []
            closed = False
            while k < n:
                if s[k] == quote:
                    if k + 1 < n and s[k + 1] == quote:
                        chars.append(quote)
                        k += 2
                        continue
                    closed = True
                    k += 1
                    break
                chars.append(s[k])
                k += 1
            m = k
            while m < n and s[m] != ";" and s[m].isspace():
                m += 1
            trailing = closed and m < n and s[m] != ";"
            end = s.find(";", m) if trailing else m
            if end == -1:
                end = n
            items.append(
                _Pair(
                    key,
                    "".join(chars),
                    start,
                    j,
                    k,
                    end,
                    quoted=True,
                    unterminated=not closed,
                    trailing_text=trailing,
                )
            )
            i = end
        else:
            end = n if semi == -1 else semi
            raw = s[j:end].rstrip()
            items.append(_Pair(key, raw, start, j, j + len(raw), end))
            i = end
    return items


def _libpq_tokens(s: str) -> list[_Item]:
    r"""Split a libpq key/value string as libpq's ``conninfo_parse`` does.

    Pairs are separated by white space, which is also allowed around ``=``; a value may be
    single-quoted; a backslash escapes the next character (``\'``, ``\\``) in quoted and
    unquoted values alike.
    """
    items: list[_Item] = []
    n = len(s)
    i = 0
    while i < n:
        while i < n and s[i].isspace():
            i += 1
        if i >= n:
            break
        start = i
        while i < n and s[i] != "=" and not s[i].isspace():
            i += 1
        key_end = i
        while i < n and s[i].isspace():
            i += 1
        if i >= n or s[i] != "=":
            items.append(_Junk(start, key_end))
            i = key_end
            continue
        key = s[start:key_end]
        i += 1
        while i < n and s[i].isspace():
            i += 1
        value_start = i
        chars: list[str] = []
        quoted = i < n and s[i] == "'"
        closed = not quoted
        if quoted:
            i += 1
            while i < n:
                c = s[i]
                if c == "\\" and i + 1 < n:
                    chars.append(s[i + 1])
                    i += 2
                    continue
                if c == "'":
                    closed = True
                    i += 1
                    break
                chars.append(c)
                i += 1
        else:
            while i < n and not s[i].isspace():
                if s[i] == "\\" and i + 1 < n:
                    chars.append(s[i + 1])
                    i += 2
                    continue
                chars.append(s[i])
                i += 1
        items.append(
            _Pair(
                key,
                "".join(chars),
                start,
                value_start,
                i,
                i,
                quoted=quoted,
                unterminated=not closed,
            )
        )
    return items


def _norm(key: str) -> str:
    """Npgsql key identity: case- and white-space-insensitive (``SSL Mode`` = ``sslmode``)."""
    return "".join(key.split()).lower()


# ---------------------------------------------------------------------------------------------
# Value parsing shared by the forms. ``key`` is the key as the user wrote it, for messages.

_PASSWORDISH = re.compile(r"(?i)(?:pass\s*word|pwd|psw)\s*=")
_URI_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]*@")


def _shown(value: str) -> str:
    """``repr(value)`` for an error message, with anything that looks like a password hidden.

    Values are only echoed for non-password keys, but a mistyped string can put password text
    into another key's value (``host=x password=a;b`` read as Npgsql gives a host of
    ``x password=a``), so echoed values are scrubbed too.
    """
    match = _PASSWORDISH.search(value)
    if match:
        value = value[: match.end()] + _MASK
    value = _URI_USERINFO.sub(lambda m: m.group(1) + _MASK + "@", value)
    return repr(value)


def _parse_port(value: str, key: str) -> int:
    """A TCP port: an integer from 1 to 65535."""
    text = value.strip()
    if not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= 65535:
        _fail(f"{key}: invalid port {_shown(value)}; expected an integer from 1 to 65535")
    return int(text)


def _parse_seconds(value: str, key: str) -> float:
    """A timeout in seconds; ``0`` means no limit (libpq and Npgsql agree) and becomes ``inf``."""
    text = value.strip()
    if not re.fullmatch(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", text):
        _fail(f"{key}: expected a number of seconds, got {_shown(value)}")
    seconds = float(text)
    if seconds < 0:
        _fail(f"{key} must not be negative, got {_shown(value)}")
    return math.inf if seconds == 0 else seconds


def _parse_count(value: str, key: str, *, minimum: int) -> int:
    """A pool size: a whole number, at least ``minimum``."""
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        _fail(f"{key}: expected a whole number, got {_shown(value)}")
    count = int(text)
    if count < 0:
        _fail(f"{key} must not be negative, got {_shown(value)}")
    if count < minimum:
        _fail(f"{key} must be at least {minimum}, got {_shown(value)}")
    return count


def _parse_bool(value: str, key: str) -> bool:
    """true/false/yes/no/1/0, any case."""
    flag = _BOOLEANS.get(value.strip().lower())
    if flag is None:
        _fail(f"{key}: expected true or false, got {_shown(value)}")
    return flag


_BAD_HOST_CHARS = re.compile(r"[\s;=,/\\'\"@?#&]")


def _check_host(host: str, key: str) -> str:
    """A host name, IP address, or (starting with ``/``) a Unix-socket directory."""
    if host.startswith("/"):
        return host
    if _BAD_HOST_CHARS.search(host):
        _fail(
            f"{key}: {_shown(host)} is not a host name, IP address or socket directory"
            " (in the Npgsql form, separate Key=Value pairs with ';')"
        )
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)  # accepts a %zone suffix
        except ValueError:
            _fail(f"{key}: {_shown(host)} is neither a host name nor an IPv6 address")
    return host


# What an unknown key that follows a password must look like to be named in the error: anything
# else may be the rest of a password with an unquoted separator in it.
_KEYLIKE = re.compile(r"[A-Za-z][A-Za-z0-9 _]{0,63}")


def _after_password_error(form: str) -> NoReturn:
    """Refuse text following a password without quoting it: it is probably part of the password."""
    how = {
        "npgsql": "enclose a password containing ';' in double quotes",
        "libpq": "enclose a password containing spaces in single quotes",
        "uri": "percent-encode '&' in a password (%26)",
    }[form]
    _fail(f"unexpected text after the password; {how} (the text is not shown: it may be secret)")


# ---------------------------------------------------------------------------------------------
# libpq key/value and URI


def _apply_libpq(c: _Collected, key: str, value: str, *, uri: bool) -> None:
    """Apply one libpq keyword (from key/value text or a URI query) to ``c``."""
    if uri and key == "ssl":
        # libpq's JDBC compatibility rule: ssl=true in a URI means sslmode=require.
        if value != "true":
            _fail(f"ssl: only ssl=true is accepted (it means sslmode=require), got {_shown(value)}")
        key, value = "sslmode", "require"
    if key == "host":
        if "," in value:
            _fail("host: several hosts (failover) are not supported; give one host")
        c.host = _check_host(value, key) if value else None
    elif key == "port":
        if "," in value:
            _fail("port: several ports (failover) are not supported; give one port")
        c.port = _parse_port(value, key) if value else None
    elif key == "dbname":
        c.database = value or None
    elif key == "user":
        c.user = value or None
    elif key == "password":
        c.password = value or None
    elif key == "sslmode":
        mode = _LIBPQ_SSL_MODES.get(value.lower())
        if mode is None:
            _fail(
                f"sslmode: invalid value {_shown(value)}; expected disable, allow, prefer, require,"
                " verify-ca or verify-full"
            )
        c.ssl_mode = mode
    elif key == "sslrootcert":
        c.ssl_root_cert = value or None
    elif key == "connect_timeout":
        c.connect_timeout = _parse_seconds(value, key) if value else None
    elif key == "application_name":
        c.application_name = value or None
    elif key == "fallback_application_name":
        c.fallback_application_name = value or None
    elif key in _LIBPQ_UNSUPPORTED:
        _fail(f"libpq option {key!r} is not supported by pgstreams; remove it")
    else:
        _unknown_libpq_key(key, uri=uri)


def _unknown_libpq_key(key: str, *, uri: bool) -> NoReturn:
    """Refuse an unknown key, with a hint when it is the other form's name for something."""
    where = "URI query parameter" if uri else "key"
    field = _NPGSQL_KEYS.get(_norm(key))
    hint = ""
    if field in _LIBPQ_NAME_OF_FIELD:
        hint = f" (in the libpq form this is {_LIBPQ_NAME_OF_FIELD[field]!r})"
    elif field is not None:
        hint = (
            " (only the Npgsql Key=Value; form carries it; pass it to PostgresOptions"
            " as a keyword argument instead)"
        )
    elif key.lower() in _LIBPQ_KEYWORDS and key != key.lower():
        hint = f" (libpq keys are lower case: {key.lower()!r})"
    _fail(f"unknown {where} {key!r}{hint}")


def _libpq_tls(c: _Collected) -> str:
    """Apply libpq's TLS rules: require + a root certificate is verify-ca; ``system`` roots."""
    mode = c.ssl_mode
    if c.ssl_root_cert == "system":
        if mode is not None and mode != "verify-full":
            _fail(f"sslrootcert=system requires sslmode=verify-full, got sslmode={mode!r}")
        c.ssl_root_cert = None
        return "verify-full"
    if mode is None:
        return "prefer"
    if mode == "require" and c.ssl_root_cert is not None:
        return "verify-ca"
    return mode


def _parse_libpq(s: str) -> ConnectionSettings:
    """Parse ``host=… port=… dbname=…`` the way libpq does."""
    c = _Collected()
    after_password = False
    for item in _libpq_tokens(s):
        if isinstance(item, _Junk):
            if after_password:
                _after_password_error("libpq")
            word = s[item.start : item.end]
            _fail(
                f"missing '=' after {_shown(word)} (libpq form: key=value pairs separated by"
                " spaces)"
            )
        if after_password and not _KEYLIKE.fullmatch(item.key):
            _after_password_error("libpq")
        if item.unterminated:
            _fail(f"{item.key}: unterminated quoted value")
        _apply_libpq(c, item.key, item.value, uri=False)
        after_password = item.key == "password"
    return c.settings(ssl_mode=_libpq_tls(c))


def _decode(text: str, what: str, *, secret: bool = False) -> str:
    """Percent-decode one URI component strictly, as libpq does (``+`` stays a plus)."""
    if re.search(r"%(?![0-9A-Fa-f]{2})", text):
        shown = "" if secret else f" {_shown(text)}"
        _fail(f"invalid percent-encoding in the URI {what}{shown}")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        shown = "" if secret else f" {_shown(text)}"
        _fail(f"the URI {what}{shown} does not percent-decode to UTF-8")


def _split_uri(s: str) -> tuple[str, str, str, str]:
    """Split a URI into (scheme, authority, path without its '/', query without its '?')."""
    match = _ANY_SCHEME.match(s)
    assert match is not None
    rest = s[match.end() :].rstrip()
    cut = len(rest)
    for sep in "/?":
        pos = rest.find(sep)
        if pos != -1:
            cut = min(cut, pos)
    authority, tail = rest[:cut], rest[cut:]
    path, _, query = tail.partition("?")
    return match.group(1), authority, path.removeprefix("/"), query


def _parse_uri(s: str) -> ConnectionSettings:
    """Parse ``postgresql://user:password@host:port/dbname?key=value&…`` as libpq does."""
    _, authority, path, query = _split_uri(s)
    if "@" in path or "@" in query:
        # Most likely a password (or user name) containing '/', '?' or '@': refuse without
        # echoing anything, since the text around it may be the password.
        _fail(
            "'@' after the host part of the URI: percent-encode '@', '/', '?' and '#' in the"
            " user name and password (e.g. '/' as %2F)"
        )
    if "#" in path or "#" in query:
        _fail("a URI fragment ('#') is not allowed; percent-encode '#' as %23")
    c = _Collected()
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        c.user = _decode(user, "user name") or None
        if colon:
            c.password = _decode(password, "password", secret=True) or None
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            _fail(f"unterminated '[' in the URI host {_shown(hostport)}")
        host, after = hostport[1:close], hostport[close + 1 :]
        if after and not after.startswith(":"):
            _fail(f"unexpected {_shown(after)} after the IPv6 address in the URI host")
        port_text = after[1:]
    else:
        if "," in hostport:
            _fail("several hosts (failover) are not supported; give one host")
        host, _, port_text = hostport.partition(":")
        if ":" in port_text:
            _fail(f"IPv6 addresses in a URI must be enclosed in brackets: [{hostport}]")
    if host:
        c.host = _check_host(_decode(host, "host"), "host")
    if port_text:
        c.port = _parse_port(port_text, "port")
    if path:
        c.database = _decode(path, "database name") or None
    after_password = False
    for piece in query.split("&") if query else []:
        if not piece:
            continue
        raw_key, eq, raw_value = piece.partition("=")
        key = _decode(raw_key, "query parameter name")
        if not eq or (after_password and not _KEYLIKE.fullmatch(key)):
            if after_password:
                _after_password_error("uri")
            _fail(f"URI query parameter {_shown(key)} has no '=value'")
        value = _decode(raw_value, f"value of {key!r}", secret=key == "password")
        _apply_libpq(c, key, value, uri=True)
        after_password = key == "password"
    return c.settings(ssl_mode=_libpq_tls(c))


# ---------------------------------------------------------------------------------------------
# Npgsql


def _split_npgsql_host(value: str, key: str) -> tuple[str | None, int | None]:
    """Host, optionally with a port: ``host:port``, ``host,port``, ``[v6]:port``, bare IPv6."""
    text = value.strip()
    if not text:
        return None, None
    if text.startswith("/"):
        return text, None
    port: int | None = None
    if text.startswith("["):
        close = text.find("]")
        if close == -1:
            _fail(f"{key}: unterminated '[' in {_shown(text)}")
        host, after = text[1:close], text[close + 1 :]
        if after:
            if after[0] not in ":,":
                _fail(f"{key}: unexpected {_shown(after)} after the IPv6 address")
            port = _parse_port(after[1:], key)
        return _check_host(host, key), port
    if "," in text:
        host, _, port_text = text.rpartition(",")
        if "," in host or not re.fullmatch(r"\s*[0-9]+\s*", port_text):
            _fail(f"{key}: several hosts (failover) are not supported; give one host")
        text, port = host.strip(), _parse_port(port_text, key)
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        text, port = host.strip(), _parse_port(port_text, key)
    return _check_host(text, key), port


def _apply_npgsql(c: _Collected, field: str, key: str, value: str) -> None:
    """Apply one recognised Npgsql key to ``c``."""
    if field == "host":
        c.host, c.host_port = _split_npgsql_host(value, key)
    elif field == "port":
        c.port = _parse_port(value, key)
    elif field == "database":
        c.database = value or None
    elif field == "user":
        c.user = value or None
    elif field == "password":
        c.password = value or None
    elif field == "ssl_mode":
        mode = _NPGSQL_SSL_MODES.get(re.sub(r"[\s_-]", "", value).lower())
        if mode is None:
            _fail(
                f"{key}: invalid value {_shown(value)}; expected Disable, Allow, Prefer, Require,"
                " VerifyCA or VerifyFull"
            )
        c.ssl_mode = mode
    elif field == "trust_server_certificate":
        c.trust_server_certificate = _parse_bool(value, key)
    elif field == "ssl_root_cert":
        c.ssl_root_cert = value.strip() or None
    elif field == "connect_timeout":
        c.connect_timeout = _parse_seconds(value, key)
    elif field == "command_timeout":
        c.command_timeout = _parse_seconds(value, key)
    elif field == "min_pool_size":
        c.min_pool_size = _parse_count(value, key, minimum=0)
    elif field == "max_pool_size":
        c.max_pool_size = _parse_count(value, key, minimum=1)
    elif field == "application_name":
        c.application_name = value or None
    elif field == "pooling":
        if not _parse_bool(value, key):
            _fail(f"{key}=false: pgstreams always pools connections; remove {key}")
    else:  # pragma: no cover - every value of _NPGSQL_KEYS is handled above
        raise AssertionError(field)


def _unknown_npgsql_key(key: str) -> NoReturn:
    """Refuse an unknown or unsupported Npgsql key, with a hint when it is a libpq name."""
    if _norm(key) in _NPGSQL_UNSUPPORTED:
        _fail(f"Npgsql option {key!r} is not supported by pgstreams; remove it")
    hint = ""
    field = _FIELD_OF_LIBPQ_NAME.get(key.strip().lower())
    if field is not None:
        hint = f" (in the Npgsql form this is {_NPGSQL_NAME_OF_FIELD[field]!r})"
    elif key.strip().lower() in _LIBPQ_KEYWORDS:
        hint = " (a libpq option, which pgstreams does not support)"
    _fail(f"unknown key {key!r}{hint}")


def _npgsql_tls(c: _Collected) -> str:
    """Npgsql's TLS rules: Require verifies unless Trust Server Certificate=true."""
    mode = c.ssl_mode or "prefer"
    if mode == "require" and not c.trust_server_certificate:
        return "verify-full"
    return mode


def _parse_npgsql(s: str) -> ConnectionSettings:
    """Parse ``Key=Value;Key=Value;`` the way Npgsql's connection-string builder does."""
    c = _Collected()
    after_password = False
    for item in _npgsql_tokens(s):
        if isinstance(item, _Junk):
            if after_password:
                _after_password_error("npgsql")
            _fail(
                f"{_shown(s[item.start : item.end].strip())} is not of the form Key=Value"
                " (Npgsql form: Key=Value pairs separated by ';')"
            )
        field = _NPGSQL_KEYS.get(_norm(item.key))
        if field is None:
            # An unknown key right after the password may be the rest of a password that
            # holds a ';' (Password=se;cret=1): never shown, even when it looks like a key.
            if after_password:
                _after_password_error("npgsql")
            if not item.key:
                _fail("a '=' with no key before it")
            _unknown_npgsql_key(item.key)
        if item.unterminated:
            _fail(f"{item.key}: unterminated quoted value")
        if item.trailing_text:
            _fail(f"{item.key}: unexpected text after the closing quote of the value")
        _apply_npgsql(c, field, item.key, item.value)
        after_password = field == "password"
    return c.settings(ssl_mode=_npgsql_tls(c))


# ---------------------------------------------------------------------------------------------
# Redaction


def _secret_spans(s: str) -> list[tuple[int, int]]:
    """Every span of ``s`` that is (or may be) password text, under each reading of ``s``.

    All readings are applied, not just the detected one, because a malformed string may be
    meant as another form than it looks; hiding too much in a message is harmless.
    """
    spans: list[tuple[int, int]] = []
    if _ANY_SCHEME.match(s):
        spans.extend(_uri_secret_spans(s))
    else:
        spans.extend(
            _kv_secret_spans(
                s,
                _libpq_tokens(s),
                lambda k: k.lower() == "password",
                lambda k: k in _LIBPQ_KEYWORDS,
            )
        )
        spans.extend(
            _kv_secret_spans(
                s,
                _npgsql_tokens(s),
                lambda k: _norm(k) in _NPGSQL_PASSWORD_KEYS,
                lambda k: _norm(k) in _NPGSQL_KEYS,
            )
        )
    # Last net: anything still spelled like "password=value".
    for match in re.finditer(r"(?i)(?:p\s*a\s*s\s*s\s*w\s*o\s*r\s*d|pwd|psw)\s*=\s*", s):
        end = match.end()
        stop = end
        while stop < len(s) and s[stop] not in ";& \t\r\n":
            stop += 1
        if stop > end:
            spans.append((end, stop))
    return spans


def _kv_secret_spans(
    s: str,
    items: Iterable[_Item],
    is_password: Callable[[str], bool],
    is_known: Callable[[str], bool],
) -> list[tuple[int, int]]:
    """Password values, plus unparseable text right after one (likely more of the password)."""
    spans: list[tuple[int, int]] = []
    after_password = False
    for item in items:
        if isinstance(item, _Pair) and is_password(item.key):
            end = len(s) if item.unterminated else max(item.value_end, item.end)
            if end > item.value_start:
                spans.append((item.value_start, end))
            after_password = True
        elif after_password and (isinstance(item, _Junk) or not is_known(item.key)):
            spans.append((item.start, item.end))
        else:
            after_password = False
    return spans


def _uri_secret_spans(s: str) -> list[tuple[int, int]]:
    """The password in a URI's user info, and ``password=`` query parameters."""
    spans: list[tuple[int, int]] = []
    match = _ANY_SCHEME.match(s)
    assert match is not None
    start = match.end()
    rest = s[start:]
    cut = len(rest)
    for sep in "/?#":
        pos = rest.find(sep)
        if pos != -1:
            cut = min(cut, pos)
    at = rest.rfind("@", 0, cut)
    if at == -1:
        # No user info in the authority; an '@' further on most likely ends a password that
        # contains '/', '?' or '#', so hide from the first ':' up to that '@'.
        at = rest.rfind("@")
    if at != -1:
        colon = rest.find(":", 0, at)
        if colon != -1 and colon + 1 < at:
            spans.append((start + colon + 1, start + at))
    query_at = rest.find("?", at + 1 if at != -1 else 0)
    if query_at != -1:
        pos = start + query_at + 1
        after_password = False
        for piece in s[pos:].split("&"):
            key, eq, _ = piece.partition("=")
            name = unquote(key).strip().lower()  # errors="replace": never raises
            if eq and name == "password":
                spans.append((pos + len(key) + 1, pos + len(piece)))
                after_password = True
            elif after_password and (not eq or name not in _LIBPQ_KEYWORDS):
                spans.append((pos, pos + len(piece)))
            else:
                after_password = False
            pos += len(piece) + 1
    return spans


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort spans and merge overlapping or touching ones."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _scrub(message: str, s: str) -> str:
    """Replace any password text of ``s`` found in ``message`` (raw, unquoted or decoded)."""
    candidates: set[str] = set()
    for start, end in _secret_spans(s):
        raw = s[start:end].strip()
        candidates.add(raw)
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            inner = raw[1:-1]
            candidates.add(inner)
            candidates.add(inner.replace(raw[0] * 2, raw[0]))
            candidates.add(re.sub(r"\\(.)", r"\1", inner))
        candidates.add(unquote(raw))
    # Very short candidates would mangle ordinary words; the parsers never echo those anyway.
    for secret in sorted((c for c in candidates if len(c) >= 4), key=len, reverse=True):
        message = message.replace(secret, _MASK)
    return message
