"""Versioned SQL migrations: ordered, one transaction each, recorded with a checksum, and
applied exactly once even when many processes start at the same moment.

The SQL files (``migrations/NNN_Name.sql``) are compiled into the extension; a directory can
be given instead (tests use one to prove that a broken file rolls back). ``{schema}`` in a
file stands for the configured schema, validated and double-quoted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import _core
from .errors import DatabaseError, MigrationError
from .options import PostgresOptions

__all__ = ["AppliedMigration", "DatabaseMigrator", "Migration", "load_migrations"]

log = logging.getLogger("pgstreams")

_FILE_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_]+)\.sql$")
# Advisory lock namespaces ("pgsm", "pgsa"): the second key is a hash of the schema name, so
# stores in different schemas of one database neither block nor wait for each other.
MIGRATION_LOCK_CLASS = 0x7067736D
APPEND_LOCK_CLASS = 0x70677361
# How long a process waits for another one that is migrating (bounded, and exempt from
# command_timeout: a migration that builds an index on a large table takes what it takes).
DEFAULT_LOCK_WAIT_SECONDS = 300.0


def schema_lock_key(schema_name: str) -> int:
    """A stable signed 32-bit key for the schema (crc32 is the same in every process)."""
    value = zlib.crc32(schema_name.encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def _describe(name: str) -> str:
    """``RetentionPolicies`` -> ``Retention Policies`` (the seed's descriptions)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ")


@dataclass(frozen=True)
class Migration:
    version: int
    file_name: str
    description: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    def sql(self, schema_name: str) -> str:
        # str.replace, not str.format: the SQL itself is full of braces ('{}'::jsonb).
        return self.template.replace("{schema}", f'"{schema_name}"').replace(
            "{append_lock_key}", f"{APPEND_LOCK_CLASS}, {schema_lock_key(schema_name)}"
        )


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    description: str
    checksum: str | None


def load_migrations(directory: Path | str | None = None) -> list[Migration]:
    """The migrations in version order: the bundled ones, or those of ``directory``."""
    if directory is None:
        files = list(_core.BUNDLED_MIGRATIONS)
    else:
        files = [(p.name, p.read_text()) for p in Path(directory).glob("*.sql")]
    migrations: dict[int, Migration] = {}
    for file_name, text in files:
        match = _FILE_NAME.match(file_name)
        if not match:
            raise MigrationError(f"migration file {file_name!r} is not named NNN_Name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(
                f"migrations {migrations[version].file_name!r} and {file_name!r} share version {version}"
            )
        migrations[version] = Migration(version, file_name, _describe(match.group(2)), text)
    return [migrations[v] for v in sorted(migrations)]


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DatabaseMigrator:
    """Applies the migrations to the schema of ``options``.

    ``migrate()`` returns the versions it applied (empty when up to date);
    ``get_current_version()`` the highest applied version (0 for none); ``pending()`` what
    ``migrate()`` would apply.
    """

    def __init__(
        self,
        options: PostgresOptions | str,
        *,
        migrations_dir: Path | str | None = None,
        lock_wait: float = DEFAULT_LOCK_WAIT_SECONDS,
    ) -> None:
        self.options = PostgresOptions.coerce(options)
        self.migrations = load_migrations(migrations_dir)
        self.lock_wait = lock_wait

    @property
    def _schema(self) -> str:
        return f'"{self.options.schema_name}"'

    async def _open(self) -> _core.Session:
        # No statement timeout: command_timeout is for store calls, not for building indexes.
        return await _core.Session.open(self.options.to_core_config(), None)

    async def server_info(self) -> dict[str, str]:
        """``{"server_version", "database", "user"}`` of the server migrations go to."""
        session = await self._open()
        try:
            rows = await session.query(
                "SELECT current_setting('server_version'), current_database()::text, current_user::text"
            )
        finally:
            await session.close()
        version, database, user = rows[0]
        return {"server_version": version, "database": database, "user": user}

    async def applied(self) -> list[AppliedMigration]:
        session = await self._open()
        try:
            return await self._applied(session)
        finally:
            await session.close()

    async def _applied(self, session: _core.Session) -> list[AppliedMigration]:
        rows = await session.query(
            "SELECT to_regclass($1)::text", [f"{self._schema}.schema_version"]
        )
        if rows[0][0] is None:
            return []
        rows = await session.query(
            f"SELECT version, description, checksum FROM {self._schema}.schema_version ORDER BY version"
        )
        return [AppliedMigration(int(v), str(d), c) for v, d, c in rows]

    async def get_current_version(self) -> int:
        applied = await self.applied()
        return max((m.version for m in applied), default=0)

    async def pending(self) -> list[Migration]:
        applied = await self.applied()
        self._check_unchanged(applied)
        done = {m.version for m in applied}
        return [m for m in self.migrations if m.version not in done]

    def _check_unchanged(self, applied: list[AppliedMigration]) -> None:
        """A file changed after it was applied is an error, never a silent re-run. A row
        without a checksum was recorded by hand (the seed's repair SQL) and is trusted."""
        known = {m.version: m for m in self.migrations}
        changed = [
            known[a.version].file_name
            for a in applied
            if a.checksum is not None
            and a.version in known
            and a.checksum != known[a.version].checksum
        ]
        if changed:
            raise MigrationError(
                f"applied migrations have changed since they were applied: {', '.join(changed)} "
                f"(schema {self._schema}); restore the original files or repair schema_version by hand"
            )

    def _bootstrap_sql(self) -> str:
        return (
            f"CREATE SCHEMA IF NOT EXISTS {self._schema};\n"
            f"CREATE TABLE IF NOT EXISTS {self._schema}.schema_version (\n"
            "    version integer PRIMARY KEY,\n"
            "    description text NOT NULL,\n"
            "    applied_at timestamptz NOT NULL DEFAULT now(),\n"
            "    checksum text\n"
            ");\n"
        )

    def _record_sql(self, migration: Migration) -> str:
        return (
            f"INSERT INTO {self._schema}.schema_version (version, description, checksum) "
            f"VALUES ({migration.version}, {_sql_literal(migration.description)}, "
            f"{_sql_literal(migration.checksum)});\n"
        )

    def _index_sql(self) -> str:
        """Keeps the GIN index on event data in line with ``event_data_index``."""
        if self.options.event_data_index:
            change = (
                f"CREATE INDEX IF NOT EXISTS events_data_idx ON {self._schema}.events "
                "USING gin (data jsonb_path_ops)"
            )
        else:
            change = f"DROP INDEX IF EXISTS {self._schema}.events_data_idx"
        return (
            "DO $pgstreams$ BEGIN "
            f"IF to_regclass('{self._schema}.events') IS NOT NULL THEN EXECUTE "
            f"{_sql_literal(change)}; END IF; END $pgstreams$;\n"
        )

    def script(self, migrations: list[Migration] | None = None) -> str:
        """The SQL a DBA runs by hand to apply ``migrations`` (default: all), each in its own
        transaction together with its schema_version row."""
        chosen = self.migrations if migrations is None else migrations
        parts = [
            f"-- pgstreams migrations for schema {self._schema}\n",
            self._bootstrap_sql(),
        ]
        for migration in chosen:
            parts.append(f"\n-- {migration.file_name}\nBEGIN;\n")
            parts.append(migration.sql(self.options.schema_name).rstrip() + "\n")
            parts.append(self._record_sql(migration))
            parts.append("COMMIT;\n")
        if not self.options.event_data_index:
            parts.append("\n" + self._index_sql())
        return "".join(parts)

    async def migrate(self) -> list[int]:
        """Applies the pending migrations in version order; returns their versions."""
        session = await self._open()
        try:
            await self._lock(session)
            await self._run(session, "creating the schema", self._bootstrap_sql())
            applied = await self._applied(session)
            self._check_unchanged(applied)
            done = {m.version for m in applied}
            versions = []
            for migration in self.migrations:
                if migration.version in done:
                    continue
                # One simple-protocol message with several statements runs as one implicit
                # transaction: the migration and its schema_version row commit together or
                # not at all.
                await self._run(
                    session,
                    f"migration {migration.file_name} failed and was rolled back",
                    migration.sql(self.options.schema_name) + ";\n" + self._record_sql(migration),
                )
                log.info(
                    "pgstreams: applied migration %s to schema %s",
                    migration.file_name,
                    self._schema,
                )
                versions.append(migration.version)
            await self._run(session, "adjusting the event data index", self._index_sql())
            return versions
        finally:
            await session.close()

    async def _lock(self, session: _core.Session) -> None:
        """Waits (bounded) for any other process migrating this schema."""
        millis = max(1, int(self.lock_wait * 1000))
        await session.execute(f"SET lock_timeout = {millis}")
        try:
            await session.query(
                "SELECT pg_advisory_lock($1, $2)",
                [MIGRATION_LOCK_CLASS, schema_lock_key(self.options.schema_name)],
            )
        except DatabaseError as error:
            if error.sqlstate == "55P03":
                raise MigrationError(
                    f"gave up after {self.lock_wait:g} s waiting for another process that is "
                    f"migrating schema {self._schema}"
                ) from error
            raise
        await session.execute("SET lock_timeout = 0")

    async def _run(self, session: _core.Session, what: str, sql: str) -> None:
        try:
            await session.execute(sql)
        except DatabaseError as error:
            if error.sqlstate == "42501":
                raise MigrationError(
                    f"{what}: the role {self.options.to_core_config()['user']!r} lacks the rights "
                    f"to create objects in schema {self._schema} ({error}); grant it CREATE, or "
                    "have a DBA run the output of `pgstreams migrate --sql`"
                ) from error
            raise MigrationError(f"{what}: {error}") from error
