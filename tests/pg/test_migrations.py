"""Migrations against a real server: fresh schema, idempotence, concurrent starts, broken
files, changed checksums, hand-recorded rows, missing rights, auto_migrate off."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import pgstreams
from pgstreams import DatabaseMigrator, Event, MigrationError, PostgresOptions, _core
from pgstreams.migrator import load_migrations
from support import drop_schema, run_sql

SEED_TABLES = {
    "events",
    "queue_events",
    "in_flight_events",
    "dead_letter_queue",
    "consumer_offsets",
    "retention_policies",
    "stream_configurations",
    "schema_version",
}


async def relations(dsn: str, schema: str) -> set[str]:
    rows = await run_sql(
        dsn,
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'v')",
        [schema],
    )
    return {r[0] for r in rows}


async def index_definitions(dsn: str, schema: str) -> list[str]:
    rows = await run_sql(dsn, "SELECT indexdef FROM pg_indexes WHERE schemaname = $1", [schema])
    return [r[0] for r in rows]


async def test_fresh_schema_gets_the_seed_tables_and_indexes(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    migrator = DatabaseMigrator(pg_options)
    assert await migrator.get_current_version() == 0
    applied = await migrator.migrate()
    assert applied == [m.version for m in load_migrations()] == [1, 3, 4, 5, 6]
    assert await relations(pg_dsn, pg_options.schema_name) >= SEED_TABLES
    indexes = " | ".join(await index_definitions(pg_dsn, pg_options.schema_name))
    for needle in (
        "gin (data jsonb_path_ops)",  # event data
        '(correlation_id, "position")',  # correlation id
        '(event_type, "position")',  # event type
        "brin (created_at)",  # time
        "(stream_name, stream_offset)",  # stream lookups
    ):
        assert needle in indexes
    assert await migrator.get_current_version() == 6


async def test_second_migrate_applies_nothing(pg_options: PostgresOptions) -> None:
    migrator = DatabaseMigrator(pg_options)
    await migrator.migrate()
    assert await migrator.migrate() == []
    assert await migrator.pending() == []


async def test_schema_version_rows_carry_description_time_and_checksum(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    await DatabaseMigrator(pg_options).migrate()
    rows = await run_sql(
        pg_dsn,
        f"SELECT version, description, applied_at IS NOT NULL, length(checksum) "
        f'FROM "{pg_options.schema_name}".schema_version ORDER BY version',
    )
    assert rows == [
        (1, "Initial Schema", True, 64),
        (3, "Retention Policies", True, 64),
        (4, "Stream Configuration", True, 64),
        (5, "Transactions", True, 64),
        (6, "Consumer Groups", True, 64),
    ]


async def test_eight_migrators_at_once_apply_each_migration_exactly_once(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    migrators = [DatabaseMigrator(pg_options) for _ in range(8)]
    results = await asyncio.gather(*(m.migrate() for m in migrators))
    applied = sorted(v for result in results for v in result)
    assert applied == [1, 3, 4, 5, 6]
    assert sum(1 for r in results if r) == 1  # one process did all the work
    rows = await run_sql(pg_dsn, f'SELECT count(*) FROM "{pg_options.schema_name}".schema_version')
    assert rows == [(5,)]


def write_migrations(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


async def test_broken_migration_rolls_back_and_names_the_file(
    pg_options: PostgresOptions, pg_dsn: str, tmp_path: Path
) -> None:
    folder = write_migrations(
        tmp_path / "m",
        {
            "001_Good.sql": "CREATE TABLE {schema}.good (id int);",
            "002_Broken.sql": "CREATE TABLE {schema}.half (id int);\nSELECT no_such_column FROM {schema}.good;",
            "005_Later.sql": "CREATE TABLE {schema}.later (id int);",
        },
    )
    migrator = DatabaseMigrator(pg_options, migrations_dir=folder)
    with pytest.raises(MigrationError) as raised:
        await migrator.migrate()
    message = str(raised.value)
    assert "002_Broken.sql" in message
    assert "no_such_column" in message
    tables = await relations(pg_dsn, pg_options.schema_name)
    assert "good" in tables
    assert "half" not in tables  # the failed migration left nothing behind
    assert "later" not in tables  # and nothing after it ran
    assert await migrator.get_current_version() == 1


async def test_gaps_in_numbering_are_applied_in_numeric_order(
    pg_options: PostgresOptions, tmp_path: Path
) -> None:
    folder = write_migrations(
        tmp_path / "m",
        {
            "010_Third.sql": "INSERT INTO {schema}.log VALUES (10);",
            "002_Second.sql": "INSERT INTO {schema}.log VALUES (2);",
            "001_First.sql": "CREATE TABLE {schema}.log (v int);",
        },
    )
    assert await DatabaseMigrator(pg_options, migrations_dir=folder).migrate() == [1, 2, 10]


async def test_changed_file_is_reported_not_rerun(
    pg_options: PostgresOptions, tmp_path: Path
) -> None:
    folder = write_migrations(tmp_path / "m", {"001_First.sql": "CREATE TABLE {schema}.a (v int);"})
    await DatabaseMigrator(pg_options, migrations_dir=folder).migrate()
    (folder / "001_First.sql").write_text("CREATE TABLE {schema}.a (v bigint);")
    with pytest.raises(MigrationError, match=r"001_First\.sql"):
        await DatabaseMigrator(pg_options, migrations_dir=folder).migrate()


async def test_hand_recorded_row_is_accepted(pg_options: PostgresOptions, pg_dsn: str) -> None:
    """The seed's repair SQL, as written, marks migration 3 as applied."""
    migrator = DatabaseMigrator(pg_options)
    migrations = {m.version: m for m in load_migrations()}
    # Apply 001 only, as an earlier release would have.
    schema = pg_options.schema_name
    await run_sql(pg_dsn, f'CREATE SCHEMA "{schema}"')
    await run_sql(
        pg_dsn,
        f'CREATE TABLE "{schema}".schema_version (version integer PRIMARY KEY, '
        "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), checksum text)",
    )
    session_sql = migrations[1].sql(schema)
    await pgstreams_execute(pg_dsn, session_sql)
    await run_sql(
        pg_dsn,
        f'INSERT INTO "{schema}".schema_version (version, description, checksum) '
        "VALUES (1, 'Initial Schema', $1)",
        [migrations[1].checksum],
    )
    # The seed's manual repair, verbatim but for the schema name.
    await run_sql(
        pg_dsn,
        f"INSERT INTO \"{schema}\".schema_version (version, description) VALUES (3, 'Retention Policies')",
    )
    rows = await run_sql(pg_dsn, f'SELECT * FROM "{schema}".schema_version ORDER BY version')
    assert [r[0] for r in rows] == [1, 3]
    assert [m.version for m in await migrator.pending()] == [4, 5, 6]
    assert await migrator.migrate() == [4, 5, 6]


async def pgstreams_execute(dsn: str, sql: str) -> None:
    session = await pgstreams._core.Session.open(PostgresOptions(dsn).to_core_config(), None)
    try:
        await session.execute(sql)
    finally:
        await session.close()


async def test_seed_repair_sql_works_verbatim_on_the_default_schema(pg_dsn: str) -> None:
    """``SELECT * FROM event_streaming.schema_version ORDER BY version`` and the seed's INSERT
    run as written against the default schema."""
    schema = "event_streaming"
    await drop_schema(pg_dsn, schema)
    try:
        migrator = DatabaseMigrator(PostgresOptions(pg_dsn))
        await migrator.migrate()
        await run_sql(pg_dsn, "DELETE FROM event_streaming.schema_version WHERE version = 3")
        await run_sql(
            pg_dsn,
            "INSERT INTO event_streaming.schema_version (version, description) "
            "VALUES (3, 'Retention Policies')",
        )
        rows = await run_sql(
            pg_dsn, "SELECT * FROM event_streaming.schema_version ORDER BY version"
        )
        assert [(r[0], r[1]) for r in rows] == [
            (1, "Initial Schema"),
            (3, "Retention Policies"),
            (4, "Stream Configuration"),
            (5, "Transactions"),
            (6, "Consumer Groups"),
        ]
        assert rows[1][3] is None  # no checksum: recorded by hand, and accepted
        assert await migrator.migrate() == []
    finally:
        await drop_schema(pg_dsn, schema)


async def test_role_without_create_rights_gets_a_clear_error(pg_dsn: str, schema_name: str) -> None:
    role = f"pgstreams_limited_{uuid.uuid4().hex[:8]}"
    await run_sql(pg_dsn, f"CREATE ROLE {role} LOGIN")
    try:
        await run_sql(pg_dsn, f"REVOKE CREATE ON DATABASE postgres FROM {role}")
        options = PostgresOptions(pg_dsn, schema_name=schema_name).with_overrides()
        limited = PostgresOptions(
            options.connection_string.replace("postgres@", f"{role}@", 1),
            schema_name=schema_name,
        )
        with pytest.raises(MigrationError, match=role) as raised:
            await DatabaseMigrator(limited).migrate()
        assert "CREATE" in str(raised.value) or "rights" in str(raised.value)
    finally:
        await run_sql(pg_dsn, f"DROP ROLE {role}")


async def test_connect_with_auto_migrate_off_names_the_pending_migrations(
    pg_options: PostgresOptions,
) -> None:
    with pytest.raises(MigrationError) as raised:
        await pgstreams.connect(pg_options, auto_migrate=False)
    for name in (
        "001_InitialSchema.sql",
        "003_RetentionPolicies.sql",
        "004_StreamConfiguration.sql",
    ):
        assert name in str(raised.value)
    await DatabaseMigrator(pg_options).migrate()
    async with pgstreams.connect(pg_options, auto_migrate=False) as store:
        assert await store.get_stream_version("x") == -1


async def test_script_for_a_dba_applies_cleanly(pg_options: PostgresOptions) -> None:
    migrator = DatabaseMigrator(pg_options)
    await pgstreams_execute(pg_options.connection_string, migrator.script())
    assert await migrator.get_current_version() == 6
    assert await migrator.pending() == []


async def test_without_event_data_index_the_gin_index_is_dropped(
    pg_options: PostgresOptions, pg_dsn: str
) -> None:
    await DatabaseMigrator(pg_options.with_overrides(event_data_index=False)).migrate()
    assert not any("gin" in d for d in await index_definitions(pg_dsn, pg_options.schema_name))
    await DatabaseMigrator(pg_options).migrate()
    assert any("gin" in d for d in await index_definitions(pg_dsn, pg_options.schema_name))


@pytest.mark.parametrize(
    "bad", ['a"b', "with space", "", "x" * 64, "pg_catalog", "1abc", "drop table x;--"]
)
def test_bad_schema_names_are_refused(pg_dsn: str, bad: str) -> None:
    with pytest.raises(pgstreams.ConfigurationError, match="schema_name"):
        PostgresOptions(pg_dsn, schema_name=bad)


# ---------------------------------------------------------------- connect() does no DDL


async def test_a_least_privilege_role_connects_to_a_migrated_schema(
    pg_dsn: str, pg_options: PostgresOptions
) -> None:
    """A role with only USAGE, SELECT/INSERT/UPDATE/DELETE and EXECUTE (what a DBA grants an
    application) connects with the default auto_migrate=True and works: nothing is pending,
    so connect() creates nothing."""
    await DatabaseMigrator(pg_options).migrate()
    schema = f'"{pg_options.schema_name}"'
    role = f"pgstreams_app_{uuid.uuid4().hex[:8]}"
    await run_sql(pg_dsn, f"CREATE ROLE {role} LOGIN")
    try:
        for grant in (
            f"REVOKE CREATE ON DATABASE postgres FROM {role}",
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {role}",
        ):
            await run_sql(pg_dsn, grant)
        dsn = pg_options.connection_string.replace("postgres@", f"{role}@", 1)
        async with pgstreams.connect(dsn, schema_name=pg_options.schema_name) as store:
            assert await store.append_batch("s", [Event("E", {}), Event("E", {})]) == [0, 1]
            await store.enqueue("q", Event("J", {}))
            message = await store.dequeue("q", "c")
            assert message is not None and await store.acknowledge(message)
    finally:
        await run_sql(pg_dsn, f"DROP OWNED BY {role}")
        await run_sql(pg_dsn, f"DROP ROLE {role}")


async def test_connect_does_not_wait_behind_an_open_append(pg_options: PostgresOptions) -> None:
    """A process starting while another holds an append open must not queue DDL on events
    behind it (which would then block every append behind the DDL)."""
    async with pgstreams.connect(pg_options) as store:
        await store.append("s", Event("E", {}))
    session = await _core.Session.open(pg_options.to_core_config(), None)
    try:
        await session.execute("BEGIN")
        await session.query(
            f'SELECT * FROM "{pg_options.schema_name}".append_events($1, NULL, $2, $3, $4, $5, $6, $7)',
            ["held", [uuid.uuid4()], ["E"], [{}], [{}], [None], [None]],
        )
        # The bound only keeps a regression from hanging the suite; it is no speed claim.
        other = await asyncio.wait_for(pgstreams.connect(pg_options), timeout=20)
        await other.close()
    finally:
        await session.execute("ROLLBACK")
        await session.close()


async def test_connect_leaves_the_event_data_index_to_an_explicit_migrate(
    pg_dsn: str, pg_options: PostgresOptions
) -> None:
    """The event_data_index switch acts in an explicit migrate only; on a table with rows it
    builds the index concurrently, so the index is valid and appends were never blocked."""
    async with pgstreams.connect(pg_options) as store:  # a fresh schema: the option applies
        await store.append_batch("s", [Event("E", {"i": i}) for i in range(50)])
    gin = lambda: index_definitions(pg_dsn, pg_options.schema_name)  # noqa: E731
    assert any("gin" in d for d in await gin())

    without = pg_options.with_overrides(event_data_index=False)
    async with pgstreams.connect(without):
        pass
    assert any("gin" in d for d in await gin()), "connect() must not drop the index"
    await DatabaseMigrator(without).migrate()
    assert not any("gin" in d for d in await gin())

    async with pgstreams.connect(pg_options):
        pass
    assert not any("gin" in d for d in await gin()), "connect() must not build the index"
    await DatabaseMigrator(pg_options).migrate()
    valid = await run_sql(
        pg_dsn,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = "
        "'events_data_idx'",
        [pg_options.schema_name],
    )
    assert valid == [(True,)]
