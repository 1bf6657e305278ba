"""The command line against PostgreSQL, run as a user runs it: each command a subprocess, its
output parsed as JSON, its exit code checked. Every test has its own schema."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import termios
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import pgstreams
from cli.helpers import (
    BAR_MARKS,
    assert_one_clean_error_line,
    cli_env,
    command,
    json_lines,
    run,
)
from pgstreams.migrator import load_migrations
from support import PATIENCE, drop_schema

SECRET = "Sup3r-S3cret-pw"


class Cli:
    """``pgstreams`` bound to one test's database and schema (through the environment
    variables a deployment would set)."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema
        self.env = {"PGSTREAMS_DSN": dsn, "PGSTREAMS_SCHEMA": schema}

    def __call__(
        self, *args: str, input: str | None = None, cwd: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(*args, input=input, env=self.env, cwd=cwd)

    def ok(self, *args: str, input: str | None = None) -> list[Any]:
        """Runs a command that must succeed; its stdout's JSON lines."""
        result = self(*args, input=input)
        assert result.returncode == 0, result.stderr
        return json_lines(result.stdout)

    def popen(self, *args: str, cwd: str | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(self.env),
            cwd=cwd,
        )


@pytest.fixture
def cli(pg_dsn: str, schema_name: str) -> Iterator[Cli]:
    yield Cli(pg_dsn, schema_name)
    asyncio.run(drop_schema(pg_dsn, schema_name))


def event_lines(count: int, start: int = 0, type: str = "Tick") -> str:
    return "".join(
        json.dumps({"type": type, "data": {"n": n}}) + "\n" for n in range(start, start + count)
    )


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=PATIENCE * 3)
    assert process.returncode == 0, stderr
    return stdout, stderr


# ----------------------------------------------------------------------------- append and read


def test_append_one_event_then_read_it(pg_dsn: str, cli: Cli) -> None:
    # The explicit options, as the environment's are tested everywhere else.
    where = ("--dsn", pg_dsn, "--schema", cli.schema)
    first = run("append", *where, "orders", "Placed", '{"total": 5}', "--correlation-id", "web-1")
    assert first.returncode == 0, first.stderr
    [placed] = json_lines(first.stdout)
    assert placed["offset"] == 0 and placed["position"] >= 1
    [paid] = cli.ok(
        "append", "orders", "Paid", '{"amount": 5}', "--metadata", '{"by": "cli"}',
        "--expected-version", "0",
    )  # fmt: skip
    assert paid == {"offset": 1, "position": paid["position"]}
    assert paid["position"] > placed["position"]

    read = cli.ok("read", "orders")
    assert [(e["offset"], e["position"], e["type"]) for e in read] == [
        (0, placed["position"], "Placed"),
        (1, paid["position"], "Paid"),
    ]
    assert read[0]["data"] == {"total": 5} and read[0]["correlation_id"] == "web-1"
    assert read[1]["metadata"] == {"by": "cli"}
    assert datetime.fromisoformat(read[0]["timestamp"]).tzinfo is not None
    assert [e["offset"] for e in cli.ok("read", "orders", "--backwards", "--count", "1")] == [1]
    assert [e["offset"] for e in cli.ok("read", "orders", "--start", "1")] == [1]


def test_ten_thousand_json_lines_in_batches_read_back_in_order(cli: Cli) -> None:
    result = cli("append", "ticks", input=event_lines(10_000))
    assert result.returncode == 0, result.stderr
    # stderr is a pipe here: no progress bar, nothing at all.
    assert result.stderr == ""
    written = json_lines(result.stdout)
    assert [w["offset"] for w in written] == list(range(10_000))
    positions = [w["position"] for w in written]
    assert positions == sorted(set(positions))

    read = cli.ok("read", "ticks")
    assert len(read) == 10_000
    assert [e["data"]["n"] for e in read] == list(range(10_000))
    assert [e["offset"] for e in read] == list(range(10_000))
    assert [e["position"] for e in read] == positions
    [stream] = cli.ok("streams")
    assert (stream["stream"], stream["length"], stream["version"]) == ("ticks", 10_000, 9_999)


def test_append_from_a_file_with_table_output(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(event_lines(250))
    result = cli("append", "ticks", "--file", str(path), "--batch-size", "100", "--format", "table")
    assert result.returncode == 0, result.stderr
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == ["offset", "position"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert [int(row.split()[0]) for row in rows] == list(range(250))
    assert len({len(row) for row in rows}) == 1  # aligned


def test_a_bad_line_is_named_and_nothing_of_its_batch_is_written(cli: Cli) -> None:
    lines = event_lines(1200).splitlines()
    lines[1099] = '{"typ": "Tick", "data": {}}'  # line 1100, in the third batch of 500
    result = cli("append", "ticks", input="\n".join(lines) + "\n")
    assert result.returncode == 1
    line = assert_one_clean_error_line(result.stderr)
    assert line == (
        "pgstreams: line 1100: unknown key(s) 'typ'; an event line has type, data, metadata, "
        "id, correlation_id, causation_id, version; the 1000 event(s) of lines 1-1000 were "
        "written, nothing from line 1001 on"
    )
    assert len(json_lines(result.stdout)) == 1000  # the offsets of what was written
    assert len(cli.ok("read", "ticks")) == 1000


def test_a_value_the_store_refuses_is_named_at_its_line(cli: Cli) -> None:
    lines = event_lines(3) + '{"type": "T", "data": {"big": 99999999999999999999}}\n'
    result = cli("append", "ticks", input=lines)
    assert result.returncode == 1
    line = assert_one_clean_error_line(result.stderr)
    assert line.startswith('pgstreams: line 4: data["big"]: integer 99999999999999999999')
    assert line.endswith("; nothing was written")
    assert cli.ok("read", "ticks") == []


def test_an_expected_version_conflict_exits_3_and_writes_nothing(cli: Cli) -> None:
    cli.ok("append", "orders", "Placed", "{}")
    single = cli("append", "orders", "Placed", "{}", "--expected-version", "-1")
    assert single.returncode == 3
    line = assert_one_clean_error_line(single.stderr)
    assert "expected version -1" in line and "version 0" in line

    lines = cli("append", "orders", "--expected-version", "5", input=event_lines(3))
    assert lines.returncode == 3
    assert assert_one_clean_error_line(lines.stderr).endswith("; nothing was written")
    assert len(cli.ok("read", "orders")) == 1

    # Each next batch expects where the previous one ended: five lines in three batches.
    chained = cli.ok("append", "orders", "--expected-version", "0", "--batch-size", "2",
                     input=event_lines(5))  # fmt: skip
    assert [w["offset"] for w in chained] == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------------- queues


def test_enqueue_lines_then_dequeue_ack_and_nothing_left(cli: Cli) -> None:
    ids = [f"01970000-0000-7000-8000-00000000000{n}" for n in range(1, 4)]
    lines = "".join(
        json.dumps({"type": "Send", "data": {"n": n}, "id": ids[n]}) + "\n" for n in range(3)
    )
    assert cli.ok("enqueue", "emails", input=lines) == [{"id": i} for i in ids]
    [single] = cli.ok("enqueue", "emails", "Send", '{"n": 3}', "--delay", "1h")

    leased = cli.ok("dequeue", "emails", "--count", "2", "--visibility", "1m")
    assert [m["id"] for m in leased] == ids[:2]
    assert leased[0]["delivery_count"] == 1 and leased[0]["data"] == {"n": 0}
    assert datetime.fromisoformat(leased[0]["lease_expires_at"]).tzinfo is not None
    assert cli.ok("ack", *ids[:2]) == [{"acknowledged": 2}]
    assert cli("ack", ids[0]).returncode == 4  # settled already

    [last] = cli.ok("dequeue", "emails", "--ack")
    assert last["id"] == ids[2]
    empty = cli("dequeue", "emails")  # the delayed one is not visible yet
    assert (empty.returncode, empty.stdout, empty.stderr) == (4, "", "")
    assert single["id"] not in ids


def test_nack_dead_letters_list_redrive_and_purge(cli: Cli) -> None:
    ids = [m["id"] for m in cli.ok("enqueue", "jobs", input=event_lines(2, type="Job"))]
    cli.ok("dequeue", "jobs", "--count", "2")
    assert cli.ok("nack", *ids, "--dead-letter") == [{"nacked": 2}]

    letters = cli.ok("dead-letters", "list", "jobs")
    assert [(d["id"], d["reason"]) for d in letters] == [(i, "nacked") for i in ids]
    table = cli("dead-letters", "list", "jobs", "--format", "table").stdout.splitlines()
    assert table[0].split()[:5] == ["id", "type", "deliveries", "failed", "at"]
    assert len(table) == 2 + 2

    assert cli.ok("dead-letters", "redrive", "jobs", "--id", ids[0]) == [{"redriven": 1}]
    [back] = cli.ok("dequeue", "jobs")
    assert back["id"] == ids[0] and back["delivery_count"] == 1
    assert cli.ok("dead-letters", "purge", "jobs") == [{"deleted": 1}]
    assert cli.ok("dead-letters", "list", "jobs") == []
    assert cli("nack", ids[1]).returncode == 4  # purged: nothing to nack


# ----------------------------------------------------------------------------- following


def test_tail_follows_the_global_feed_until_count(cli: Cli) -> None:
    cli.ok("append", "a", input=event_lines(1, type="A"))
    cli.ok("append", "b", input=event_lines(1, type="B"))
    tail = cli.popen("tail", "--count", "4")
    cli.ok("append", "c", input=event_lines(2, type="C"))
    stdout, _ = finish(tail)
    events = json_lines(stdout)
    assert [e["stream"] for e in events] == ["a", "b", "c", "c"]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions)


def test_tail_filters_and_stops_when_caught_up(cli: Cli) -> None:
    cli.ok("append", "order-1", input=event_lines(2, type="Placed"))
    cli.ok("append", "order-2", input=event_lines(1, type="Paid"))
    cli.ok("append", "cart-1", input=event_lines(1, type="Placed"))
    everything = cli.ok("tail", "--no-follow")
    assert len(everything) == 4
    placed = cli.ok("tail", "--no-follow", "--prefix", "order-", "--type", "Placed")
    assert [(e["stream"], e["offset"]) for e in placed] == [("order-1", 0), ("order-1", 1)]
    after = cli.ok("tail", "--no-follow", "--after", str(everything[1]["position"]))
    assert after == everything[2:]
    assert cli.ok("tail", "--no-follow", "--after", "end") == []
    table = cli("tail", "--no-follow", "--format", "table").stdout.splitlines()
    assert table[0].split() == ["stream", "offset", "position", "timestamp", "type", "data"]
    assert len(table) == 2 + 4


def test_read_follow_prints_later_events_of_that_stream_only(cli: Cli) -> None:
    cli.ok("append", "s", input=event_lines(1))
    reader = cli.popen("read", "s", "--follow", "--count", "3")
    cli.ok("append", "s-other", input=event_lines(1))  # shares the prefix "s"
    cli.ok("append", "s", input=event_lines(2, start=1))
    stdout, _ = finish(reader)
    events = json_lines(stdout)
    assert [(e["stream"], e["offset"], e["data"]["n"]) for e in events] == [
        ("s", 0, 0),
        ("s", 1, 1),
        ("s", 2, 2),
    ]


def test_ctrl_c_stops_a_follower_with_130_and_no_traceback(cli: Cli) -> None:
    cli.ok("append", "s", input=event_lines(1))
    tail = cli.popen("tail")
    assert tail.stdout is not None
    assert json.loads(tail.stdout.readline())["stream"] == "s"  # caught up, now waiting
    tail.send_signal(signal.SIGINT)
    _, stderr = tail.communicate(timeout=PATIENCE)
    assert (tail.returncode, stderr) == (130, "")


def test_a_reader_that_goes_away_ends_the_command_quietly(cli: Cli) -> None:
    cli.ok("append", "s", input=event_lines(5000))
    with cli.popen("read", "s") as reader:
        assert reader.stdout is not None and reader.stderr is not None
        reader.stdout.readline()
        reader.stdout.close()  # as `pgstreams read s | head -1` does
        stderr = reader.stderr.read()
        reader.wait(timeout=PATIENCE)
    assert (reader.returncode, stderr) == (141, "")


# ----------------------------------------------------------------------------- operating


def test_streams_lists_length_and_last_write(cli: Cli) -> None:
    cli.ok("append", "order-1", input=event_lines(3))
    cli.ok("append", "order-2", input=event_lines(1))
    cli.ok("append", "other", input=event_lines(1))
    listed = cli.ok("streams", "--prefix", "order-")
    assert [(s["stream"], s["length"], s["first_offset"], s["last_offset"]) for s in listed] == [
        ("order-1", 3, 0, 2),
        ("order-2", 1, 0, 0),
    ]
    assert datetime.fromisoformat(listed[0]["last_write"]).tzinfo is not None
    table = cli("streams", "--format", "table").stdout.splitlines()
    assert table[0].split()[:3] == ["stream", "length", "first"]
    assert [row.split()[0] for row in table[2:]] == ["order-1", "order-2", "other"]


async def test_groups_list_reset_and_delete(
    cli: Cli, pg_store: pgstreams.PostgresEventStore
) -> None:
    await pg_store.append_batch("s", [pgstreams.Event("T", {"n": n}) for n in range(5)])
    assert cli.ok("groups", "reset", "s", "billing", "2") == [
        {"stream": "s", "group": "billing", "committed_offset": 2}
    ]
    cli.ok("groups", "reset", "s", "live", "start")
    await pg_store.commit_position("indexer", 3)
    async with pg_store.subscribe("s", "live", "member-1"):
        groups = await asyncio.to_thread(cli.ok, "groups")
        table = await asyncio.to_thread(cli, "groups", "--format", "table")
    by_name = {g["group"]: g for g in groups}
    assert set(by_name) == {"billing", "live", "indexer"}
    billing = by_name["billing"]
    assert (billing["stream"], billing["committed_offset"], billing["lag"]) == ("s", 2, 3)
    assert billing["members"] == []
    assert [m["consumer_id"] for m in by_name["live"]["members"]] == ["member-1"]
    assert datetime.fromisoformat(by_name["live"]["members"][0]["last_heartbeat"])
    feed = by_name["indexer"]
    assert (feed["stream"], feed["committed_position"], feed["lag"]) == (None, 3, 2)
    assert "member-1" in table.stdout and "(feed)" in table.stdout

    assert [g["group"] for g in cli.ok("groups", "list", "s")] == ["billing", "live"]
    assert cli.ok("groups", "reset", "s", "billing", "end")[0]["committed_offset"] == 5
    past = cli("groups", "reset", "s", "billing", "9")
    assert past.returncode == 1
    assert "past the end" in assert_one_clean_error_line(past.stderr)

    assert cli.ok("groups", "delete", "s", "billing")[0]["deleted"] is True
    again = cli("groups", "delete", "s", "billing")
    assert again.returncode == 4
    assert "'billing'" in assert_one_clean_error_line(again.stderr)
    assert cli.ok("groups", "delete", "--feed", "indexer")[0]["stream"] is None
    assert await pg_store.get_committed_position("indexer") is None


def test_retention_set_list_apply_and_delete(cli: Cli) -> None:
    cli.ok("append", "audit-1", input=event_lines(10))
    cli.ok("groups", "reset", "audit-1", "archiver", "5")
    [policy] = cli.ok(
        "retention", "set", "audit-1", "--max-count", "3", "--respect-consumer-groups"
    )
    assert (policy["max_event_count"], policy["respect_consumer_groups"]) == (3, True)
    cli.ok("retention", "set", "*", "--max-age", "90d")
    policies = cli.ok("retention")
    assert [(p["stream_name"], p["max_age"], p["max_event_count"]) for p in policies] == [
        ("*", 90 * 86400.0, None),
        ("audit-1", None, 3),
    ]

    [report] = cli.ok("retention", "apply")
    assert (report["events_deleted"], report["dead_letters_deleted"]) == (5, 0)
    assert report["streams"] == [
        {
            "stream": "audit-1",
            "rule": "policy",
            "deleted": 5,
            "kept_for_consumers": 2,
            "waiting_groups": ["archiver"],
        }
    ]
    assert [e["offset"] for e in cli.ok("read", "audit-1")] == [5, 6, 7, 8, 9]

    assert cli.ok("retention", "delete", "audit-1")[0]["deleted"] is True
    missing = cli("retention", "delete", "audit-1")
    assert missing.returncode == 4
    assert_one_clean_error_line(missing.stderr)


def test_config_set_keeps_what_it_is_not_told_get_list_delete(cli: Cli) -> None:
    [first] = cli.ok(
        "config", "set", "emails", "--max-delivery-attempts", "3", "--retry-delay", "1s",
        "--backoff", "2", "--description", "mail", "--tag", "team=web",
    )  # fmt: skip
    dead_letters = first["dead_letter_queue"]
    assert (dead_letters["max_delivery_attempts"], dead_letters["retry_delay"]) == (3, 1.0)
    assert (dead_letters["enable_exponential_backoff"], dead_letters["backoff_multiplier"]) == (
        True,
        2.0,
    )
    assert (first["description"], first["tags"]) == ("mail", {"team": "web"})

    [second] = cli.ok("config", "set", "emails", "--batch-size", "50")
    assert second["performance"]["batch_size"] == 50
    assert second["dead_letter_queue"] == dead_letters and second["tags"] == {"team": "web"}
    assert cli.ok("config", "get", "emails") == [second]
    assert cli.ok("config") == [second]
    table = cli("config", "--format", "table").stdout.splitlines()
    assert table[2].split()[:4] == ["emails", "3", "1", "x2"]

    [replaced] = cli.ok("config", "set", "emails", "--replace", "--batch-size", "10")
    assert replaced["dead_letter_queue"]["max_delivery_attempts"] == 5
    assert replaced["description"] is None

    bad = cli("config", "set", "emails", "--backoff", "0.5")
    assert bad.returncode == 1
    assert "backoff_multiplier" in assert_one_clean_error_line(bad.stderr)

    assert cli.ok("config", "delete", "emails")[0]["deleted"] is True
    for args in (("config", "get", "emails"), ("config", "delete", "emails")):
        gone = cli(*args)
        assert gone.returncode == 4
        assert "no configuration" in assert_one_clean_error_line(gone.stderr)


def test_health_exit_codes_follow_the_status(cli: Cli) -> None:
    healthy = cli("health")
    assert healthy.returncode == 0, healthy.stderr
    [report] = json_lines(healthy.stdout)
    assert (report["status"], report["reasons"], report["error"]) == ("healthy", [], None)
    assert report["pool"]["max_size"] > 0

    cli.ok("append", "clicks", input=event_lines(10))
    cli.ok("groups", "reset", "clicks", "stats", "5")
    degraded = cli("health", "--lag-degraded", "3", "--lag-unhealthy", "100")
    assert degraded.returncode == 1
    [report] = json_lines(degraded.stdout)
    assert report["reasons"] == ["consumer group 'stats' is 5 event(s) behind on stream 'clicks'"]
    assert report["consumer_groups"][0]["status"] == "degraded"

    unhealthy = cli("health", "--lag-degraded", "2", "--lag-unhealthy", "5", "--format", "table")
    assert unhealthy.returncode == 2
    assert unhealthy.stdout.startswith("status: unhealthy\n")
    assert "clicks" in unhealthy.stdout


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_worker_handles_messages_until_a_signal(
    cli: Cli, tmp_path: Path, stop: signal.Signals
) -> None:
    (tmp_path / "handlers.py").write_text(
        textwrap.dedent(
            """
            async def handle(message):
                if message.data.get("fail"):
                    raise RuntimeError("planned failure")
                with open("handled.txt", "a") as log:
                    log.write(f"{message.data['n']}\\n")
            """
        )
    )
    cli.ok("config", "set", "jobs", "--max-delivery-attempts", "1")
    lines = event_lines(5, type="Job") + '{"type": "Job", "data": {"fail": true}}\n'
    cli.ok("enqueue", "jobs", input=lines)

    worker = cli.popen("worker", "jobs", "handlers:handle", "--concurrency", "3",
                       cwd=str(tmp_path))  # fmt: skip
    handled = tmp_path / "handled.txt"
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline and worker.poll() is None:
        if handled.exists() and len(handled.read_text().splitlines()) == 5:
            break
        time.sleep(0.05)
    assert sorted(int(n) for n in handled.read_text().split()) == [0, 1, 2, 3, 4]
    # The failing message (one delivery allowed) becomes a dead letter before the signal.
    while time.monotonic() < deadline and not cli.ok("dead-letters", "list", "jobs"):
        time.sleep(0.05)
    worker.send_signal(stop)
    stdout, stderr = finish(worker)
    assert json.loads(stdout) == {"handled": 5, "failed": 1, "extended": 0, "interrupted": 0}
    assert "planned failure" in stderr  # the handler's failure is logged

    assert cli("dequeue", "jobs").returncode == 4  # every message settled
    [letter] = cli.ok("dead-letters", "list", "jobs")
    assert (letter["data"], letter["reason"]) == ({"fail": True}, "max_deliveries")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv",
    [
        ("streams",),
        ("read", "s"),
        ("append", "s", "T", "{}"),
        ("enqueue", "q"),
        ("groups",),
        ("config", "get", "s"),
    ],
    ids=" ".join,
)
def test_a_wrong_database_is_one_line_without_password(pg_dsn: str, argv: tuple[str, ...]) -> None:
    settings = pgstreams.PostgresOptions(pg_dsn).settings
    dsn = (
        f"Host={settings.host};Port={settings.port};Username={settings.user};"
        f"Password={SECRET};Database=no_such_db_for_cli"
    )
    result = run(*argv, "--dsn", dsn, input=event_lines(1))
    assert result.returncode == 1
    line = assert_one_clean_error_line(result.stderr, secret=SECRET)
    assert "no_such_db_for_cli" in line
    assert SECRET not in result.stdout

    health = run("health", "--dsn", dsn)
    assert health.returncode == 2  # unreachable: unhealthy
    assert SECRET not in health.stdout + health.stderr


# ----------------------------------------------------------------------------- progress


def test_a_progress_bar_shows_on_a_terminal_and_never_in_the_output(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(event_lines(3000))
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        command("append", "ticks", "--file", str(path), "--batch-size", "100"),
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
        env=cli_env(cli.env),
    )
    os.close(follower)
    terminal: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            terminal.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    stdout, _ = process.communicate(timeout=PATIENCE * 3)
    reader.join(PATIENCE)
    os.close(leader)
    assert process.returncode == 0
    shown = b"".join(terminal).decode(errors="replace")
    assert "append: 100%" in shown and "line/s" in shown  # the count and the rate
    assert "<00:00" in shown  # the ETA
    assert "3.00k/3.00k" in shown
    written = json_lines(stdout)  # stdout holds the offsets only
    assert len(written) == 3000
    assert not any(mark in stdout for mark in BAR_MARKS)


def test_no_progress_bar_when_stderr_is_not_a_terminal(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(event_lines(3000))
    result = cli("append", "ticks", "--file", str(path), "--batch-size", "100")
    assert result.returncode == 0
    assert result.stderr == ""
    assert not any(mark in result.stdout for mark in BAR_MARKS)
    applied = cli("retention", "apply")
    assert (applied.returncode, applied.stderr) == (0, "")


# ----------------------------------------------------------------------------- schema, demo


def test_status_before_and_after_migrate(pg_dsn: str, cli: Cli) -> None:
    latest = load_migrations()[-1]
    before = cli("status")
    assert before.returncode == 0, before.stderr
    assert "version:  0" in before.stdout
    assert latest.file_name in before.stdout
    assert "PostgreSQL" in before.stdout
    assert f"schema={cli.schema}" in before.stdout

    migrated = cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema version {latest.version}" in migrated.stdout

    after = run("status", "--schema", cli.schema, env={"DATABASE_URL": pg_dsn})
    assert f"version:  {latest.version}" in after.stdout
    assert "pending:  none" in after.stdout
    # With a database to look at, --sql prints only what it still needs: nothing.
    assert "BEGIN;" not in cli("migrate", "--sql").stdout


def test_demo_runs_against_the_given_database(cli: Cli) -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stderr
    assert "refused, nothing written" in result.stdout
    assert "reason=nacked" in result.stdout
    assert f"schema={cli.schema}" in result.stderr  # says where, without a password
    # The realistic volume, and the closing table of what it did and how fast.
    assert "appended 100,000 events in batches of 1000" in result.stdout
    assert "holds this run's 100,004 events" in result.stdout
    assert "3 workers handled 3,000 messages; pending now: 0" in result.stdout
    table = result.stdout.split("== What it did, and how fast ==")[1]
    assert [line.split()[0] for line in table.strip().splitlines()] == [
        "append_batch(1000)",
        "read_all",
        "append",
        "3",
    ]
