"""The command line without a database: help, usage errors and their exit codes, the JSON
lines parser, argument types, and errors that never show a traceback or a password. The
commands against PostgreSQL are in tests/pg/test_cli_pg.py."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pytest

from cli.helpers import TRACEBACK, assert_one_clean_error_line, cli_env, run
from pgstreams import ConcurrencyError, ConfigurationError, ConsumerFencedError, __version__
from pgstreams.cli import build_parser, main
from pgstreams.cli.common import duration, exit_code_for
from pgstreams.cli.jsonlines import BadLine, parse_event, read_batches
from pgstreams.migrator import load_migrations


def every_command() -> list[tuple[str, ...]]:
    """Every command and subcommand, as argv prefixes, read from the parser itself (a new
    command is covered without touching this file)."""
    found: list[tuple[str, ...]] = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((*path, name))
                    walk(sub, (*path, name))

    walk(build_parser(), ())
    return found


COMMANDS = every_command()


def test_every_command_is_found() -> None:
    names = {path[0] for path in COMMANDS}
    assert names >= {
        "append", "read", "tail", "streams", "enqueue", "dequeue", "ack", "nack",
        "dead-letters", "worker", "groups", "retention", "config", "health", "migrate",
        "status", "demo", "bench",
    }  # fmt: skip
    assert ("groups", "reset") in COMMANDS
    assert ("dead-letters", "purge") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    examples = text.split("\nexamples:\n", 1)[1]
    assert any(line.split()[:2] == ["pgstreams", path[0]] for line in examples.splitlines())
    assert f"pgstreams {' '.join(path)}" in text  # the usage line names the command


def test_top_level_help_documents_the_exit_codes_and_the_dsn() -> None:
    result = run("--help")
    assert result.returncode == 0
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"\n  {code}" in result.stdout
    assert "ConcurrencyError" in result.stdout
    assert "PGSTREAMS_DSN" in result.stdout
    assert "0 healthy, 1 degraded, 2 unhealthy" in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pgstreams {__version__}"


def test_the_installed_script_is_the_same_command() -> None:
    script = Path(sys.executable).parent / "pgstreams"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, env=cli_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"pgstreams {__version__}"


# ----------------------------------------------------------------------------- usage: exit 2


@pytest.mark.parametrize(
    "argv",
    [
        ["no-such-command"],
        ["read"],  # STREAM missing
        ["read", "s", "--count", "-1"],
        ["read", "s", "--count", "many"],
        ["dequeue", "q", "--visibility", "soon"],
        ["tail", "--after", "-5"],
        ["groups", "reset", "s", "g", "middle"],
        ["read", "s", "--format", "xml"],
    ],
    ids=" ".join,
)
def test_a_bad_command_line_exits_2(argv: list[str]) -> None:
    result = run(*argv)
    assert result.returncode == 2, result.stderr
    assert "usage: pgstreams" in result.stderr
    assert TRACEBACK not in result.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["append", "s", "T", "{not json"], "DATA is not valid JSON"),
        (["append", "s", "T"], "DATA is missing"),
        (["append", "s", "T", "{}", "--metadata", "[1,"], "--metadata is not valid JSON"),
        (["append", "s", "T", "{}", "--file", "x.jsonl"], "not both"),
        (["enqueue", "s", "--metadata", "{}"], "--metadata goes with TYPE DATA"),
        (["worker", "q", "no_colon"], "module:function"),
        (["groups", "delete", "only-a-stream"], "STREAM and GROUP"),
    ],
)
def test_a_bad_argument_is_a_usage_error_of_one_line(argv: list[str], says: str) -> None:
    # Checked before any connection: the DSN points nowhere and is never reached.
    result = run(*argv, "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2, result.stderr
    assert says in assert_one_clean_error_line(result.stderr)


def test_no_database_given_is_a_usage_error() -> None:
    result = run("streams")
    assert result.returncode == 2
    line = assert_one_clean_error_line(result.stderr)
    assert "PGSTREAMS_DSN" in line and "--dsn" in line


def test_shared_options_go_before_or_after_a_subcommand() -> None:
    parser = build_parser()
    for argv in (
        ["groups", "--dsn", "X", "--format", "table", "list"],
        ["groups", "list", "--dsn", "X", "--format", "table"],
        ["--dsn", "X", "groups", "list", "--format", "table"],
    ):
        args = parser.parse_args(argv)
        assert (args.dsn, args.format) == ("X", "table"), argv


def test_conflicts_exit_3_and_other_errors_1() -> None:
    assert exit_code_for(ConcurrencyError("s", 1, 2)) == 3
    assert exit_code_for(ConsumerFencedError("fenced")) == 3
    assert exit_code_for(ConfigurationError("bad")) == 1
    assert exit_code_for(RuntimeError("bug")) == 1


# ----------------------------------------------------------------------------- no secrets


def test_a_refused_connection_shows_no_password_and_no_traceback() -> None:
    secret = "Sup3r-S3cret"
    for dsn in (
        f"Host=127.0.0.1;Port=1;Username=x;Password={secret};Timeout=2",
        f"postgresql://x:{secret}@127.0.0.1:1/db?connect_timeout=2",
    ):
        result = run("streams", "--dsn", dsn)
        assert result.returncode == 1
        line = assert_one_clean_error_line(result.stderr, secret=secret)
        assert "x@127.0.0.1:1/" in line  # names the server it tried, through describe()
        assert secret not in result.stdout


def test_health_of_an_unreachable_store_is_unhealthy_for_probes() -> None:
    secret = "Sup3r-S3cret"
    result = run("health", "--dsn", f"postgresql://x:{secret}@127.0.0.1:1/db?connect_timeout=2")
    assert result.returncode == 2
    assert secret not in result.stdout + result.stderr
    assert '"status": "unhealthy"' in result.stdout


def test_verbose_adds_the_traceback_but_never_the_password() -> None:
    secret = "Sup3r-S3cret"
    dsn = f"postgresql://x:{secret}@127.0.0.1:1/db?connect_timeout=2"
    result = run("streams", "--verbose", "--dsn", dsn)
    assert result.returncode == 1
    assert TRACEBACK in result.stderr
    assert result.stderr.splitlines()[-1].startswith("pgstreams: cannot open the store")
    assert secret not in result.stderr


@pytest.mark.parametrize("command", ["append", "enqueue"])
def test_a_missing_input_file_is_named_before_connecting(command: str) -> None:
    # The DSN points at no server: the file is checked first.
    dsn = "postgresql://x@127.0.0.1:1/db"
    result = run(command, "s", "--file", "/no/such/file.jsonl", "--dsn", dsn)
    assert result.returncode == 1
    line = assert_one_clean_error_line(result.stderr)
    assert line == "pgstreams: cannot read /no/such/file.jsonl: No such file or directory"


# ----------------------------------------------------------------------------- migrate --sql


def test_migrate_sql_prints_every_migration_without_a_database() -> None:
    result = run("migrate", "--sql", "--schema", "for_dba")
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert 'CREATE SCHEMA IF NOT EXISTS "for_dba"' in sql
    migrations = load_migrations()
    assert migrations
    for migration in migrations:
        assert f"-- {migration.file_name}" in sql
    assert sql.count("BEGIN;") == sql.count("COMMIT;") == len(migrations)
    assert "{schema}" not in sql


# ----------------------------------------------------------------------------- JSON lines


def test_an_event_line_with_every_key() -> None:
    event = parse_event(
        '{"type": "T", "data": {"a": [1, 2.5, null]}, "metadata": {"m": true}, '
        '"id": "01970000-0000-7000-8000-000000000001", "correlation_id": "c", '
        '"causation_id": "k", "version": 2}',
        1,
    )
    assert (event.type, event.data, event.metadata) == ("T", {"a": [1, 2.5, None]}, {"m": True})
    assert str(event.id) == "01970000-0000-7000-8000-000000000001"
    assert (event.correlation_id, event.causation_id, event.version) == ("c", "k", 2)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "T", "data": NaN}', "NaN is not JSON"),
        ('["T", {}]', "expected a JSON object"),
        ('{"data": 1}', '"type" is missing'),
        ('{"type": "T"}', '"data" is missing'),
        ('{"type": "T", "data": 1, "meta": {}}', "unknown key(s) 'meta'"),
        ('{"type": "", "data": 1}', "type"),
        ('{"type": "T", "data": 1, "id": "nope"}', "id"),
        ('{"type": "T", "data": 1, "metadata": [1]}', "metadata"),
    ],
)
def test_a_bad_event_line_says_why_at_its_line(line: str, says: str) -> None:
    with pytest.raises(BadLine) as raised:
        parse_event(line, 7)
    assert raised.value.number == 7
    assert str(raised.value).startswith("line 7: ")
    assert says in raised.value.reason


def test_batches_skip_blank_lines_and_keep_line_numbers() -> None:
    text = (
        '\ufeff{"type": "A", "data": 1}\n\n{"type": "B", "data": 2}\n   \n{"type": "C", "data": 3}'
    )
    batches = list(read_batches(io.BytesIO(text.encode()), 2))
    assert [[e.type for e in b.events] for b in batches] == [["A", "B"], ["C"]]
    assert [b.line_numbers for b in batches] == [[1, 3], [5]]
    assert sum(b.lines_read for b in batches) == 5


def test_a_bad_line_stops_before_its_batch_is_yielded() -> None:
    text = b'{"type": "A", "data": 1}\n{"type": "B", "data": 2}\n{"type": "C"}\n'
    batches = read_batches(io.BytesIO(text), 2)
    assert [e.type for e in next(batches).events] == ["A", "B"]
    with pytest.raises(BadLine, match="line 3"):
        next(batches)


def test_a_line_that_is_not_utf8_is_named() -> None:
    with pytest.raises(BadLine, match="line 2: not UTF-8"):
        list(read_batches(io.BytesIO(b'{"type": "A", "data": 1}\n{"type": "\xff"}\n'), 10))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("1.5", 1.5), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "5y", "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration(text)
