"""The test cases of ``pgstreams.eventsourcing``, written once for both stores.

Each case is a ``unittest.TestCase`` mixin without a store; a test module makes it concrete by
putting a store kind first: ``class TestX(InMemoryStore, cases.XCase)`` or
``class TestX(PostgresStore, cases.XCase)``. The store kind sets the environment
(``PERSISTENCE_MODULE=pgstreams.eventsourcing`` and the store's settings, also in
``os.environ`` for the applications that read it there) and makes datastores.

The eventsourcing library's own shared test cases (``eventsourcing.tests``) are subclassed here
and only here: pytest collects every ``TestCase`` subclass in a test module, abstract ones too,
so test modules reach these through the module (``cases.XCase``), never by importing the names.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import threading
import uuid
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from unittest import TestCase

import pytest
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, DomainEventProtocol, event
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    InterfaceError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.projection import EventSourcedProjection, EventSourcedProjectionRunner
from eventsourcing.system import ProcessApplication, SingleThreadedRunner, System
from eventsourcing.tests.application import ExampleApplicationTestCase
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment, get_topic

import pgstreams
from pgstreams.eventsourcing import (
    PgStreamsAggregateRecorder,
    PgStreamsApplicationRecorder,
    PgStreamsDatastore,
    PgStreamsFactory,
    PgStreamsProcessRecorder,
    PgStreamsTrackingRecorder,
)
from support import PATIENCE, drop_schema

PERSISTENCE_MODULE = "pgstreams.eventsourcing"


# ---------------------------------------------------------------------------------- stores


class StoreKind(TestCase):
    """What a case needs of its store: ``settings`` (the environment selecting it) and
    ``new_datastore()`` (a datastore on it, closed after the test)."""

    settings: dict[str, str]

    def new_factory(self, **more: str) -> PgStreamsFactory:
        factory = PgStreamsFactory(Environment(env={**self.settings, **more}))
        self.addCleanup(factory.close)
        return factory

    def new_datastore(self) -> PgStreamsDatastore:
        return self.new_factory().datastore


class InMemoryStore(StoreKind):
    """A ``pgstreams.InMemoryEventStore`` per datastore."""

    @pytest.fixture(autouse=True)
    def _in_memory_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings = {"PERSISTENCE_MODULE": PERSISTENCE_MODULE, "PGSTREAMS_IN_MEMORY": "y"}
        for key, value in self.settings.items():
            monkeypatch.setenv(key, value)


class PostgresStore(StoreKind):
    """The suite's PostgreSQL server, a schema of its own per test (dropped after)."""

    @pytest.fixture(autouse=True)
    def _postgres_settings(self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        schema = f"t_{uuid.uuid4().hex[:16]}"
        self.settings = {
            "PERSISTENCE_MODULE": PERSISTENCE_MODULE,
            "PGSTREAMS_DSN": pg_dsn,
            "PGSTREAMS_SCHEMA": schema,
        }
        for key, value in self.settings.items():
            monkeypatch.setenv(key, value)
        yield
        # The shared cases never close some of their applications: their stores close when
        # collected, which is now, before the schema goes.
        gc.collect()
        asyncio.run(drop_schema(pg_dsn, schema))


# ---------------------------------------------------------------------------------- the library's own cases


class AggregateRecorderCase(StoreKind, AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return PgStreamsAggregateRecorder(self.new_datastore())


class ApplicationRecorderCase(StoreKind, ApplicationRecorderTestCase[ApplicationRecorder]):
    def create_recorder(self) -> ApplicationRecorder:
        return PgStreamsApplicationRecorder(self.new_datastore())

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class NonInterleavingCase(StoreKind, NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return PgStreamsApplicationRecorder(self.new_datastore())


class TrackingRecorderCase(StoreKind, TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        recorder = PgStreamsTrackingRecorder(self.new_datastore())
        recorder.create_table()
        return recorder


class ProcessRecorderCase(StoreKind, ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        recorder = PgStreamsProcessRecorder(self.new_datastore())
        recorder.create_table()
        return recorder


class CustomTrackingRecorder(PgStreamsTrackingRecorder):
    """A subclass the factory must build when asked by class or by topic."""


class FactoryCase(StoreKind, InfrastructureFactoryTestCase[PgStreamsFactory]):
    def setUp(self) -> None:
        self.env = Environment("TestCase", self.settings)
        super().setUp()

    def expected_factory_class(self) -> type[PgStreamsFactory]:
        return PgStreamsFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return PgStreamsAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return PgStreamsApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return PgStreamsTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return PgStreamsProcessRecorder


class ExampleApplicationCase(StoreKind, ExampleApplicationTestCase):
    """The library's ``BankAccounts`` (snapshots included) with
    ``PERSISTENCE_MODULE=pgstreams.eventsourcing`` in ``os.environ``."""

    expected_factory_topic = "pgstreams.eventsourcing:PgStreamsFactory"


# ---------------------------------------------------------------------------------- versions, ids, atomicity


def stored(originator_id: uuid.UUID | str, version: int, topic: str = "topic") -> StoredEvent:
    return StoredEvent(
        originator_id=originator_id,
        originator_version=version,
        topic=topic,
        state=f"state of {version}".encode(),
    )


def versions(events: Sequence[StoredEvent]) -> list[int]:
    return [e.originator_version for e in events]


class MappingCase(StoreKind):
    """How eventsourcing's records map onto pgstreams: what the shared cases do not pin."""

    def test_any_unused_version_is_accepted_in_any_order_and_read_in_version_order(self) -> None:
        recorder = PgStreamsAggregateRecorder(self.new_datastore())
        originator = uuid.uuid4()
        # As snapshots do: versions from 0, skipping, an older one after a newer one.
        for batch in ([5], [0], [3, 4], [10]):
            recorder.insert_events([stored(originator, v) for v in batch])

        assert versions(recorder.select_events(originator)) == [0, 3, 4, 5, 10]
        assert versions(recorder.select_events(originator, gt=3)) == [4, 5, 10]
        assert versions(recorder.select_events(originator, lte=4)) == [0, 3, 4]
        assert versions(recorder.select_events(originator, desc=True, limit=2)) == [10, 5]
        assert versions(recorder.select_events(originator, gt=0, lte=5, desc=True)) == [5, 4, 3]
        assert versions(recorder.select_events(originator, gt=3, limit=1)) == [4]
        assert recorder.select_events(originator, limit=0) == []
        assert recorder.select_events(originator, gt=10) == []
        assert recorder.select_events(originator)[0] == stored(originator, 0)

        # Every version once: a used one is refused, whatever else comes with it.
        with pytest.raises(IntegrityError):
            recorder.insert_events([stored(originator, 1), stored(originator, 4)])
        assert versions(recorder.select_events(originator)) == [0, 3, 4, 5, 10]

    def test_a_used_version_fails_a_multi_aggregate_insert_whole(self) -> None:
        recorder = PgStreamsApplicationRecorder(self.new_datastore())
        first, second = uuid.uuid4(), uuid.uuid4()
        assert recorder.insert_events([stored(first, 1)]) == [1]

        with pytest.raises(IntegrityError):
            recorder.insert_events([stored(second, 1), stored(second, 2), stored(first, 1)])

        assert recorder.select_events(second) == []
        assert recorder.max_notification_id() == 1
        assert versions(recorder.select_notifications(None, 10)) == [1]

    def test_notification_ids_follow_the_order_of_the_events_in_the_call(self) -> None:
        recorder = PgStreamsApplicationRecorder(self.new_datastore())
        first, second = uuid.uuid4(), uuid.uuid4()
        events = [stored(first, 1), stored(second, 1), stored(first, 2), stored(first, 3)]

        ids = recorder.insert_events(events)

        assert ids is not None and list(ids) == sorted(ids) and len(set(ids)) == 4
        notifications = recorder.select_notifications(None, 10)
        assert [n.id for n in notifications] == ids
        assert [(n.originator_id, n.originator_version) for n in notifications] == [
            (e.originator_id, e.originator_version) for e in events
        ]
        assert recorder.insert_events([]) is None

    def test_an_event_another_program_wrote_in_a_recorders_stream_is_a_data_error(self) -> None:
        datastore = self.new_datastore()
        recorder = PgStreamsApplicationRecorder(datastore)
        originator = uuid.uuid4()
        recorder.insert_events([stored(originator, 1)])
        stream = recorder.stream_name(originator)
        other, third = uuid.uuid4(), uuid.uuid4()
        foreign = [
            (originator, pgstreams.Event("Foreign", {"state": "AAAA"})),  # no version
            (other, pgstreams.Event("Foreign", {"other": 1}, metadata={"originator_version": 2})),
            (third, pgstreams.Event("F", {"state": "AAAA"}, metadata={"originator_version": "x"})),
        ]
        for originator_id, written in foreign:
            datastore.run(datastore.store.append(recorder.stream_name(originator_id), written))

        for originator_id in (originator, other, third):
            with pytest.raises(DataError):
                recorder.select_events(originator_id)
        with pytest.raises(DataError):
            recorder.select_notifications(None, 10)
        # What comes before it still reads.
        assert versions(recorder.select_notifications(None, 1)) == [1]
        assert stream == f"stored_events:{originator}"

    def test_bounds_past_any_stored_number_mean_no_bound(self) -> None:
        recorder = PgStreamsApplicationRecorder(self.new_datastore())
        originator = uuid.uuid4()
        ids = recorder.insert_events([stored(originator, 1), stored(originator, 2)])
        huge = 2**70

        everything = recorder.select_events(originator, gt=-huge, lte=huge, limit=huge)
        assert versions(everything) == [1, 2]
        assert recorder.select_events(originator, gt=huge) == []
        assert [n.id for n in recorder.select_notifications(None, huge, stop=huge)] == ids
        assert recorder.select_notifications(huge, 10) == []

    def test_threads_inserting_one_version_at_once_let_exactly_one_through(self) -> None:
        recorder = PgStreamsApplicationRecorder(self.new_datastore())
        threads = 8
        for _ in range(3):
            originator = uuid.uuid4()
            start = threading.Barrier(threads)

            def insert(
                _: int, originator: uuid.UUID = originator, start: threading.Barrier = start
            ) -> str:
                start.wait(PATIENCE)
                try:
                    recorder.insert_events([stored(originator, 1)])
                except IntegrityError:
                    return "refused"
                return "inserted"

            with ThreadPoolExecutor(threads) as pool:
                outcomes = sorted(pool.map(insert, range(threads)))
            assert outcomes == ["inserted"] + ["refused"] * (threads - 1)
            assert versions(recorder.select_events(originator)) == [1]

    def test_a_uuid_given_as_text_is_the_same_originator(self) -> None:
        recorder = PgStreamsAggregateRecorder(self.new_datastore())
        originator = uuid.uuid4()
        recorder.insert_events([stored(str(originator).upper(), 1)])

        assert recorder.select_events(originator) == [stored(originator, 1)]
        with pytest.raises(IntegrityError):
            recorder.insert_events([stored(originator, 1)])
        with pytest.raises(DataError):
            recorder.insert_events([stored("not a uuid", 1)])

    def test_text_originator_ids_with_originator_id_type_text(self) -> None:
        factory = self.new_factory(ORIGINATOR_ID_TYPE="text")
        recorder = factory.application_recorder()
        recorder.insert_events([stored("dog-1", 1), stored("dog-1", 2)])

        assert recorder.select_events("dog-1") == [stored("dog-1", 1), stored("dog-1", 2)]
        assert [n.originator_id for n in recorder.select_notifications(None, 10)] == [
            "dog-1",
            "dog-1",
        ]

    def test_the_events_are_pgstreams_events_of_one_stream_per_originator(self) -> None:
        datastore = self.new_datastore()
        recorder = PgStreamsApplicationRecorder(datastore, events_name="dogschool_events")
        originator = uuid.uuid4()
        state = bytes(range(256))  # any bytes: compressed, encrypted
        recorder.insert_events([StoredEvent(originator, 1, "dogs:Registered", state)])

        async def read() -> list[Any]:
            stream = f"dogschool_events:{originator}"
            return [e async for e in datastore.store.read_stream(stream)]

        [written] = datastore.run(read())
        assert written.type == "dogs:Registered"
        assert written.data == {"state": base64.b64encode(state).decode()}
        assert written.metadata == {"originator_version": 1}
        assert recorder.select_events(originator)[0].state == state

    def test_applications_and_snapshots_sharing_a_store_each_read_their_own(self) -> None:
        datastore = self.new_datastore()
        one = PgStreamsApplicationRecorder(datastore, events_name="one_events")
        two = PgStreamsApplicationRecorder(datastore, events_name="two_events")
        snapshots = PgStreamsAggregateRecorder(datastore, events_name="one_snapshots")
        originator = uuid.uuid4()

        one.insert_events([stored(originator, 1, "one")])
        snapshots.insert_events([stored(originator, 1, "snapshot")])  # the same version
        two.insert_events([stored(originator, 1, "two"), stored(originator, 2, "two")])
        assert one.max_notification_id() == 1

        one.insert_events([stored(originator, 2, "one")])
        assert [n.topic for n in one.select_notifications(None, 10)] == ["one", "one"]
        assert [n.topic for n in two.select_notifications(None, 10)] == ["two", "two"]
        # Positions: one 1, the snapshot 2, two 3 and 4, one 5.
        assert [n.id for n in one.select_notifications(2, 10)] == [5]
        assert one.max_notification_id() == 5
        assert two.max_notification_id() == 4
        assert [e.topic for e in snapshots.select_events(originator)] == ["snapshot"]
        nobody = PgStreamsApplicationRecorder(datastore, events_name="three_events")
        assert nobody.max_notification_id() is None
        assert nobody.select_notifications(None, 10) == []

    def test_notifications_are_found_behind_many_of_another_recorder(self) -> None:
        datastore = self.new_datastore()
        one = PgStreamsApplicationRecorder(datastore, events_name="one_events")
        two = PgStreamsApplicationRecorder(datastore, events_name="two_events")
        mine = uuid.uuid4()
        one.insert_events([stored(mine, 1)])
        two.insert_events([stored(uuid.uuid4(), v) for v in range(1, 1201)])
        one.insert_events([stored(mine, 2), stored(mine, 3, "other topic")])

        # Positions: one 1, two 2 to 1201, one 1202 and 1203.
        assert [n.id for n in one.select_notifications(None, 2)] == [1, 1202]
        assert [n.id for n in one.select_notifications(None, 10)] == [1, 1202, 1203]
        assert [n.id for n in one.select_notifications(2, 10, stop=1202)] == [1202]
        assert [n.id for n in one.select_notifications(1, 10, inclusive_of_start=False)] == [
            1202,
            1203,
        ]
        assert [n.id for n in one.select_notifications(None, 10, topics=["topic"])] == [1, 1202]
        assert one.max_notification_id() == 1203
        assert two.max_notification_id() == 1201
        assert len(two.select_notifications(None, 2000)) == 1200

    def test_names_with_the_separator_are_refused(self) -> None:
        with pytest.raises(ProgrammingError):
            PgStreamsAggregateRecorder(self.new_datastore(), events_name="a:b")

    def test_a_subscription_sees_what_another_recorder_inserts(self) -> None:
        datastore = self.new_datastore()
        reader = PgStreamsApplicationRecorder(datastore)
        # Another process's recorder, where the store is shared (PostgreSQL); another recorder
        # object on the same store otherwise: either way, not one that wakes the subscription.
        other_store = self.new_datastore() if datastore.is_postgres else datastore
        writer = PgStreamsApplicationRecorder(other_store)
        originator = uuid.uuid4()
        writer.insert_events([stored(originator, 1)])

        received: list[int] = []
        with reader.subscribe(gt=None) as subscription:
            for notification in subscription:
                received.append(notification.originator_version)
                if len(received) == 1:
                    writer.insert_events([stored(originator, 2)])
                if len(received) == 2:
                    break
        assert received == [1, 2]


class TrackingCase(StoreKind):
    """Tracking records written with events: all or nothing."""

    def test_events_and_their_tracking_record_are_written_together_or_not_at_all(self) -> None:
        recorder = PgStreamsProcessRecorder(self.new_datastore())
        recorder.create_table()
        first, second = uuid.uuid4(), uuid.uuid4()
        recorder.insert_events([stored(first, 1)], tracking=Tracking("upstream", 1))

        # A used version: the tracking record is not written either.
        with pytest.raises(IntegrityError):
            recorder.insert_events(
                [stored(second, 1), stored(first, 1)], tracking=Tracking("upstream", 2)
            )
        assert recorder.max_tracking_id("upstream") == 1
        assert recorder.select_events(second) == []

        # A notification already processed: the events are not written either.
        with pytest.raises(IntegrityError):
            recorder.insert_events([stored(second, 1)], tracking=Tracking("upstream", 1))
        assert recorder.select_events(second) == []

        recorder.insert_events([stored(second, 1)], tracking=Tracking("upstream", 2))
        assert recorder.max_tracking_id("upstream") == 2
        assert versions(recorder.select_events(second)) == [1]

    def test_each_tracking_recorder_keeps_its_own_records(self) -> None:
        datastore = self.new_datastore()
        one = PgStreamsTrackingRecorder(datastore, tracking_name="one_tracking")
        two = PgStreamsTrackingRecorder(datastore, tracking_name="two_tracking")
        one.create_table()
        two.create_table()

        one.insert_tracking(Tracking("upstream", 5))
        two.insert_tracking(Tracking("upstream", 2))

        assert one.max_tracking_id("upstream") == 5
        assert two.max_tracking_id("upstream") == 2
        assert PgStreamsTrackingRecorder(datastore).max_tracking_id("upstream") is None

    def test_concurrent_inserts_of_one_tracking_record_let_exactly_one_through(self) -> None:
        recorder = PgStreamsProcessRecorder(self.new_datastore())
        recorder.create_table()
        outcomes: list[str] = []
        start = threading.Barrier(8)

        def insert(n: int) -> None:
            start.wait(PATIENCE)
            try:
                recorder.insert_events([stored(uuid.uuid4(), 1)], tracking=Tracking("up", 7))
                outcomes.append("written")
            except IntegrityError:
                outcomes.append("refused")

        threads = [threading.Thread(target=insert, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(PATIENCE)
        assert sorted(outcomes) == ["refused"] * 7 + ["written"]
        assert len(recorder.select_notifications(None, 10)) == 1


# ---------------------------------------------------------------------------------- the factory


class FactorySettingsCase(StoreKind):
    def test_a_closed_factory_refuses_calls(self) -> None:
        factory = self.new_factory()
        recorder = factory.application_recorder()
        factory.close()
        factory.close()  # idempotent
        with pytest.raises(InterfaceError):
            recorder.max_notification_id()

    def test_an_unknown_originator_id_type_is_refused(self) -> None:
        with pytest.raises(OSError, match="ORIGINATOR_ID_TYPE"):
            self.new_factory(ORIGINATOR_ID_TYPE="int")

    def test_the_factory_is_found_by_the_module_name(self) -> None:
        factory = InfrastructureFactory.construct(Environment(env=self.settings))
        self.addCleanup(factory.close)
        assert type(factory) is PgStreamsFactory

    def test_a_forked_process_is_told_to_make_its_own(self) -> None:
        recorder = self.new_factory().application_recorder()
        recorder.insert_events([stored(uuid.uuid4(), 1)])
        with warnings.catch_warnings():
            # Python 3.12+ warns about forking a process with threads (the store's loop);
            # forking such a process is what this test is about.
            warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                recorder.max_notification_id()
            except InterfaceError as error:
                code = 0 if "forked" in str(error) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert recorder.max_notification_id() == 1  # the parent's is untouched


# ---------------------------------------------------------------------------------- applications


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class DogSchool(Application[uuid.UUID]):
    """The dog school of eventsourcing's documentation."""

    snapshotting_intervals: ClassVar[dict[type[Aggregate], int]] = {Dog: 3}

    def register_dog(self, name: str) -> uuid.UUID:
        dog = Dog(name)
        self.save(dog)
        return dog.id

    def add_trick(self, dog_id: uuid.UUID, trick: str) -> None:
        dog: Dog = self.repository.get(dog_id)
        dog.add_trick(trick)
        self.save(dog)

    def get_dog(self, dog_id: uuid.UUID) -> dict[str, Any]:
        dog: Dog = self.repository.get(dog_id)
        return {"name": dog.name, "tricks": tuple(dog.tricks)}


class Counter(Aggregate):
    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    @staticmethod
    def create_id(name: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"/counters/{name}")

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


def count_trick(repository: Any, domain_event: Any, processing_event: ProcessingEvent[Any]) -> None:
    """Counts the tricks taught (a counter aggregate per trick)."""
    if not isinstance(domain_event, Dog.TrickAdded):  # type: ignore[attr-defined]
        return
    try:
        counter: Counter = repository.get(Counter.create_id(domain_event.trick))
    except AggregateNotFoundError:
        counter = Counter(domain_event.trick)
    counter.increment()
    processing_event.collect_events(counter)


def counted(application: Application[uuid.UUID], trick: str) -> int:
    try:
        counter: Counter = application.repository.get(Counter.create_id(trick))
    except AggregateNotFoundError:
        return 0
    return counter.count


class TrickCounters(ProcessApplication[uuid.UUID]):
    """A process application following the dog school (events and tracking together)."""

    @singledispatchmethod
    def policy(
        self,
        domain_event: DomainEventProtocol[uuid.UUID],
        processing_event: ProcessingEvent[uuid.UUID],
    ) -> None:
        count_trick(self.repository, domain_event, processing_event)


class TrickCountersProjection(EventSourcedProjection[uuid.UUID]):
    """The same count as an event-sourced projection (a subscription to the dog school)."""

    @singledispatchmethod
    def policy(
        self,
        domain_event: DomainEventProtocol[uuid.UUID],
        processing_event: ProcessingEvent[uuid.UUID],
    ) -> None:
        count_trick(self.repository, domain_event, processing_event)


class ApplicationsCase(StoreKind):
    """Applications of the eventsourcing library on pgstreams, end to end."""

    def test_dog_school(self) -> None:
        with DogSchool() as school:
            assert type(school.factory) is PgStreamsFactory
            dog_id = school.register_dog("Fido")
            for trick in ("roll over", "play dead", "fetch", "sit"):
                school.add_trick(dog_id, trick)

            assert school.get_dog(dog_id) == {
                "name": "Fido",
                "tricks": ("roll over", "play dead", "fetch", "sit"),
            }
            assert school.snapshots is not None
            assert [s.originator_version for s in school.snapshots.get(dog_id)] == [3]
            notifications = school.notification_log.select(start=1, limit=10)
            assert [n.originator_version for n in notifications] == [1, 2, 3, 4, 5]
            historical: Dog = school.repository.get(dog_id, version=2)
            assert historical.tricks == ["roll over"]

        if self.settings.get("PGSTREAMS_DSN"):
            # Another instance (another process, say) reads the same dog from the database.
            with DogSchool() as again:
                assert again.get_dog(dog_id)["tricks"][-1] == "sit"

    def test_a_process_application_in_a_system(self) -> None:
        system = System(pipes=[[DogSchool, TrickCounters]])
        runner = SingleThreadedRunner(system)
        runner.start()
        try:
            school = runner.get(DogSchool)
            counters = runner.get(TrickCounters)
            for name in ("Fido", "Rex"):
                dog_id = school.register_dog(name)
                school.add_trick(dog_id, "sit")
            school.add_trick(dog_id, "fetch")

            assert counted(counters, "sit") == 2
            assert counted(counters, "fetch") == 1
            last = school.recorder.max_notification_id()
            assert isinstance(counters.recorder, ProcessRecorder)
            assert counters.recorder.max_tracking_id("DogSchool") == last
            # Each application's notification log holds its own events only.
            assert {n.topic for n in counters.notification_log.select(1, 10)} == {
                get_topic(Counter.Created),
                get_topic(Counter.Incremented),  # type: ignore[attr-defined]
            }
        finally:
            runner.stop()

    def test_an_event_sourced_projection(self) -> None:
        with EventSourcedProjectionRunner(
            application_class=DogSchool, projection_class=TrickCountersProjection
        ) as runner:
            dog_id = runner.app.register_dog("Fido")
            runner.app.add_trick(dog_id, "sit")
            runner.app.add_trick(dog_id, "sit")
            last = runner.app.recorder.max_notification_id()
            assert last is not None
            runner.wait(last, timeout=PATIENCE)
            assert counted(runner.projection, "sit") == 2
