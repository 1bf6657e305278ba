"""``worker``: run a handler function on a queue's messages until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import socket
import sys
from typing import Any

from ..workers import Handler
from .common import (
    CliError,
    Parents,
    SubParsers,
    UsageError,
    add_command,
    duration,
    open_store,
    positive,
)
from .output import Writer


def load_handler(spec: str) -> Handler:
    """The function ``module:function`` names (``function`` may be dotted: ``Class.method``),
    imported the way ``python -m`` would find it: the current directory comes first."""
    module_name, separator, attribute = spec.partition(":")
    if not separator or not module_name or not attribute:
        raise UsageError(f"{spec!r}: give the handler as module:function, e.g. myapp.jobs:send")
    # The console script does not put the current directory on sys.path as `python -m` does;
    # a handler module beside the caller must be found either way.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise CliError(f"cannot import the handler's module {module_name!r}: {error}") from error
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise CliError(f"{spec!r}: {module_name} has no {attribute}") from None
    if not callable(target):
        raise CliError(f"{spec!r} is not a function")
    handler: Handler = target
    return handler


async def cmd_worker(args: argparse.Namespace) -> int:
    handler = load_handler(args.handler)
    async with open_store(args) as store:
        report = await store.run_worker(
            args.queue,
            handler,
            consumer_id=args.consumer_id or f"{socket.gethostname()}-{os.getpid()}",
            concurrency=args.concurrency,
            visibility_timeout=args.visibility,
            grace_period=args.grace_period,
            handle_signals=True,
        )
    Writer("json", ()).write_one(dataclasses.asdict(report))
    return 0


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    p = add_command(
        commands,
        "worker",
        summary="work a queue with a Python function until SIGINT/SIGTERM",
        description=(
            "Import HANDLER (module:function, found from the current directory as with\n"
            "python -m) and run it on QUEUE's messages, up to --concurrency at once: a handler\n"
            "that returns acknowledges its message, one that raises nacks it (the stream's\n"
            "retry backoff, then a dead letter; logged with its traceback), and a slow one has\n"
            "its lease extended. The handler is an async function of one QueuedEvent (a plain\n"
            "function works too, but blocks the others while it runs).\n\n"
            "SIGINT or SIGTERM stops it gracefully: no more leases, running handlers get\n"
            "--grace-period to finish, the others' messages are given back. Then it prints\n"
            'what it did as one JSON line, {"handled", "failed", "extended", "interrupted"},\n'
            "and exits 0."
        ),
        examples="""
            # jobs.py:  async def send_email(message): await mailer.send(**message.data)
            pgstreams worker emails jobs:send_email --concurrency 20
            pgstreams worker emails myapp.tasks:Mailer.handle --visibility 2m
        """,
        parents=[parents.connection],
    )
    p.add_argument("queue", metavar="QUEUE")
    p.add_argument("handler", metavar="HANDLER", help="module:function")
    p.add_argument(
        "--concurrency", type=positive, default=10, metavar="N", help="handlers at once (10)"
    )
    p.add_argument(
        "--visibility",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="lease length, extended while a handler runs (30 s)",
    )
    p.add_argument(
        "--grace-period",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="how long running handlers may finish once stopped (30 s)",
    )
    p.add_argument(
        "--consumer-id", metavar="ID", help="the worker's consumer id (default: HOST-PID)"
    )
    p.set_defaults(run=cmd_worker)
