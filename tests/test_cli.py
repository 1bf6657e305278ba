"""The command line, run as a user runs it (a subprocess), against the test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from support import drop_schema


def pgstreams(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgstreams.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PGSTREAMS_DSN": "", "DATABASE_URL": "", **(env or {})},
    )


@pytest.fixture
def cli_schema(pg_dsn: str, schema_name: str) -> Iterator[str]:
    yield schema_name
    import asyncio

    asyncio.run(drop_schema(pg_dsn, schema_name))


def test_migrate_sql_prints_every_migration_without_a_database() -> None:
    result = pgstreams("migrate", "--sql", "--schema", "for_dba")
    assert result.returncode == 0, result.stderr
    sql = result.stdout
    assert 'CREATE SCHEMA IF NOT EXISTS "for_dba"' in sql
    for name in (
        "001_InitialSchema.sql",
        "003_RetentionPolicies.sql",
        "004_StreamConfiguration.sql",
    ):
        assert f"-- {name}" in sql
    assert sql.count("BEGIN;") == sql.count("COMMIT;") == 3
    assert "{schema}" not in sql


def test_status_before_and_after_migrate(pg_dsn: str, cli_schema: str) -> None:
    before = pgstreams("status", "--dsn", pg_dsn, "--schema", cli_schema)
    assert before.returncode == 0, before.stderr
    assert "version:  0" in before.stdout
    assert "001_InitialSchema.sql" in before.stdout
    assert "PostgreSQL" in before.stdout

    migrated = pgstreams("migrate", "--schema", cli_schema, env={"PGSTREAMS_DSN": pg_dsn})
    assert migrated.returncode == 0, migrated.stderr
    assert "applied migrations 1, 3, 4" in migrated.stdout

    after = pgstreams("status", "--schema", cli_schema, env={"DATABASE_URL": pg_dsn})
    assert "version:  4" in after.stdout
    assert "pending:  none" in after.stdout


def test_migrate_sql_with_a_database_prints_only_what_is_pending(
    pg_dsn: str, cli_schema: str
) -> None:
    assert pgstreams("migrate", "--dsn", pg_dsn, "--schema", cli_schema).returncode == 0
    result = pgstreams("migrate", "--sql", "--dsn", pg_dsn, "--schema", cli_schema)
    assert "BEGIN;" not in result.stdout


def test_append_read_enqueue_dequeue_round_trip(pg_dsn: str, cli_schema: str) -> None:
    base = ("--dsn", pg_dsn, "--schema", cli_schema)
    assert pgstreams("append", *base, "orders", "Placed", '{"n": 1}').stdout.strip() == "0"
    assert pgstreams("append", *base, "orders", "Paid", '{"n": 2}').stdout.strip() == "1"
    lines = pgstreams("read", *base, "orders").stdout.splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["Placed", "Paid"]

    assert pgstreams("enqueue", *base, "jobs", "Job", '{"k": "v"}').returncode == 0
    got = pgstreams("dequeue", *base, "jobs", "--ack").stdout.splitlines()
    assert json.loads(got[0])["data"] == {"k": "v"}
    assert pgstreams("dequeue", *base, "jobs").stdout == ""


def test_bad_input_is_a_clear_error_not_a_traceback(pg_dsn: str, cli_schema: str) -> None:
    result = pgstreams("append", "--dsn", pg_dsn, "--schema", cli_schema, "s", "T", "{not json")
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_dsn_is_a_clear_error() -> None:
    result = pgstreams("status")
    assert result.returncode == 2
    assert "PGSTREAMS_DSN" in result.stderr


def test_password_never_printed(pg_dsn: str) -> None:
    secret = "Sup3r-S3cret"
    result = pgstreams(
        "status", "--dsn", f"Host=127.0.0.1;Port=1;Username=x;Password={secret};Timeout=2"
    )
    assert result.returncode == 2
    assert secret not in result.stderr + result.stdout


def test_demo_runs_against_the_given_database(pg_dsn: str, cli_schema: str) -> None:
    result = pgstreams("demo", "--dsn", pg_dsn, "--schema", cli_schema)
    assert result.returncode == 0, result.stderr
    assert "refused, nothing written" in result.stdout
    assert "reason=nacked" in result.stdout
