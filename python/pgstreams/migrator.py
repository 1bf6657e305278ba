"""Versioned SQL migrations: ordered, one transaction each, recorded with a checksum, and
applied exactly once even when many processes start at the same moment.

The SQL files (``migrations/NNN_Name.sql``) are compiled into the extension; a directory can
be given instead (tests use one to prove that a broken file rolls back). ``{schema}`` in a
file stands for the configured schema, validated and double-quoted; ``{append_lock_key}`` for
the schema's global append lock; ``{notify_channel}`` for the schema's notification channel.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import _core
from .durations import MAX_STATEMENT_TIMEOUT_SECONDS
from .errors import DatabaseError, MigrationError
from .options import PostgresOptions
from .validation import check_timeout

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
        return (
            self.template.replace("{schema}", f'"{schema_name}"')
            .replace("{append_lock_key}", f"{APPEND_LOCK_CLASS}, {schema_lock_key(schema_name)}")
            .replace("{notify_channel}", _core.notify_channel(schema_name))
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
        self.lock_wait = check_timeout(
            lock_wait, "lock_wait", maximum=MAX_STATEMENT_TIMEOUT_SECONDS
        )

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
            version, database, user = await session.ping()
        finally:
            await session.close()
        return {"server_version": version, "database": database, "user": user}

    async def applied(self) -> list[AppliedMigration]:
        session = await self._open()
        try:
            return await self._applied(session)
        finally:
            await session.close()

    async def _applied(self, session: _core.Session) -> list[AppliedMigration]:
        rows = await session.applied_migrations(self.options.schema_name)
        return [AppliedMigration(*row) for row in rows]

    async def get_current_version(self) -> int:
        applied = await self.applied()
        return max((m.version for m in applied), default=0)

    async def pending(self) -> list[Migration]:
        return self.pending_of(await self.applied())

    def pending_of(self, applied: list[AppliedMigration]) -> list[Migration]:
        """What ``migrate()`` would apply to a schema where ``applied`` are; an applied file
        changed since is an error (``MigrationError``)."""
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

    def _record_sql(self, migration: Migration) -> str:
        return _core.migration_record_sql(
            self.options.schema_name, migration.version, migration.description, migration.checksum
        )

    def script(self, migrations: list[Migration] | None = None) -> str:
        """The SQL a DBA runs by hand to apply ``migrations`` (default: all), each in its own
        transaction together with its schema_version row."""
        chosen = self.migrations if migrations is None else migrations
        parts = [
            f"-- pgstreams migrations for schema {self._schema}\n",
            _core.migration_bootstrap_sql(self.options.schema_name),
        ]
        for migration in chosen:
            parts.append(f"\n-- {migration.file_name}\nBEGIN;\n")
            parts.append(migration.sql(self.options.schema_name).rstrip() + "\n")
            parts.append(self._record_sql(migration))
            parts.append("COMMIT;\n")
        if not self.options.event_data_index:
            index = _core.event_data_index_sql(self.options.schema_name, False, False)
            parts.append(f"\n{index};\n")
        return "".join(parts)

    async def migrate(self, *, adjust_event_data_index: bool = True) -> list[int]:
        """Applies the pending migrations in version order; returns their versions.

        Then, unless ``adjust_event_data_index`` is False, brings the GIN index on event data
        in line with ``event_data_index`` (building or dropping it concurrently on a table
        that has rows, so appends go on). ``connect()`` passes False: a process start never
        touches an index of a live table; a fresh schema gets the option applied anyway."""
        session = await self._open()
        try:
            await self._lock(session)
            await self._run(
                session,
                "creating the schema",
                _core.migration_bootstrap_sql(self.options.schema_name),
            )
            versions = []
            for migration in self.pending_of(await self._applied(session)):
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
            if adjust_event_data_index or 1 in versions:
                await self._adjust_event_data_index(session)
            return versions
        finally:
            await session.close()

    async def _adjust_event_data_index(self, session: _core.Session) -> None:
        """Builds or drops the GIN index on event data as ``event_data_index`` says."""
        schema = self.options.schema_name
        state = await session.event_data_index_state(schema)
        if state is None:
            return
        exists, valid, has_rows = state
        wanted = self.options.event_data_index
        if exists == wanted and (valid or not wanted):
            return
        if exists and wanted and not valid:
            # A concurrent build that failed leaves an invalid index behind: drop it first.
            await self._run(
                session,
                "dropping an invalid event data index",
                _core.event_data_index_sql(schema, False, has_rows),
            )
        if has_rows:
            log.info(
                "pgstreams: %s the GIN index on event data of schema %s concurrently; "
                "appends go on meanwhile",
                "building" if wanted else "dropping",
                self._schema,
            )
        await self._run(
            session,
            "adjusting the event data index",
            _core.event_data_index_sql(schema, wanted, has_rows),
        )

    async def _lock(self, session: _core.Session) -> None:
        """Waits (bounded) for any other process migrating this schema."""
        try:
            await session.lock_migrations(
                MIGRATION_LOCK_CLASS, schema_lock_key(self.options.schema_name), self.lock_wait
            )
        except DatabaseError as error:
            if error.sqlstate == "55P03":
                raise MigrationError(
                    f"gave up after {self.lock_wait:g} s waiting for another process that is "
                    f"migrating schema {self._schema}"
                ) from error
            raise

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
