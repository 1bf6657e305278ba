"""``pgstreams.eventsourcing`` on PostgreSQL (``PGSTREAMS_DSN``, a schema per test):
the eventsourcing library's own recorder, factory and application test cases, and ours."""

from __future__ import annotations

import eventsourcing_cases as cases
import pytest
from eventsourcing.persistence import IntegrityError, ProgrammingError, Tracking

from pgstreams import PostgresEventStore
from pgstreams.eventsourcing import PgStreamsTrackingRecorder


class TestAggregateRecorder(cases.PostgresStore, cases.AggregateRecorderCase):
    pass


class TestApplicationRecorder(cases.PostgresStore, cases.ApplicationRecorderCase):
    pass


class TestNonInterleavingNotificationIds(cases.PostgresStore, cases.NonInterleavingCase):
    pass


class TestTrackingRecorder(cases.PostgresStore, cases.TrackingRecorderCase):
    pass


class TestProcessRecorder(cases.PostgresStore, cases.ProcessRecorderCase):
    pass


class TestFactory(cases.PostgresStore, cases.FactoryCase):
    pass


class TestExampleApplication(cases.PostgresStore, cases.ExampleApplicationCase):
    pass


class TestMapping(cases.PostgresStore, cases.MappingCase):
    pass


class TestTracking(cases.PostgresStore, cases.TrackingCase):
    pass


class TestFactorySettings(cases.PostgresStore, cases.FactorySettingsCase):
    pass


class TestApplications(cases.PostgresStore, cases.ApplicationsCase):
    pass


class TestPostgresOnly(cases.PostgresStore):
    """What only a database has: the tracking table."""

    def test_without_create_table_the_tracking_table_is_missing(self) -> None:
        factory = self.new_factory(CREATE_TABLE="no")
        recorder = factory.tracking_recorder()
        with pytest.raises(ProgrammingError):
            recorder.max_tracking_id("upstream")

        self.new_factory().tracking_recorder()  # CREATE_TABLE defaults to yes
        assert recorder.max_tracking_id("upstream") is None

    def test_a_view_updates_its_table_and_its_tracking_in_one_transaction(self) -> None:
        factory = self.new_factory()
        view = factory.tracking_recorder(CountingView)
        view.create_view_table()

        view.count(Tracking("upstream", 1))
        view.count(Tracking("upstream", 2))
        with pytest.raises(IntegrityError):
            view.count(Tracking("upstream", 2))  # processed already: nothing counted

        assert view.counted() == 2
        assert view.max_tracking_id("upstream") == 2


class CountingView(PgStreamsTrackingRecorder):
    """A materialized view as eventsourcing's projections use them: a table of its own,
    updated in the transaction that records how far it got."""

    def create_view_table(self) -> None:
        async def create() -> None:
            async with self.datastore.store.transaction() as tx:
                await tx.execute(f"CREATE TABLE {self.table} (n bigint NOT NULL)")
                await tx.execute(f"INSERT INTO {self.table} VALUES (0)")

        self.datastore.run(create())

    @property
    def table(self) -> str:
        store = self.datastore.store
        assert isinstance(store, PostgresEventStore)
        return f'"{store.options.schema_name}".counted'

    def count(self, tracking: Tracking) -> None:
        async def count() -> None:
            async with self.datastore.store.transaction() as tx:
                await tx.execute(f"UPDATE {self.table} SET n = n + 1")
                await self.insert_tracking_row(tx, tracking)

        self.datastore.run(count())

    def counted(self) -> int:
        async def read() -> int:
            async with self.datastore.store.transaction() as tx:
                rows = await tx.fetch(f"SELECT n FROM {self.table}")
            return int(rows[0][0])

        return self.datastore.run(read())
