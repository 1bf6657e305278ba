"""What every command shares: exit codes, the errors a command raises, the shared options,
argument types, and opening the store."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..errors import ConcurrencyError, ConsumerFencedError, DatabaseError, StoreTimeoutError
from ..options import PostgresOptions
from ..postgres import PostgresEventStore, connect

# ----------------------------------------------------------------------------- exit codes

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's own code for a bad command line
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a process its pipe closed
EXIT_INTERRUPTED = 130  # 128 + SIGINT

EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    error: one line on stderr, "pgstreams: ..." (--verbose adds the traceback)
  2    usage: a bad command line (unknown option, bad value, JSON argument that does not
       parse, no database given)
  3    conflict, nothing written: an expected version or committed offset did not match
       (ConcurrencyError), or a consumer group member lost its stream (ConsumerFencedError)
  4    not found or nothing to do: config get/delete, retention delete and groups delete of
       something that does not exist; dequeue that received no message; ack/nack that
       settled none
  130  interrupted (Ctrl-C)
  141  stdout was closed by its reader (`pgstreams tail | head`); nothing printed
  `health` answers for probes instead: 0 healthy, 1 degraded, 2 unhealthy (also when the
  database cannot be reached)."""

DSN_VARIABLES = ("PGSTREAMS_DSN", "DATABASE_URL")
SCHEMA_VARIABLE = "PGSTREAMS_SCHEMA"
DEFAULT_SCHEMA = "event_streaming"

# What ``set_defaults(run=...)`` names: a command's coroutine function, returning its exit code.
Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]
SubParsers = argparse._SubParsersAction  # the type of ``add_subparsers()``'s result


class CliError(Exception):
    """A failure the user can act on, printed as one line without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CliError):
    """The command line itself is wrong (exit 2, as argparse's own errors)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class NotFoundError(CliError):
    """What the command names does not exist (exit 4)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_NOT_FOUND)


class ConnectError(CliError):
    """The store could not be opened (the server, the database or the role is not there)."""


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, CliError):
        return error.exit_code
    if isinstance(error, (ConcurrencyError, ConsumerFencedError)):
        return EXIT_CONFLICT
    return EXIT_ERROR


# ----------------------------------------------------------------------------- parsers


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' and exit codes' line breaks; wider option column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


# The shared options are defined with SUPPRESS defaults and filled in by ``fill_defaults``:
# they can then be given before or after a nested subcommand (``groups --dsn X list`` and
# ``groups list --dsn X``) without the inner parser's default overwriting the outer value.
SHARED_DEFAULTS: dict[str, Any] = {"dsn": None, "schema": None, "verbose": False, "format": "json"}


def fill_defaults(args: argparse.Namespace) -> None:
    for name, default in SHARED_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)


def connection_options() -> argparse.ArgumentParser:
    """``--dsn``, ``--schema`` and ``--verbose``, for every command."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--dsn",
        default=argparse.SUPPRESS,
        help="connection string, any form connect() takes (else $PGSTREAMS_DSN, $DATABASE_URL)",
    )
    group.add_argument(
        "--schema",
        default=argparse.SUPPRESS,
        help=f"schema name (else ${SCHEMA_VARIABLE}, else {DEFAULT_SCHEMA})",
    )
    parent.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the traceback of an error, and log at INFO",
    )
    return parent


def format_option() -> argparse.ArgumentParser:
    """``--format json|table``, for the commands that print records."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--format",
        choices=("json", "table"),
        default=argparse.SUPPRESS,
        help="json: one JSON object per line (default); table: aligned columns for people",
    )
    return parent


@dataclass(frozen=True)
class Parents:
    """The parent parsers a command inherits its shared options from."""

    connection: argparse.ArgumentParser
    output: argparse.ArgumentParser

    @property
    def both(self) -> list[argparse.ArgumentParser]:
        return [self.connection, self.output]


def add_command(
    commands: SubParsers[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    examples: str,
    parents: list[argparse.ArgumentParser],
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` ends with its examples (``examples``: one per line,
    ``#`` comments allowed)."""
    return commands.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  "),
        formatter_class=HelpFormatter,
        parents=parents,
    )


# ----------------------------------------------------------------------------- argument types

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhdw]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """Seconds, from ``90``, ``1.5``, or a number with a unit: ``15m``, ``12h``, ``7d``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give seconds (90, 1.5) or a number with s, m, h, d "
            "or w (15m, 7d)"
        )
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def natural(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def positive(text: str) -> int:
    """An integer >= 1."""
    value = natural(text)
    if value == 0:
        raise argparse.ArgumentTypeError("0 is not allowed here: give 1 or more")
    return value


# ----------------------------------------------------------------------------- the store


def resolve_dsn(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for name in DSN_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


def schema_of(args: argparse.Namespace) -> str:
    return str(args.schema or os.environ.get(SCHEMA_VARIABLE) or DEFAULT_SCHEMA)


def store_options(args: argparse.Namespace) -> PostgresOptions:
    dsn = resolve_dsn(args.dsn)
    if dsn is None:
        raise UsageError("no database given: pass --dsn, or set PGSTREAMS_DSN or DATABASE_URL")
    return PostgresOptions(dsn, schema_name=schema_of(args))


async def open_options(options: PostgresOptions) -> PostgresEventStore:
    """Connects, naming the server (never the password) when it cannot."""
    try:
        return await connect(options)
    except (DatabaseError, StoreTimeoutError) as error:
        raise ConnectError(f"cannot open the store at {options.describe()}: {error}") from error


@contextlib.asynccontextmanager
async def open_store(args: argparse.Namespace) -> AsyncIterator[PostgresEventStore]:
    """The store of ``--dsn``/``--schema``, closed when the block ends."""
    store = await open_options(store_options(args))
    async with store:
        yield store
