"""``pgstreams.eventsourcing`` on ``pgstreams.InMemoryEventStore`` (``PGSTREAMS_IN_MEMORY=y``):
the eventsourcing library's own recorder, factory and application test cases, and ours."""

from __future__ import annotations

import eventsourcing_cases as cases


class TestAggregateRecorder(cases.InMemoryStore, cases.AggregateRecorderCase):
    pass


class TestApplicationRecorder(cases.InMemoryStore, cases.ApplicationRecorderCase):
    pass


class TestNonInterleavingNotificationIds(cases.InMemoryStore, cases.NonInterleavingCase):
    pass


class TestTrackingRecorder(cases.InMemoryStore, cases.TrackingRecorderCase):
    pass


class TestProcessRecorder(cases.InMemoryStore, cases.ProcessRecorderCase):
    pass


class TestFactory(cases.InMemoryStore, cases.FactoryCase):
    pass


class TestExampleApplication(cases.InMemoryStore, cases.ExampleApplicationCase):
    pass


class TestMapping(cases.InMemoryStore, cases.MappingCase):
    pass


class TestTracking(cases.InMemoryStore, cases.TrackingCase):
    pass


class TestFactorySettings(cases.InMemoryStore, cases.FactorySettingsCase):
    pass


class TestApplications(cases.InMemoryStore, cases.ApplicationsCase):
    pass
