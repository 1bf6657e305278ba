"""Finding events by what they are (``find_events``: correlation and causation ids, types, stream,
category, time, data containment, limit) and the global feed's filters (``read_all``'s
``event_types``, ``stream_prefix``, ``until_position``): each alone and combined, always in
position order, across read batches."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from pgstreams import ConfigurationError, Event, SerializationError

from .helpers import collect, name


async def find(store: Any, **filters: Any) -> list[Any]:
    return await collect(store.find_events(**filters))


async def read_all(store: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return await collect(store.read_all(*args, **kwargs))


def labels(events: list[Any]) -> list[str]:
    return [e.data["label"] for e in events]


def in_position_order(events: list[Any]) -> bool:
    positions = [e.position for e in events]
    return positions == sorted(positions) and len(set(positions)) == len(positions)


def ev(label: str, type_: str = "E", **fields: Any) -> Event:
    data = {"label": label, **fields.pop("data", {})}
    return Event(type_, data, **fields)


# ---------------------------------------------------------------- each filter alone


async def test_find_events_without_filters_is_every_event(store: Any) -> None:
    first, second = name(), name()
    await store.append(first, ev("a"))
    await store.append(second, ev("b"))
    await store.append(first, ev("c"))
    found = await find(store)
    assert labels(found) == ["a", "b", "c"]
    assert found == await read_all(store)


async def test_by_correlation_id(store: Any) -> None:
    first, second = name(), name()
    await store.append(first, ev("a", correlation_id="order-42"))
    await store.append(second, ev("x", correlation_id="order-4"))
    await store.append(second, ev("b", correlation_id="order-42"))
    await store.append(first, ev("y"))
    await store.append(first, ev("c", correlation_id="order-42"))
    found = await find(store, correlation_id="order-42")
    assert labels(found) == ["a", "b", "c"]
    assert in_position_order(found)
    assert {e.stream for e in found} == {first, second}
    assert all(e.correlation_id == "order-42" for e in found)
    assert await find(store, correlation_id="order-") == []
    assert await find(store, correlation_id="nobody") == []


async def test_by_causation_id(store: Any) -> None:
    stream = name()
    await store.append(stream, ev("a", causation_id="cmd-1", correlation_id="c"))
    await store.append(stream, ev("x", causation_id="cmd-2", correlation_id="cmd-1"))
    await store.append(name(), ev("b", causation_id="cmd-1"))
    await store.append(stream, ev("y"))
    found = await find(store, causation_id="cmd-1")
    assert labels(found) == ["a", "b"]
    assert all(e.causation_id == "cmd-1" for e in found)
    assert labels(await find(store, causation_id="cmd-2")) == ["x"]
    assert await find(store, causation_id="c") == []


async def test_by_one_event_type_or_several(store: Any) -> None:
    first, second = name(), name()
    await store.append(first, ev("a", "OrderPlaced"))
    await store.append(second, ev("b", "OrderShipped"))
    await store.append(first, ev("c", "OrderPaid"))
    await store.append(second, ev("d", "OrderPlaced"))
    await store.append(first, ev("e", "orderplaced"))  # types are case-sensitive
    assert labels(await find(store, event_type="OrderPlaced")) == ["a", "d"]
    assert labels(await find(store, event_type=["OrderPlaced"])) == ["a", "d"]
    assert labels(await find(store, event_type=["OrderPlaced", "OrderPaid"])) == ["a", "c", "d"]
    assert labels(await find(store, event_type=("OrderPaid", "OrderShipped"))) == ["b", "c"]
    assert labels(await find(store, event_type=iter(["OrderShipped", "Nope"]))) == ["b"]
    # A type given twice selects its events once.
    assert labels(await find(store, event_type=["OrderPaid", "OrderPaid"])) == ["c"]
    assert await find(store, event_type="Order") == []


async def test_an_empty_list_of_types_is_refused(store: Any) -> None:
    with pytest.raises(ConfigurationError, match="event_type"):
        await find(store, event_type=[])


async def test_by_stream(store: Any) -> None:
    mine, other = name(), name()
    await store.append(mine, ev("a"))
    await store.append(other, ev("x"))
    await store.append(f"{mine}-child", ev("y"))  # a longer name is another stream
    await store.append(mine, ev("b"))
    found = await find(store, stream=mine)
    assert labels(found) == ["a", "b"]
    assert [e.offset for e in found] == [0, 1]
    assert await find(store, stream=name()) == []


async def test_by_stream_prefix_a_category(store: Any) -> None:
    tag = name("t")
    streams = {
        "o1": f"{tag}order-1",
        "o12": f"{tag}order-12",
        "o2": f"{tag}order-2",
        "orders": f"{tag}orders",
        "order": f"{tag}order",
        "Order": f"{tag}Order-1",
        "customer": f"{tag}customer-1",
    }
    for key in ["o1", "customer", "o12", "orders", "o2", "order", "Order", "o1"]:
        await store.append(streams[key], ev(key))
    found = await find(store, stream_prefix=f"{tag}order-")
    assert labels(found) == ["o1", "o12", "o2", "o1"]
    assert in_position_order(found)
    # A prefix that is a prefix of other prefixes selects only what it starts.
    assert labels(await find(store, stream_prefix=f"{tag}order-1")) == ["o1", "o12", "o1"]
    assert labels(await find(store, stream_prefix=f"{tag}order-12")) == ["o12"]
    assert labels(await find(store, stream_prefix=f"{tag}order")) == [
        "o1",
        "o12",
        "orders",
        "o2",
        "order",
        "o1",
    ]
    assert labels(await find(store, stream_prefix=f"{tag}Order")) == ["Order"]
    assert await find(store, stream_prefix=f"{tag}order-3") == []
    # A whole stream name is a prefix of itself.
    assert labels(await find(store, stream_prefix=streams["o2"])) == ["o2"]


PREFIXES = [
    # (prefix, stream names it starts, stream names it does not)
    (
        "zamówienie-",
        ["zamówienie-1", "zamówienie-ż"],
        ["zamówienia-1", "zamówienie", "zamowienie-1"],
    ),
    ("注文-", ["注文-1", "注文-二"], ["注文", "注文x-1", "注-1"]),
    ("🚀", ["🚀", "🚀-launch"], ["🚁", "🚃-🚀", "x🚀"]),
    ("a%_", ["a%_", "a%_1"], ["abc", "a%1", "a_%"]),  # LIKE's wildcards are plain characters
    ("x\ud7ff", ["x\ud7ff", "x\ud7ffz"], ["x\ue000", "x\ud7fe"]),  # below the surrogates
    ("a\U0010ffff", ["a\U0010ffff", "a\U0010ffff\U0010ffff"], ["b", "a", "a\U0010fffe"]),
    ("\U0010ffff", ["\U0010ffff", "\U0010ffffq"], ["\U0010fffe", "\U0010fffe\U0010ffff"]),
    ("ß", ["ß", "ßa"], ["ss", "SS", "ẞ"]),  # no collation rules: code points only
]


@pytest.mark.parametrize(("prefix", "inside", "outside"), PREFIXES, ids=ascii)
async def test_stream_prefix_compares_code_points(
    make_store: Any, prefix: str, inside: list[str], outside: list[str]
) -> None:
    store = await make_store()
    for stream in sorted([*inside, *outside]):
        await store.append(stream, ev(stream))
    assert sorted(labels(await find(store, stream_prefix=prefix))) == sorted(inside)
    assert sorted(labels(await read_all(store, stream_prefix=prefix))) == sorted(inside)


async def timed(store: Any, stream: str, count: int) -> list[Any]:
    """``count`` events appended one at a time, each with a later timestamp than the one before."""
    for i in range(count):
        await store.append(stream, ev(str(i)))
        await asyncio.sleep(0.003)
    events = await collect(store.read_stream(stream))
    times = [e.timestamp for e in events]
    assert times == sorted(times) and len(set(times)) == count, times
    return events


async def test_by_time_half_open(store: Any) -> None:
    stream = name()
    events = await timed(store, stream, 6)
    t = [e.timestamp for e in events]
    assert all(moment.tzinfo is not None for moment in t)
    assert labels(await find(store, since=t[2])) == ["2", "3", "4", "5"]  # since: inclusive
    assert labels(await find(store, until=t[2])) == ["0", "1"]  # until: exclusive
    assert labels(await find(store, since=t[1], until=t[4])) == ["1", "2", "3"]
    assert await find(store, since=t[3], until=t[3]) == []
    assert await find(store, since=t[4], until=t[1]) == []
    assert labels(await find(store, since=t[5] - timedelta(microseconds=1))) == ["5"]
    assert labels(await find(store, until=t[0] + timedelta(microseconds=1))) == ["0"]
    assert await find(store, since=t[5] + timedelta(microseconds=1)) == []
    # Any time zone: the same instants.
    tokyo = timezone(timedelta(hours=9))
    assert labels(
        await find(store, since=t[1].astimezone(tokyo), until=t[3].astimezone(tokyo))
    ) == [
        "1",
        "2",
    ]


@pytest.mark.parametrize("bound", ["since", "until"])
async def test_naive_datetimes_are_refused(store: Any, bound: str) -> None:
    await store.append(name(), ev("a"))
    naive = datetime.now(UTC).replace(tzinfo=None)
    with pytest.raises(ConfigurationError) as caught:
        await find(store, **{bound: naive})
    assert isinstance(caught.value, ValueError)
    assert bound in str(caught.value)
    assert "timezone" in str(caught.value)


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00Z", date(2024, 1, 1), 1700000000])
@pytest.mark.parametrize("bound", ["since", "until"])
async def test_time_bounds_must_be_datetimes(store: Any, bound: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=bound):
        await find(store, **{bound: value})


ORDER = {
    "customer": {"id": 7, "tier": "gold", "tags": ["vip", "eu"]},
    "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}],
    "total": 12.5,
    "paid": True,
    "note": None,
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({}, ["order", "other", "flat"]),  # every object contains the empty one
        ({"customer": {"id": 7}}, ["order"]),
        ({"customer": {"id": 7.0}}, ["order"]),  # numbers compare by value
        ({"customer": {"id": "7"}}, []),
        ({"customer": {"tier": "gold", "id": 7}}, ["order"]),
        ({"customer": {"tags": ["eu"]}}, ["order"]),
        ({"customer": {"tags": ["eu", "vip"]}}, ["order"]),  # any order
        ({"customer": {"tags": ["us"]}}, []),
        ({"customer": {"tags": []}}, ["order", "other"]),
        ({"items": [{"sku": "B"}]}, ["order"]),
        ({"items": [{"sku": "B", "qty": 2}, {"sku": "A"}]}, ["order"]),
        ({"items": [{"sku": "B", "qty": 1}]}, []),  # one element must hold all of it
        ({"paid": True}, ["order"]),
        ({"paid": 1}, []),
        ({"note": None}, ["order"]),
        ({"total": 12.5, "customer": {}}, ["order"]),
        ({"customer": 7}, []),
        ({"label": "flat", "id": 7}, ["flat"]),
        ({"id": 7}, ["flat"]),  # only at its own level: not the nested customer.id
        ({"tier": "gold"}, []),
    ],
    ids=repr,
)
async def test_by_data_containment(store: Any, pattern: Any, expected: list[str]) -> None:
    await store.append(name(), ev("order", data=ORDER))
    await store.append(name(), ev("other", data={"customer": {"id": 8, "tags": ["vip"]}}))
    await store.append(name(), ev("flat", data={"id": 7, "tier": 3}))
    await store.append(name(), Event("List", [1, 2, {"k": "v"}]))
    found = await find(store, data_contains=pattern)
    assert [e.data["label"] if isinstance(e.data, dict) else e.type for e in found] == expected


async def test_containment_of_top_level_arrays(store: Any) -> None:
    await store.append(name(), Event("List", [1, 2, {"k": "v", "n": 1}]))
    await store.append(name(), Event("Object", {"k": "v"}))
    assert [e.type for e in await find(store, data_contains=[2, 1])] == ["List"]
    assert [e.type for e in await find(store, data_contains=[{"k": "v"}])] == ["List"]
    assert [e.type for e in await find(store, data_contains=[3])] == []
    assert [e.type for e in await find(store, data_contains={"k": "v"})] == ["Object"]


async def test_a_document_that_cannot_be_json_is_refused(store: Any) -> None:
    with pytest.raises(SerializationError, match="data_contains"):
        await find(store, data_contains={"a": {1, 2}})


async def test_limit(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    stream = name()
    await store.append_batch(
        stream, [ev(str(i), "Even" if i % 2 == 0 else "Odd") for i in range(20)]
    )
    assert labels(await find(store, stream=stream, limit=2)) == ["0", "1"]
    assert labels(await find(store, event_type="Even", limit=4)) == ["0", "2", "4", "6"]
    assert labels(await find(store, event_type="Odd", limit=7)) == [str(i) for i in range(1, 14, 2)]
    assert len(await find(store, event_type="Odd", limit=100)) == 10
    assert await find(store, stream=stream, limit=0) == []
    with pytest.raises(ConfigurationError, match="limit"):
        await find(store, limit=-1)


async def test_pagination_across_batches_skips_and_repeats_nothing(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    wanted, noise = name("w"), name("n")
    for i in range(25):
        await store.append(wanted, ev(f"w{i}", "Wanted", correlation_id="c"))
        if i % 3 == 0:
            await store.append(noise, ev(f"n{i}", "Noise", correlation_id="c"))
    for filters in [
        {"stream": wanted},
        {"event_type": "Wanted"},
        {"stream_prefix": "w-"},
        {"data_contains": {"label": "w3"}},
    ]:
        found = await find(store, **filters)
        assert in_position_order(found)
        expected = [f"w{i}" for i in range(25)] if "data_contains" not in filters else ["w3"]
        assert labels(found) == expected, filters
    assert len(await find(store, correlation_id="c")) == 25 + 9


async def test_find_events_sees_events_appended_between_batches(make_store: Any) -> None:
    store = await make_store(read_batch_size=2)
    stream = name()
    for i in range(3):
        await store.append(stream, ev(str(i), "T"))
    seen = []
    async for event in store.find_events(event_type="T"):
        seen.append(event.data["label"])
        if event.data["label"] == "0":
            await store.append(stream, ev("late", "T"))
            await store.append(stream, ev("other", "U"))
    assert seen == ["0", "1", "2", "late"]


# ---------------------------------------------------------------- filters combined


async def combined_fixture(store: Any) -> tuple[str, list[Any]]:
    """Events that differ in every filtered field, over a category of streams."""
    tag = name("c")
    plan = [
        ("order-1", "Placed", "k1", "x", {"amount": 10, "region": "eu"}),
        ("order-2", "Placed", "k2", None, {"amount": 20, "region": "us"}),
        ("order-1", "Paid", "k1", "y", {"amount": 10, "region": "eu"}),
        ("invoice-1", "Paid", "k1", "x", {"amount": 10, "region": "eu"}),
        ("order-12", "Shipped", "k1", "x", {"amount": 30, "region": "eu"}),
        ("order-2", "Paid", "k2", "y", {"amount": 20, "region": "us"}),
        ("order-1", "Shipped", "k1", "x", {"amount": 10, "region": "us"}),
    ]
    for i, (stream, type_, correlation, causation, data) in enumerate(plan):
        await store.append(
            f"{tag}{stream}",
            ev(str(i), type_, correlation_id=correlation, causation_id=causation, data=data),
        )
        await asyncio.sleep(0.003)
    return tag, await read_all(store)


async def test_filters_combined_select_what_all_of_them_select(store: Any) -> None:
    tag, everything = await combined_fixture(store)
    t = [e.timestamp for e in everything]
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"correlation_id": "k1", "event_type": "Paid"}, ["2", "3"]),
        ({"correlation_id": "k1", "stream_prefix": f"{tag}order-"}, ["0", "2", "4", "6"]),
        ({"correlation_id": "k1", "stream_prefix": f"{tag}order-1"}, ["0", "2", "4", "6"]),
        ({"causation_id": "x", "event_type": ["Shipped", "Placed"]}, ["0", "4", "6"]),
        ({"stream": f"{tag}order-1", "data_contains": {"region": "eu"}}, ["0", "2"]),
        (
            {
                "stream_prefix": f"{tag}order-",
                "event_type": "Paid",
                "data_contains": {"amount": 20},
            },
            ["5"],
        ),
        ({"stream_prefix": f"{tag}order-", "since": t[2], "until": t[5]}, ["2", "4"]),
        ({"event_type": "Paid", "since": t[3]}, ["3", "5"]),
        ({"correlation_id": "k1", "causation_id": "x", "until": t[4]}, ["0", "3"]),
        ({"stream": f"{tag}order-1", "stream_prefix": f"{tag}order-"}, ["0", "2", "6"]),
        ({"stream": f"{tag}order-1", "stream_prefix": f"{tag}invoice-"}, []),
        ({"correlation_id": "k2", "event_type": "Shipped"}, []),
        ({"correlation_id": "k1", "data_contains": {"region": "eu"}, "limit": 2}, ["0", "2"]),
        (
            {
                "correlation_id": "k1",
                "causation_id": "x",
                "event_type": ["Shipped", "Paid"],
                "stream_prefix": f"{tag}order-1",
                "since": t[1],
                "until": t[6] + timedelta(microseconds=1),
                "data_contains": {"region": "us"},
            },
            ["6"],
        ),
    ]
    for filters, expected in cases:
        found = await find(store, **filters)
        assert labels(found) == expected, filters
        assert in_position_order(found)


# ---------------------------------------------------------------- read_all's filters


async def test_read_all_by_event_types(store: Any) -> None:
    _, everything = await combined_fixture(store)
    assert labels(await read_all(store, event_types="Paid")) == ["2", "3", "5"]
    assert labels(await read_all(store, event_types=["Placed", "Shipped"])) == ["0", "1", "4", "6"]
    assert await read_all(store, event_types=["Nope"]) == []
    assert await read_all(store, event_types=None) == everything


async def test_read_all_by_stream_prefix(store: Any) -> None:
    tag, _ = await combined_fixture(store)
    assert labels(await read_all(store, stream_prefix=f"{tag}order-")) == [
        "0",
        "1",
        "2",
        "4",
        "5",
        "6",
    ]
    assert labels(await read_all(store, stream_prefix=f"{tag}order-1")) == ["0", "2", "4", "6"]
    assert labels(await read_all(store, stream_prefix=f"{tag}invoice")) == ["3"]
    assert await read_all(store, stream_prefix=f"{tag}x") == []


async def test_read_all_until_position_is_inclusive(store: Any) -> None:
    _, everything = await combined_fixture(store)
    p = [e.position for e in everything]
    assert labels(await read_all(store, until_position=p[2])) == ["0", "1", "2"]
    assert labels(await read_all(store, until_position=p[0])) == ["0"]
    assert await read_all(store, until_position=p[0] - 1) == []
    assert await read_all(store, until_position=0) == []
    assert await read_all(store, until_position=p[-1] + 1000) == everything
    assert labels(await read_all(store, p[2], until_position=p[4])) == ["3", "4"]
    assert await read_all(store, p[4], until_position=p[4]) == []


async def test_read_all_filters_combined_with_after_position_and_max_count(store: Any) -> None:
    tag, everything = await combined_fixture(store)
    p = [e.position for e in everything]
    prefix = f"{tag}order-"
    assert labels(await read_all(store, event_types="Paid", stream_prefix=prefix)) == ["2", "5"]
    assert labels(await read_all(store, p[2], event_types="Paid", stream_prefix=prefix)) == ["5"]
    assert labels(await read_all(store, stream_prefix=prefix, until_position=p[4])) == [
        "0",
        "1",
        "2",
        "4",
    ]
    assert labels(await read_all(store, stream_prefix=prefix, max_count=3)) == ["0", "1", "2"]
    assert labels(
        await read_all(
            store, p[0], stream_prefix=prefix, event_types=["Paid", "Shipped"], max_count=2
        )
    ) == ["2", "4"]
    assert labels(
        await read_all(
            store, p[1], event_types=["Paid", "Shipped"], until_position=p[5], max_count=10
        )
    ) == ["2", "3", "4", "5"]
    assert await read_all(store, stream_prefix=prefix, max_count=0) == []


async def test_filtered_read_all_resumes_exactly_after_the_last_position(make_store: Any) -> None:
    store = await make_store(read_batch_size=3)
    tag = name("r")
    for i in range(40):
        stream = f"{tag}{'a' if i % 4 else 'b'}-{i % 5}"
        await store.append(stream, ev(str(i), "Odd" if i % 2 else "Even"))
    expected = [str(i) for i in range(40) if i % 4 and i % 2 == 0]
    whole = await read_all(store, event_types="Even", stream_prefix=f"{tag}a-")
    assert labels(whole) == expected
    pages, position = [], None
    while True:
        page = await read_all(
            store, position, max_count=2, event_types=["Even"], stream_prefix=f"{tag}a-"
        )
        if not page:
            break
        pages.extend(page)
        position = page[-1].position
    assert pages == whole
    assert labels(await read_all(store, until_position=whole[4].position, event_types="Even")) == [
        str(i) for i in range(0, int(whole[4].data["label"]) + 1, 2)
    ]


@pytest.mark.parametrize(
    ("filters", "argument"),
    [
        ({"event_types": []}, "event_types"),
        ({"event_types": ""}, "event_types"),
        ({"event_types": [1]}, "event_types"),
        ({"stream_prefix": ""}, "stream_prefix"),
        ({"until_position": -1}, "until_position"),
        ({"until_position": True}, "until_position"),
    ],
    ids=repr,
)
async def test_bad_read_all_filters_are_refused(store: Any, filters: Any, argument: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await read_all(store, **filters)
    assert argument in str(caught.value)
