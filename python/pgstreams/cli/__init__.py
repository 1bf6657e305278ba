"""The ``pgstreams`` command line: a tool to script against and to operate a store with.

Every command that prints records prints one JSON object per line (``--format table``: an
aligned table for people); errors are one line on stderr, ``pgstreams: ...``, and the exit
code says what happened (see ``EXIT_CODES_HELP``). Each command group lives in its own
module; this one assembles the parser and runs a command.

The DSN comes from ``--dsn``, then ``PGSTREAMS_DSN``, then ``DATABASE_URL``; the schema from
``--schema``, then ``PGSTREAMS_SCHEMA``, then ``event_streaming``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from .. import __version__
from ..errors import EventStreamingError
from . import admin, config, groups, health, queues, retention, streams, worker
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    CliError,
    Command,
    HelpFormatter,
    Parents,
    connection_options,
    exit_code_for,
    fill_defaults,
    format_option,
)

__all__ = ["build_parser", "main"]

OVERVIEW = """\
commands:
  events     append, read, tail, streams
  queues     enqueue, dequeue, ack, nack, dead-letters, worker
  operating  groups, retention, config, health
  schema     migrate, status
  tools      demo, bench
`pgstreams COMMAND --help` explains each, with examples.

The DSN comes from --dsn, then $PGSTREAMS_DSN, then $DATABASE_URL; the schema from
--schema, then $PGSTREAMS_SCHEMA, then event_streaming.

"""


def build_parser() -> argparse.ArgumentParser:
    parents = Parents(connection_options(), format_option())
    parser = argparse.ArgumentParser(
        prog="pgstreams",
        description="PostgreSQL as an event store and a message queue.",
        epilog=OVERVIEW + EXIT_CODES_HELP,
        formatter_class=HelpFormatter,
        parents=[parents.connection],
    )
    parser.add_argument("--version", action="version", version=f"pgstreams {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (streams, queues, worker, groups, retention, config, health, admin):
        group.register(commands, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fill_defaults(args)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    command: Command = args.run
    try:
        code = asyncio.run(command(args))
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at exit
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`pgstreams tail | head`): not an error worth a line. Point
        # stdout at /dev/null so the interpreter's last flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as error:
        report_error(error, verbose=args.verbose)
        return exit_code_for(error)


def report_error(error: Exception, *, verbose: bool) -> None:
    """One line on stderr (the traceback first with ``--verbose``). pgstreams' own messages
    never hold a password, and this prints no DSN but through ``describe()``."""
    if verbose:
        traceback.print_exception(error, file=sys.stderr)
    if isinstance(error, (CliError, EventStreamingError)):
        message = str(error)
    elif isinstance(error, OSError) and error.strerror:
        message = f"{error.strerror}" + (f": {error.filename}" if error.filename else "")
    else:
        # Not one of ours: name the class, which the message alone may not make clear.
        message = f"{type(error).__name__}: {error}"
        if not verbose:
            message += " (--verbose shows the traceback)"
    # One line, whatever the message holds (a server's DETAIL, a multi-line reason).
    one_line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"pgstreams: {one_line}", file=sys.stderr)
