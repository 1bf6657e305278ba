"""Property-based tests: hypothesis generates JSON values, names and numeric arguments, and
every example runs against an ``InMemoryEventStore`` and a PostgreSQL store side by side.

Each input must either round-trip exactly (JSON comes back equal and of the same kinds) or be
refused with a clear error (``SerializationError`` for values and events, ``ConfigurationError``
for arguments, its message naming the argument or the path of the bad value) with nothing
written. And the two stores must agree: the same result, or the same exception class with the
same message.

A reference model of the contract (``expected_json``, ``name_problem``, ``int_accepted``,
``duration_accepted``) says which outcome each input must have.

The tests are plain functions: hypothesis calls them once per example, and each example runs
its coroutines on the test's own ``asyncio.Runner``, which also owns both stores for the whole
test (one PostgreSQL schema per test, a fresh stream name per example).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import json
import math
import numbers
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, NamedTuple, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import event as statistics_event
from hypothesis import strategies as st

import pgstreams
from pgstreams import (
    ConcurrencyError,
    ConfigurationError,
    Event,
    InMemoryEventStore,
    SerializationError,
)
from support import drop_schema

from .helpers import collect, name
from .test_json import same_json

T = TypeVar("T")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_DEPTH = 100  # the contract: nesting deeper than 100 is refused
MAX_NAME_BYTES = 1000  # names, types and correlation ids: 1000 bytes of UTF-8 at most
MAX_DURATION = 100 * 365.25 * 86_400  # durations are at most 100 years
CALL_TIMEOUT = 30.0  # seconds: a call that takes longer is reported as a hang

PROPERTIES = settings(
    deadline=None,
    database=None,
    derandomize=True,
    # No "explain" phase: on a failure it replays hundreds of variants (seconds per test).
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the stores are reused on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def pinned(*cases: dict[str, Any]) -> Callable[[T], T]:
    """``@example(**case)`` for each case: inputs every run tries, whatever is generated."""

    def apply(test: T) -> T:
        for case in reversed(cases):
            test = example(**case)(test)
        return test

    return apply


# ---------------------------------------------------------------- the two stores


@dataclass
class Stores:
    runner: asyncio.Runner
    memory: Any
    postgres: Any

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)


@pytest.fixture
def stores(pg_dsn: str) -> Iterator[Stores]:
    """An in-memory store and a PostgreSQL store (in a schema of its own), both living on
    one event loop for the whole test, so each hypothesis example reuses them."""
    schema = f"t_{uuid.uuid4().hex[:16]}"

    async def connect() -> Any:
        return await pgstreams.connect(pg_dsn, schema_name=schema, max_pool_size=4)

    with asyncio.Runner() as runner:
        memory = InMemoryEventStore()
        postgres = None
        try:
            postgres = runner.run(connect())
            yield Stores(runner, memory, postgres)
        finally:
            runner.run(memory.close())
            if postgres is not None:
                runner.run(postgres.close())
            runner.run(drop_schema(pg_dsn, schema))


@dataclass(frozen=True)
class Outcome:
    """What one call did: its result, or the class and message of what it raised."""

    result: Any = None
    error: type[BaseException] | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        if self.ok:
            return f"returned {self.result!r}"[:500]
        return f"raised {self.error.__name__ if self.error else '?'}: {self.message}"[:500]


async def attempt(call: Callable[[], Awaitable[T]]) -> Outcome:
    try:
        return Outcome(result=await asyncio.wait_for(call(), CALL_TIMEOUT))
    except Exception as error:
        return Outcome(error=type(error), message=str(error))


Scenario = Callable[[Any], Awaitable[tuple[Outcome, Any]]]


def on_both(stores: Stores, scenario: Scenario) -> tuple[tuple[Outcome, Any], tuple[Outcome, Any]]:
    """Runs one example's scenario on each store: (outcome, state afterwards) per store."""

    async def both() -> tuple[tuple[Outcome, Any], tuple[Outcome, Any]]:
        return await scenario(stores.memory), await scenario(stores.postgres)

    return stores.run(both())


def assert_same_error(memory: Outcome, postgres: Outcome) -> None:
    assert not memory.ok and not postgres.ok, f"memory {memory}; postgres {postgres}"
    assert (memory.error, memory.message) == (postgres.error, postgres.message), (
        f"the stores disagree: memory {memory}; postgres {postgres}"
    )


def assert_refused(
    memory: Outcome,
    postgres: Outcome,
    error: type[Exception] | tuple[type[Exception], ...],
    *words: str,
) -> None:
    """Both stores raised the same ``error`` with the same message, naming ``words``."""
    assert_same_error(memory, postgres)
    assert memory.error is not None and issubclass(memory.error, error), (
        f"expected {error}: memory {memory}; postgres {postgres}"
    )
    for word in words:
        assert word in memory.message, f"{word!r} is not named in: {memory.message}"


def assert_both_ok(memory: Outcome, postgres: Outcome) -> None:
    assert memory.ok and postgres.ok, f"memory {memory}; postgres {postgres}"


# ---------------------------------------------------------------- the model: JSON values


class Refused(Exception):
    """The model's verdict: the value at ``path`` cannot be stored, for ``reason``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def checked_text(text: str, path: str) -> str:
    if has_lone_surrogate(text):
        raise Refused(path, "surrogate")
    if "\x00" in text:
        raise Refused(path, "NUL")
    return str.__str__(text)


def key_segment(key: str) -> str:
    return f"[{json.dumps(key, ensure_ascii=False)}]"


def expected_json(value: Any, path: str, depth: int = 0) -> Any:
    """What the store must give back for ``value`` (tuples as lists, UUID/Decimal/dates as
    strings), or ``Refused`` naming the first bad value in document order. ``depth`` counts
    the containers around ``value``."""
    if depth > MAX_DEPTH:
        raise Refused(path, "nesting")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return checked_text(value, path)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise Refused(path, "64-bit")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Refused(path, "NaN")
        return float(value)
    if isinstance(value, dict):
        document = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Refused(path, "dict keys must be str")
            if has_lone_surrogate(key):
                raise Refused(path, "surrogate")
            inner = path + key_segment(key)
            if "\x00" in key:
                raise Refused(inner, "NUL")
            document[str.__str__(key)] = expected_json(item, inner, depth + 1)
        return document
    if isinstance(value, (list, tuple)):
        return [expected_json(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, (uuid.UUID, Decimal)):
        return checked_text(str(value), path)
    if isinstance(value, (datetime, date)):
        return checked_text(value.isoformat(), path)
    raise Refused(path, f"type {type(value).__name__}")


def expected_event(event: Event, label: str) -> tuple[Any, Any]:
    """(data, metadata) as the store must give them back, or ``Refused``: data is checked
    before metadata."""
    return (
        expected_json(event.data, f"{label}.data"),
        expected_json(event.metadata, f"{label}.metadata"),
    )


def assert_same_json(actual: Any, expected: Any, store: str) -> None:
    assert same_json(actual, expected), (
        f"{store} gave back {actual!r}"[:3000] + f" instead of {expected!r}"[:3000]
    )


# ---------------------------------------------------------------- strategies: JSON values


class Colour(enum.IntEnum):
    RED = 1


class Word(str):
    """A str subclass: stored as the str it is."""


class Pair(NamedTuple):
    left: Any
    right: Any


class Unknown:
    pass


ANY_CHARACTER = st.characters(exclude_categories=())  # NUL and lone surrogates included
TEXT_CHARACTER = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")

SPECIAL_TEXTS = [
    "",
    'quote " backslash \\ slash / ',
    "\n\r\t\b\f\x01\x1f\x7f",
    "\u2028\u2029\ufeff\ufffe\uffff",
    "𝄞 😀 🀄 \U0010ffff \U00010000",
    "e\u0301 ﬁ ß İ",
    "\\u0000 \\ud800",  # escapes as text, not as characters
    "'; DROP TABLE events; --",
]
BAD_TEXTS = ["\x00", "a\x00b", "\ud800", "x\udfffy", "\ud83d", "😀\udc00", "\x00\ud800"]

good_texts = st.one_of(st.sampled_from(SPECIAL_TEXTS), st.text(TEXT_CHARACTER, max_size=12))
any_texts = st.one_of(good_texts, st.sampled_from(BAD_TEXTS), st.text(ANY_CHARACTER, max_size=12))

SPECIAL_INTS = [0, 1, -1, 2**31, 2**53 + 1, INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1]
BAD_INTS = [2**63, 2**64 - 1, 2**64, INT64_MIN - 1, -(2**64), 10**40, -(10**40)]

good_ints = st.one_of(st.sampled_from(SPECIAL_INTS), st.integers(INT64_MIN, INT64_MAX))
any_ints = st.one_of(
    good_ints,
    st.sampled_from(BAD_INTS),
    st.integers(min_value=2**63, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=INT64_MIN - 1),
    st.integers(),
)

SPECIAL_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
SPECIAL_FLOATS += [-1.7976931348623157e308, 1e16, 1e20, -1e17, 0.1, 1 / 3, 2.0**53, 1e-7]
good_floats = st.one_of(
    st.sampled_from(SPECIAL_FLOATS), st.floats(allow_nan=False, allow_infinity=False)
)
any_floats = st.one_of(good_floats, st.sampled_from([math.nan, math.inf, -math.inf]), st.floats())

good_objects = st.one_of(
    st.uuids(),
    st.decimals(places=None),
    st.dates(),
    st.datetimes(),
    st.just(Colour.RED),
    good_texts.map(Word),
)
OTHER_OBJECTS = [
    set(),
    {1, 2},
    frozenset(["a"]),
    b"",
    b"raw",
    bytearray(b"raw"),
    memoryview(b"x"),
    object(),
    Unknown(),
    1 + 2j,
    range(3),
    Ellipsis,
    NotImplemented,
    type,
    len,
    timedelta(seconds=1),
]
other_objects = st.one_of(st.sampled_from(OTHER_OBJECTS), st.binary(max_size=4))

good_leaves = st.one_of(st.none(), st.booleans(), good_ints, good_floats, good_texts, good_objects)
any_leaves = st.one_of(
    st.none(), st.booleans(), any_ints, any_floats, any_texts, good_objects, other_objects
)
bad_keys = st.one_of(
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(),
    st.tuples(st.integers(), st.text(max_size=2)),
    st.binary(max_size=3),
    st.sampled_from(BAD_TEXTS),
)


def containers(children: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> Any:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(good_texts, children, max_size=3).map(collections.OrderedDict),
        st.builds(Pair, children, children),
    )


good_json = st.recursive(
    good_leaves, lambda children: containers(children, good_texts), max_leaves=30
)
any_json = st.recursive(
    any_leaves,
    lambda children: containers(children, st.one_of(good_texts, good_texts, any_texts, bad_keys)),
    max_leaves=30,
)
# Half the examples hold only storable values, so the round trip gets as much testing as the
# refusals.
json_values = st.one_of(good_json, any_json)
metadata_values = st.one_of(
    st.dictionaries(good_texts, good_json, max_size=3),
    st.dictionaries(st.one_of(any_texts, bad_keys), any_json, max_size=3),
)


@st.composite
def deep_values(draw: st.DrawFn) -> Any:
    """A chain of 90 to 110 nested lists, tuples and dicts around one leaf, with siblings
    (possibly bad) here and there: around the limit of 100 levels."""
    depth = draw(st.integers(90, 110))
    kinds = draw(
        st.lists(st.sampled_from(["list", "tuple", "dict"]), min_size=depth, max_size=depth)
    )
    value = draw(st.one_of(good_leaves, st.sampled_from([[], {}, ()]), any_leaves))
    siblings = draw(st.dictionaries(st.integers(0, depth - 1), any_leaves, max_size=3))
    for level in reversed(range(depth)):
        kind = kinds[level]
        sibling = siblings.get(level)
        if kind == "dict":
            value = {"k": value} if level not in siblings else {"k": value, "s": sibling}
        else:
            items = [value] if level not in siblings else [value, sibling]
            value = items if kind == "list" else tuple(items)
    return value


# ---------------------------------------------------------------- values: append -> read_stream


def nested(depth: int, leaf: Any) -> Any:
    """``leaf`` inside ``depth`` lists."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


VALUE_CASES: list[dict[str, Any]] = [
    {"data": {"v": value}, "metadata": {"m": value}}
    for value in [
        *(INT64_MAX, INT64_MIN, INT64_MAX + 1, INT64_MIN - 1, 2**64, True, None),
        *(1e16, -0.0, 5e-324, 1.7976931348623157e308, math.nan, math.inf),
        *("\x00", "\ud800", "😀", '\\"', (1, (2,)), {1: "x"}, {None: 1}, {(1,): 2}),
        *({1, 2}, b"x", object(), Decimal("1.10"), uuid.UUID(int=1), date(2024, 2, 29)),
    ]
]


def check_events_round_trip(stores: Stores, events: list[Event], path: str) -> None:
    """``events`` through ``path`` ("append": append_batch -> read_stream, or "enqueue":
    enqueue_batch -> dequeue_batch) on both stores: all of them come back as the model says,
    or the batch is refused naming the first bad value, and nothing is written."""
    try:
        expected = [expected_event(e, f"events[{i}]") for i, e in enumerate(events)]
        refused = None
    except Refused as verdict:
        refused = verdict
    stream = name("p")

    async def through_append(store: Any) -> tuple[Outcome, Any]:
        async def call() -> tuple[Any, list[tuple[Any, ...]]]:
            offsets = await store.append_batch(stream, events)
            stored = await collect(store.read_stream(stream))
            return offsets, [(s.offset, s.id, s.type, s.data, s.metadata) for s in stored]

        outcome = await attempt(call)
        return outcome, await store.get_stream_version(stream)

    async def through_queue(store: Any) -> tuple[Outcome, Any]:
        async def call() -> tuple[Any, list[tuple[Any, ...]]]:
            ids = await store.enqueue_batch(stream, events)
            messages = await store.dequeue_batch(stream, "c", len(events) + 1)
            acknowledged = await store.acknowledge_batch(messages)
            rows = [(m.delivery_count, m.id, m.type, m.data, m.metadata) for m in messages]
            return (ids, acknowledged), rows

        outcome = await attempt(call)
        return outcome, await store.get_pending_count(stream)

    scenario = through_append if path == "append" else through_queue
    (memory, memory_after), (postgres, postgres_after) = on_both(stores, scenario)

    statistics_event(f"refused: {refused.reason}" if refused else "round-trips")
    if refused is not None:
        assert_refused(memory, postgres, SerializationError, refused.path + ":", refused.reason)
        assert memory_after == postgres_after == (-1 if path == "append" else 0), (
            f"a refused batch wrote something: memory {memory_after}, postgres {postgres_after}"
        )
        return
    assert_both_ok(memory, postgres)
    returned = (
        list(range(len(events)))
        if path == "append"
        else ([event.id for event in events], len(events))
    )
    for store, outcome in (("memory", memory), ("postgres", postgres)):
        answer, rows = outcome.result
        assert answer == returned, f"{store}: {answer!r}"
        assert len(rows) == len(events), f"{store}: {outcome}"
        for index, (row, event, (data, metadata)) in enumerate(
            zip(rows, events, expected, strict=True)
        ):
            first = index if path == "append" else 1  # the offset, or the delivery count
            assert row[:3] == (first, event.id, event.type), f"{store}: {row[:3]}"
            assert_same_json(row[3], data, store)
            assert_same_json(row[4], metadata, store)
    assert memory_after == postgres_after == (len(events) - 1 if path == "append" else 0)


@settings(PROPERTIES, max_examples=600)
@given(data=json_values, metadata=metadata_values)
@pinned(*VALUE_CASES)
def test_any_value_round_trips_or_is_refused_through_append(
    stores: Stores, data: Any, metadata: dict[Any, Any]
) -> None:
    """append_batch -> read_stream. The bad event comes second, so a refusal proves the
    good one before it was not written either."""
    events = [Event("Good", {"fine": 1}), Event("Value", data, metadata=metadata)]
    check_events_round_trip(stores, events, "append")


@settings(PROPERTIES, max_examples=600)
@given(data=json_values, metadata=metadata_values)
@pinned(*VALUE_CASES)
def test_any_value_round_trips_or_is_refused_through_the_queue(
    stores: Stores, data: Any, metadata: dict[Any, Any]
) -> None:
    """enqueue_batch -> dequeue_batch (then acknowledged)."""
    events = [Event("Good", {"fine": 1}), Event("Value", data, metadata=metadata)]
    check_events_round_trip(stores, events, "enqueue")


@settings(PROPERTIES, max_examples=200)
@given(data=deep_values(), path=st.sampled_from(["append", "enqueue"]))
@pinned(
    *(
        {"data": nested(depth, leaf), "path": path}
        for depth, leaf in [(100, 1), (101, 1), (101, []), (102, []), (100, {1: 2})]
        for path in ("append", "enqueue")
    )
)
def test_nesting_around_the_limit_round_trips_or_is_refused(
    stores: Stores, data: Any, path: str
) -> None:
    """100 levels of nesting are kept, deeper is refused (the path names the first value
    too deep), through either path."""
    check_events_round_trip(stores, [Event("Good", {}), Event("Deep", data)], path)


# ---------------------------------------------------------------- names


def long_name(length: int, width: int, seed: int) -> str:
    """``length`` random characters of ``width`` bytes in UTF-8 (random text does not
    compress, as a repeated character would)."""
    ranges = {1: (0x20, 0x7E), 2: (0x80, 0x7FF), 3: (0xE000, 0xFFFD), 4: (0x10000, 0x10FFFF)}
    low, high = ranges[width]
    generator = random.Random(seed)
    return "".join(chr(generator.randint(low, high)) for _ in range(length))


SPECIAL_NAMES: list[Any] = [
    "",
    " ",
    "x",
    "x" * MAX_NAME_BYTES,
    "x" * (MAX_NAME_BYTES + 1),
    "😀" * MAX_NAME_BYTES,
    "é" * (MAX_NAME_BYTES + 1),
    "'; DROP TABLE x; --",
    'a"); DROP TABLE events; --',
    "$1",
    "%s %(x)s {0}",
    "\\",
    "*",
    "e\u0301",
    "\u2028",
    "\ufeff",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    None,
    0,
    5,
    b"bytes",
    ("tuple",),
    ["list"],
    1.5,
    True,
]

names = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.text(ANY_CHARACTER, max_size=20),
    st.text(TEXT_CHARACTER, min_size=1, max_size=20),
    st.builds(
        long_name,
        st.integers(MAX_NAME_BYTES - 5, MAX_NAME_BYTES + 5),
        st.sampled_from([1, 2, 3, 4]),
        st.integers(0, 2**32),
    ),
    st.builds(
        lambda count, text: text * count,
        st.integers(MAX_NAME_BYTES - 3, MAX_NAME_BYTES + 3),
        st.sampled_from(["x", "é", "€", "😀", "'", '"', "\\"]),
    ),
    st.one_of(st.integers(), st.none(), st.binary(max_size=4), st.floats()),
)


def name_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid stream, consumer or group name (None: it is)."""
    if not isinstance(value, str):
        return "not a str"
    if not value:
        return "empty"
    if "\x00" in value:
        return "NUL"
    if has_lone_surrogate(value):
        return "lone surrogate"
    if len(value.encode()) > MAX_NAME_BYTES:
        return "too long"
    return None


def text_field_problem(value: Any, *, optional: bool) -> type[Exception] | None:
    """The error an event's ``type`` (or, ``optional``, its correlation id) must raise."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        return SerializationError
    if not value and not optional:
        return ConfigurationError
    if has_lone_surrogate(value):
        return SerializationError
    if len(value.encode()) > MAX_NAME_BYTES:
        return ConfigurationError
    if "\x00" in value:
        return SerializationError
    return None


NAME_ROLES = [
    "stream (append)",
    "stream (enqueue)",
    "consumer_id",
    "group",
    "type",
    "correlation_id",
]


@pytest.mark.parametrize("role", NAME_ROLES)
@settings(PROPERTIES, max_examples=300)
@given(value=names)
@pinned(
    *(
        {"value": value}
        for value in [
            "x" * MAX_NAME_BYTES,
            "x" * (MAX_NAME_BYTES + 1),
            long_name(MAX_NAME_BYTES, 4, 0),
            long_name(MAX_NAME_BYTES + 1, 4, 0),
            "'; DROP TABLE x; --",
            "\x00",
            "\ud800",
            None,
        ]
    )
)
def test_any_name_is_kept_exactly_or_refused(stores: Stores, role: str, value: Any) -> None:
    """Streams, consumers and groups: a valid name (a str, 1 to 1000 bytes in UTF-8, no NUL
    or lone surrogate) is kept exactly; any other is refused with a ConfigurationError naming
    the argument, and nothing is written. An event's type and correlation id are kept
    exactly, or refused alike by both stores."""
    stream = name("n")

    async def scenario(store: Any) -> tuple[Outcome, Any]:
        if role == "stream (append)":
            # A name may come up in several examples: what one append adds is compared with
            # what was there before it.
            before = await attempt(lambda: store.get_stream_version(value))
            streams_before = len(await store.list_streams())

            async def call() -> Any:
                offset = await store.append(value, Event("E", {}))
                stored = await collect(store.read_stream(value, offset))
                version = await store.get_stream_version(value)
                return offset - before.result, [s.stream for s in stored], version - offset

            outcome = await attempt(call)
            created = len(await store.list_streams()) - streams_before
            # Streams created beyond the one a first successful append creates.
            return outcome, created - int(outcome.ok and before.result == -1)
        if role == "stream (enqueue)":
            with contextlib.suppress(ConfigurationError):  # refused alike below
                await store.purge_queue(value)

            async def call() -> Any:
                await store.enqueue(value, Event("E", {}))
                message = await store.dequeue(value, "c")
                assert message is not None
                await store.acknowledge(message)
                return message.stream, await store.get_pending_count(value)

            return await attempt(call), None
        if role == "consumer_id":
            await store.enqueue(stream, Event("E", {}))

            async def call() -> Any:
                message = await store.dequeue(stream, value, 60)
                assert message is not None
                return message.consumer_id, message.delivery_count

            outcome = await attempt(call)
            stats = await store.get_queue_stats(stream)
            return outcome, (stats.visible, stats.leased)
        if role == "group":
            await store.append(stream, Event("E", {}))

            async def call() -> Any:
                committed = await store.commit_offset(stream, value, 1)
                return committed, await store.get_committed_offset(stream, value)

            return await attempt(call), None
        if role == "type":

            async def call() -> Any:
                await store.append(stream, Event(value, {}))
                [stored] = await collect(store.read_stream(stream))
                return stored.type

        else:

            async def call() -> Any:
                await store.append(stream, Event("E", {}, correlation_id=value))
                [stored] = await collect(store.read_stream(stream))
                return stored.correlation_id

        outcome = await attempt(call)
        return outcome, await store.get_stream_version(stream)

    (memory, memory_after), (postgres, postgres_after) = on_both(stores, scenario)

    if role in ("type", "correlation_id"):
        # No length limit is documented for these: the stores must agree, and anything
        # refused must be refused cleanly (never a DatabaseError from PostgreSQL).
        problem = text_field_problem(value, optional=role == "correlation_id")
        if problem is not None:
            assert_refused(memory, postgres, problem, role)
            assert memory_after == postgres_after == -1
            return
        if memory.ok != postgres.ok or not memory.ok:
            if memory.ok or postgres.ok:
                pytest.fail(
                    f"the stores disagree on a {role}: memory {memory}; postgres {postgres}"
                )
            assert_refused(memory, postgres, (SerializationError, ConfigurationError), role)
            assert memory_after == postgres_after == -1
            return
        assert memory.result == postgres.result == value
        assert memory_after == postgres_after == 0
        return

    argument = role.split(" ")[0]
    statistics_event(f"refused: {name_problem(value)}" if name_problem(value) else "valid")
    if name_problem(value) is not None:
        assert_refused(memory, postgres, ConfigurationError, argument)
        expected_after = {"stream (append)": 0, "consumer_id": (1, 0)}.get(role)
        assert memory_after == postgres_after == expected_after, (
            f"a refused {argument} changed something: memory {memory_after}, "
            f"postgres {postgres_after}"
        )
        return
    assert_both_ok(memory, postgres)
    expected = {
        "stream (append)": (1, [value], 0),
        "stream (enqueue)": (value, 0),
        "consumer_id": (value, 1),
        "group": (True, 1),
    }[role]
    assert memory.result == postgres.result == expected
    expected_after = {"stream (append)": 0, "consumer_id": (0, 1)}.get(role)
    assert memory_after == postgres_after == expected_after


# ---------------------------------------------------------------- numeric arguments


def int_accepted(value: Any, minimum: int, *, optional: bool = False) -> bool:
    """An int (not a bool) from ``minimum`` to 2**63-1 (None where ``optional``)."""
    if value is None:
        return optional
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= INT64_MAX


def as_seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def duration_accepted(value: Any, *, zero: bool, optional: bool) -> bool:
    """Seconds (a real number, not a bool) or a timedelta: finite, positive (or zero where
    ``zero``), at most 100 years (None where ``optional``)."""
    if value is None:
        return optional
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    else:
        try:
            seconds = float(value)
        except OverflowError:
            return False
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        return False
    return seconds <= MAX_DURATION


SPECIAL_NUMBERS: list[Any] = [
    0,
    1,
    2,
    3,
    -1,
    -2,
    2**31,
    INT64_MAX,
    2**63,
    2**64,
    INT64_MIN,
    INT64_MIN - 1,
    10**30,
    0.0,
    -0.0,
    0.5,
    1.0,
    -1.0,
    1e-9,
    5e-324,
    1e13,
    1e19,
    1e20,
    1e300,
    MAX_DURATION,
    MAX_DURATION + 1,
    int(MAX_DURATION),
    int(MAX_DURATION) + 1,
    math.nan,
    math.inf,
    -math.inf,
    True,
    False,
    None,
    "1",
    b"1",
    Decimal("1"),
    Decimal("NaN"),
    Fraction(1, 3),
    Fraction(10**400, 1),
    1 + 0j,
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(seconds=1),
    timedelta(days=-1),
    timedelta(days=36524),
    timedelta(days=36526),
    timedelta.max,
    timedelta.min,
]

# About half ints (most near the bounds), half everything else.
numbers_strategy = st.one_of(
    st.integers(-5, 5),
    st.integers(),
    st.integers(-2, 2**64),
    st.one_of(
        st.sampled_from(SPECIAL_NUMBERS),
        st.floats(),
        st.floats(0, 10),
        st.timedeltas(),
        st.fractions(),
    ),
)


async def queue_state(store: Any, stream: str) -> tuple[int, int, int]:
    stats = await store.get_queue_stats(stream)
    return stats.visible + stats.delayed, stats.leased, stats.dead


async def number_scenario(store: Any, role: str, value: Any, stream: str) -> tuple[Outcome, Any]:
    """Calls the API with ``value`` in the place ``role`` names, on a fresh ``stream``; returns
    the outcome, and the state of what the call may have changed."""
    event = Event("E", {"n": 1})

    if role in ("start_offset", "max_count (read_stream)", "max_count (read_all)"):
        await store.append_batch(stream, [Event("E", {}) for _ in range(3)])
        first_position = (await collect(store.read_stream(stream)))[0].position

        async def read() -> Any:
            if role == "start_offset":
                events = await collect(store.read_stream(stream, value))
            elif role == "max_count (read_stream)":
                events = await collect(store.read_stream(stream, max_count=value))
            else:
                # These three are the newest events of the store.
                events = await collect(store.read_all(first_position - 1, max_count=value))
            return [(e.stream == stream, e.offset) for e in events]

        return await attempt(read), None
    if role == "after_position":

        async def read_all() -> Any:
            events = await collect(store.read_all(value, max_count=3))
            after = -1 if value is None else value
            return len(events) <= 3 and all(e.position > after for e in events)

        return await attempt(read_all), None
    if role == "expected_version":
        outcome = await attempt(lambda: store.append(stream, event, expected_version=value))
        return outcome, await store.get_stream_version(stream)
    if role == "offset":
        await store.append(stream, event)

        async def commit() -> Any:
            committed = await store.commit_offset(stream, "g", value)
            return committed, await store.get_committed_offset(stream, "g")

        return await attempt(commit), None
    if role == "limit":
        return await attempt(lambda: store.get_dead_letters(stream, limit=value)), None
    if role in ("delay (enqueue)", "delay (enqueue_batch)"):

        async def enqueue() -> Any:
            if role == "delay (enqueue)":
                await store.enqueue(stream, event, delay=value)
            else:
                await store.enqueue_batch(stream, [event], delay=value)
            return None

        outcome = await attempt(enqueue)
        return outcome, await queue_state(store, stream)

    await store.enqueue_batch(stream, [Event("E", {}), Event("E", {})])
    if role == "max_count (dequeue_batch)":

        async def dequeue_batch() -> Any:
            return len(await store.dequeue_batch(stream, "c", value))

        outcome = await attempt(dequeue_batch)
        return outcome, await queue_state(store, stream)
    if role in ("visibility_timeout (dequeue)", "wait"):

        async def dequeue() -> Any:
            if role == "wait":
                message = await store.dequeue(stream, "c", wait=value)
            else:
                message = await store.dequeue(stream, "c", value)
            return None if message is None else message.delivery_count

        outcome = await attempt(dequeue)
        return outcome, await queue_state(store, stream)

    message = await store.dequeue(stream, "c", 60)
    assert message is not None
    if role == "visibility_timeout (extend_lease)":
        outcome = await attempt(lambda: store.extend_lease(message, value))
    else:
        assert role == "delay (nack)"
        outcome = await attempt(lambda: store.nack(message, delay=value))
    return outcome, await queue_state(store, stream)


def number_expectation(role: str, value: Any) -> tuple[bool, Any, list[Any]]:
    """(accepted, the result, the states allowed afterwards) the contract gives for ``value``;
    when refused, the state afterwards is that of nothing done."""
    if role == "start_offset":
        ok = int_accepted(value, 0, optional=True)
        start = 0 if value is None else value
        return ok, ok and [(True, o) for o in range(3) if o >= start], [None]
    if role in ("max_count (read_stream)", "max_count (read_all)"):
        ok = int_accepted(value, 0, optional=True)
        count = 3 if value is None or not ok else min(value, 3)
        return ok, [(True, o) for o in range(count)], [None]
    if role == "after_position":
        return int_accepted(value, -1, optional=True), True, [None]
    if role == "expected_version":
        ok = int_accepted(value, -1, optional=True)
        # A fresh stream: only None and -1 match; any other version is a ConcurrencyError.
        written = ok and value in (None, -1)
        return ok, 0 if written else None, [0 if written else -1]
    if role == "offset":
        # The stream has one event: its next offset, 1, is as far as a group may commit.
        ok = int_accepted(value, 0) and value <= 1
        return ok, (True, value), [None]
    if role == "limit":
        return int_accepted(value, 1), [], [None]
    if role in ("delay (enqueue)", "delay (enqueue_batch)"):
        ok = duration_accepted(value, zero=True, optional=True)
        return ok, None, [(1, 0, 0) if ok else (0, 0, 0)]
    if role == "max_count (dequeue_batch)":
        ok = int_accepted(value, 1)
        taken = min(value, 2) if ok else 0
        return ok, taken, [(2 - taken, taken, 0)]
    # A lease shorter than this may have expired by the time the stats are read.
    short = duration_accepted(value, zero=False, optional=False) and as_seconds(value) < 10
    if role == "visibility_timeout (dequeue)":
        ok = duration_accepted(value, zero=False, optional=False)
        return ok, 1, [(1, 1, 0), (2, 0, 0)] if short else [(1, 1, 0) if ok else (2, 0, 0)]
    if role == "wait":
        ok = duration_accepted(value, zero=True, optional=True)
        return ok, 1, [(1, 1, 0) if ok else (2, 0, 0)]
    if role == "visibility_timeout (extend_lease)":
        ok = duration_accepted(value, zero=False, optional=False)
        return ok, True, [(1, 1, 0), (2, 0, 0)] if short else [(1, 1, 0)]
    assert role == "delay (nack)"
    ok = duration_accepted(value, zero=True, optional=True)
    return ok, True, [(2, 0, 0) if ok else (1, 1, 0)]


NUMBER_ROLES = [
    "start_offset",
    "max_count (read_stream)",
    "max_count (read_all)",
    "after_position",
    "expected_version",
    "offset",
    "limit",
    "delay (enqueue)",
    "delay (enqueue_batch)",
    "delay (nack)",
    "max_count (dequeue_batch)",
    "visibility_timeout (dequeue)",
    "visibility_timeout (extend_lease)",
    "wait",
]


@pytest.mark.parametrize("role", NUMBER_ROLES)
@settings(PROPERTIES, max_examples=200)
@given(value=numbers_strategy)
@pinned(
    *(
        {"value": value}
        for value in [
            *(-2, -1, 0, 1, INT64_MAX, INT64_MAX + 1, INT64_MIN, 2**64, 1.0, True, None),
            *(1e20, math.nan, MAX_DURATION, MAX_DURATION * 1.0000001, timedelta(days=36524)),
        ]
    )
)
def test_any_number_argument_works_or_is_refused(stores: Stores, role: str, value: Any) -> None:
    """Offsets, counts, versions, limits (ints: -2**63..2**63-1 within each one's minimum, never
    a bool or a float) and durations (seconds or a timedelta, finite, at most 100 years): each
    value works as documented on both stores, or is refused with a ConfigurationError naming
    the argument, and nothing is done."""
    stream = name("num")
    (memory, memory_after), (postgres, postgres_after) = on_both(
        stores, lambda store: number_scenario(store, role, value, stream)
    )
    accepted, result, after = number_expectation(role, value)
    statistics_event("accepted" if accepted else "refused")
    argument = role.split(" ")[0]
    if not accepted:
        assert_refused(memory, postgres, ConfigurationError, argument)
        assert isinstance(memory.error, type) and issubclass(memory.error, ValueError)
    elif role == "expected_version" and value not in (None, -1):
        assert_refused(memory, postgres, ConcurrencyError, str(value))
    else:
        assert_both_ok(memory, postgres)
        assert memory.result == postgres.result == result, f"memory {memory}; postgres {postgres}"
    assert memory_after in after and postgres_after in after, (
        f"afterwards: memory {memory_after}, postgres {postgres_after}, expected one of {after}"
    )
