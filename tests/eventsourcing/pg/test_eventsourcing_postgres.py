"""``pgstreams.eventsourcing`` on PostgreSQL (``PGSTREAMS_DSN``, a schema per test):
the eventsourcing library's own recorder, factory and application test cases, and ours."""

from __future__ import annotations

import eventsourcing_cases as cases
import pytest
from eventsourcing.persistence import ProgrammingError


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
