"""What JSON a store keeps, exactly, and what it refuses (naming where the bad value sat)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from pgstreams import Event, SerializationError

from .helpers import collect, name

ROUND_TRIPS: dict[str, Any] = {
    "empty_dict": {},
    "empty_list": [],
    "empty_string": "",
    "ascii": "hello",
    "latin": "héllo wörld",
    "cjk": "日本語のテキスト",
    "emoji": "party 🎉 time 😀",
    "non_bmp": "𝄞 𠜎 🀄",
    "escapes": 'quote " backslash \\ newline \n tab \t cr \r',
    "control": "\x01\x1f\x7f",
    "line_separators": "\u2028\u2029",
    "true": True,
    "false": False,
    "null": None,
    "zero": 0,
    "int": 42,
    "negative_int": -17,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "beyond_double_precision": 2**53 + 1,
    "float_1e16": 1e16,
    "float_tenth": 0.1,
    "float_small": 1e-7,
    "float_negative": -1.5,
    "float_huge": 1e300,
    "float_tiny": 5e-324,
    "float_whole": 3.0,
    "float_third": 1 / 3,
    "nested": {"a": {"b": {"c": [1, {"d": [None, True, "x"]}, []]}}, "e": {}},
    "list_of_mixed": [1, "two", 3.5, None, False, {"six": [6]}],
    "unicode_keys": {"ключ": 1, "🔑": 2, "": 3},
}


async def round_trip(store: Any, data: Any) -> Any:
    stream = name()
    await store.append(stream, Event("Json", data))
    [stored] = await collect(store.read_stream(stream))
    return stored.data


def same_json(actual: Any, expected: Any) -> bool:
    """Equal, and every number keeps its kind (an int stays an int, a float a float)."""
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    if isinstance(expected, (int, float)):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(same_json(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same_json(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize("key", list(ROUND_TRIPS))
async def test_value_round_trips_through_a_stream(store: Any, key: str) -> None:
    value = ROUND_TRIPS[key]
    assert same_json(await round_trip(store, {"v": value}), {"v": value})


async def test_every_kind_round_trips_in_one_document(store: Any) -> None:
    assert same_json(await round_trip(store, ROUND_TRIPS), ROUND_TRIPS)


@pytest.mark.parametrize(
    "data", [5, -(2**63), "just a string", 2.5, True, None, [1, [2]], []], ids=repr
)
async def test_top_level_data_need_not_be_an_object(store: Any, data: Any) -> None:
    assert same_json(await round_trip(store, data), data)


async def test_1e16_comes_back_as_a_float(store: Any) -> None:
    back = await round_trip(store, {"x": 1e16, "y": 1e20, "z": -1e17})
    assert isinstance(back["x"], float) and back["x"] == 1e16
    assert isinstance(back["y"], float) and back["y"] == 1e20
    assert isinstance(back["z"], float) and back["z"] == -1e17


async def test_floats_round_trip_bit_for_bit(store: Any) -> None:
    values = [0.1 + 0.2, 2.0**-1074, 1.7976931348623157e308, 123456789.123456789, -2.5e-300]
    back = await round_trip(store, values)
    assert [v.hex() for v in back] == [v.hex() for v in values]


async def test_tuples_come_back_as_lists(store: Any) -> None:
    back = await round_trip(store, {"t": (1, (2, "three")), "e": ()})
    assert back == {"t": [1, [2, "three"]], "e": []}
    assert isinstance(back["t"], list) and isinstance(back["t"][1], list)


async def test_uuid_datetime_date_decimal_come_back_as_strings(store: Any) -> None:
    an_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    aware = datetime(2024, 2, 29, 13, 45, 30, 123456, tzinfo=UTC)
    offset = datetime(2024, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5)))
    naive = datetime(2023, 12, 31, 23, 59, 59)
    day = date(2024, 7, 14)
    back = await round_trip(
        store,
        {
            "id": an_id,
            "aware": aware,
            "offset": offset,
            "naive": naive,
            "day": day,
            "money": Decimal("12.10"),
            "big": Decimal("123456789012345678901234567890.5"),
        },
    )
    assert back == {
        "id": str(an_id),
        "aware": aware.isoformat(),
        "offset": offset.isoformat(),
        "naive": naive.isoformat(),
        "day": day.isoformat(),
        "money": "12.10",
        "big": "123456789012345678901234567890.5",
    }


async def test_metadata_round_trips_every_kind(store: Any) -> None:
    stream = name()
    metadata = {"user": "zoë 🎉", "n": 2**63 - 1, "f": 1e16, "list": [1, (2, 3)], "ok": None}
    await store.append(stream, Event("Json", {}, metadata=metadata))
    [stored] = await collect(store.read_stream(stream))
    expected = {**metadata, "list": [1, [2, 3]]}
    assert same_json(stored.metadata, expected)


async def test_json_round_trips_through_the_queue(store: Any) -> None:
    stream = name()
    metadata = {"m": "😀", "n": -(2**63)}
    await store.enqueue(stream, Event("Json", ROUND_TRIPS, metadata=metadata))
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert same_json(message.data, ROUND_TRIPS)
    assert same_json(message.metadata, metadata)


async def test_json_round_trips_through_dead_letters(store: Any) -> None:
    stream = name()
    data = {"f": 1e16, "s": "𝄞", "i": 2**63 - 1}
    await store.enqueue(stream, Event("Json", data))
    message = await store.dequeue(stream, "c")
    assert message is not None
    assert await store.nack(message, requeue=False)
    [dead] = await store.get_dead_letters(stream)
    assert same_json(dead.data, data)


# ---------------------------------------------------------------- rejections


class Unknown:
    pass


REJECTED: dict[str, Any] = {
    "set": {1, 2},
    "frozenset": frozenset([1]),
    "bytes": b"raw",
    "bytearray": bytearray(b"raw"),
    "object": object(),
    "custom_class": Unknown(),
    "int_key": {1: "one"},
    "tuple_key": {(1, 2): "pair"},
    "none_key": {None: 1},
    "nan": float("nan"),
    "inf": float("inf"),
    "negative_inf": float("-inf"),
    "nul_in_string": "before\x00after",
    "nul_in_key": {"k\x00": 1},
    "lone_surrogate": "\ud800",
    "lone_low_surrogate": "x\udfffy",
    "int_2_63": 2**63,  # integers are signed 64-bit, as bigint and other JSON readers hold
    "uint64_max": 2**64 - 1,
    "int_2_64": 2**64,
    "int_below_min": -(2**63) - 1,
    "huge_int": 10**40,
    "nested_deep": {"a": [1, {"b": {3}}]},
}


@pytest.mark.parametrize("key", list(REJECTED))
async def test_rejected_value_raises_naming_its_path_and_writes_nothing(
    store: Any, key: str
) -> None:
    stream = name()
    batch = [Event("Good", {"fine": 1}), Event("Bad", {"bad": REJECTED[key]})]
    with pytest.raises(SerializationError) as caught:
        await store.append_batch(stream, batch)
    assert isinstance(caught.value, TypeError)
    assert 'events[1].data["bad"]' in str(caught.value)
    assert await store.get_stream_version(stream) == -1
    assert await collect(store.read_stream(stream)) == []


async def test_rejection_names_the_type(store: Any) -> None:
    with pytest.raises(SerializationError, match="set"):
        await store.append(name(), Event("Bad", {"x": {1}}))
    with pytest.raises(SerializationError, match="bytes"):
        await store.append(name(), Event("Bad", [b"x"]))


async def test_rejected_list_item_path_names_the_index(store: Any) -> None:
    with pytest.raises(SerializationError) as caught:
        await store.append_batch(name(), [Event("Bad", {"items": [1, 2, {3}]})])
    assert 'events[0].data["items"][2]' in str(caught.value)


async def test_rejected_metadata_names_its_path(store: Any) -> None:
    stream = name()
    with pytest.raises(SerializationError) as caught:
        await store.append_batch(
            stream, [Event("Good", {}), Event("Bad", {}, metadata={"when": object()})]
        )
    assert 'events[1].metadata["when"]' in str(caught.value)
    assert await store.get_stream_version(stream) == -1


async def test_rejected_metadata_argument_writes_nothing(store: Any) -> None:
    stream = name()
    with pytest.raises(SerializationError):
        await store.append(stream, Event("A", {}), {"bad": float("nan")})
    assert await store.get_stream_version(stream) == -1


@pytest.mark.parametrize("kind", ["dict", "list"])
async def test_reference_cycle_is_rejected(store: Any, kind: str) -> None:
    stream = name()
    cycle: Any
    if kind == "dict":
        cycle = {}
        cycle["self"] = cycle
    else:
        cycle = []
        cycle.append(cycle)
    with pytest.raises(SerializationError) as caught:
        await store.append_batch(stream, [Event("Good", {}), Event("Cycle", cycle)])
    assert "events[1].data" in str(caught.value)
    assert await store.get_stream_version(stream) == -1


async def test_a_bad_event_after_a_stream_exists_writes_nothing(store: Any) -> None:
    stream = name()
    await store.append(stream, Event("First", {}))
    with pytest.raises(SerializationError):
        await store.append_batch(
            stream, [Event("Good", {}), Event("Good", {}), Event("Bad", {"x": {1}})]
        )
    assert await store.get_stream_version(stream) == 0
    assert [e.type for e in await collect(store.read_stream(stream))] == ["First"]


@pytest.mark.parametrize("key", ["set", "nan", "lone_surrogate", "int_2_64"])
async def test_rejected_value_in_an_enqueued_batch_queues_nothing(store: Any, key: str) -> None:
    stream = name()
    with pytest.raises(SerializationError) as caught:
        await store.enqueue_batch(stream, [Event("Good", {}), Event("Bad", {"bad": REJECTED[key]})])
    assert 'events[1].data["bad"]' in str(caught.value)
    assert await store.get_pending_count(stream) == 0
    assert await store.dequeue(stream, "c") is None
