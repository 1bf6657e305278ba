"""Each ``find_events`` filter is served by its index of migration 001, on a table big enough
for the planner to care (50k analyzed events over 500 streams in five categories, types of
skewed frequency, correlation and causation ids, varied data): ``EXPLAIN`` of the very
statement the store sends (``_find_sql``), with the parameters it sends.

A statement prepared once and executed again and again turns to a generic plan after five
executions, made without the parameter values, and for these filters the generic plan walks
the whole feed in position order. So the store plans these queries with their values every
time (unnamed statements, never cached): the plans are checked as first planned, and a test
checks that a reader running the same query many times leaves no cached statement of it."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import pgstreams
from pgstreams import Event, PostgresOptions, _core
from pgstreams.queries import EventQuery
from support import drop_schema, run_sql

STREAMS_PER_CATEGORY = 100
EVENTS_PER_STREAM = 100
CATEGORIES = ["order-", "customer-", "invoice-", "shipment-", "payment-"]
TOTAL = len(CATEGORIES) * STREAMS_PER_CATEGORY * EVENTS_PER_STREAM  # 50,000
TYPES = [f"Type{k}" for k in range(30)]
WEIGHTS = [1 / (k + 1) for k in range(30)]  # Zipf: a few common types, many rare ones
LIMIT = 1000  # the default read_batch_size: what each batch asks for


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def describe(plan: dict[str, Any], depth: int = 0) -> str:
    """The plan as EXPLAIN's text would show its nodes, for failure messages."""
    line = "  " * depth + plan["Node Type"]
    for key in ("Index Name", "Index Cond", "Recheck Cond", "Filter"):
        if key in plan:
            line += f" [{key}: {plan[key]}]"
    return "\n".join([line, *(describe(child, depth + 1) for child in plan.get("Plans", []))])


def literal(value: Any) -> str:
    """A parameter value as an SQL literal of ``EXECUTE``'s argument list."""
    if isinstance(value, bool) or value is None:
        raise TypeError(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(literal(item) for item in value) + "]::text[]"
    if isinstance(value, bytes):
        return literal(value.decode()) + "::jsonb"
    raise TypeError(value)


def micros(value: int) -> str:
    return f"(timestamptz 'epoch' + {value} * interval '1 microsecond')"


def prefix_upper_bound(prefix: str) -> str | None:
    """``db::query::prefix_upper_bound``: the smallest string above all that start with it."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join([*chars, chr(code)])
    return None


def arguments(query: EventQuery, after_position: int, limit: int) -> list[str]:
    """The statement's parameters, numbered as ``conditions()`` in ``rust/src/db/query.rs``
    adds them, then the position cursor and the limit."""
    core = query.to_core()
    args: list[str] = []
    if core["stream"] is not None:
        args.append(literal(core["stream"]))
    if core["stream_prefix"] is not None:
        upper = prefix_upper_bound(core["stream_prefix"])
        if upper is not None:
            args.append(literal(upper))
        args.append(literal(core["stream_prefix"]))
    types = core["event_types"]
    if types is not None:
        # One type is sent as `event_type = $n`, several as `= ANY($n)`.
        args.append(literal(types[0] if len(types) == 1 else types))
    for key in ("correlation_id", "causation_id"):
        if core[key] is not None:
            args.append(literal(core[key]))
    for key in ("since", "until"):
        if core[key] is not None:
            args.append(micros(core[key]))
    for key in ("data_contains", "from_offset", "until_position", "after_position"):
        if core[key] is not None:
            args.append(literal(core[key]))
    return [*args, str(after_position), str(limit)]


async def build(dsn: str, schema: str) -> dict[str, Any]:
    """Fills the schema; returns the values the filters look for."""
    rng = random.Random(20240)
    n = 0
    types: dict[str, int] = {}
    async with pgstreams.connect(dsn, schema_name=schema) as store:
        for s in range(STREAMS_PER_CATEGORY):
            for category in CATEGORIES:
                events = []
                for _ in range(EVENTS_PER_STREAM):
                    n += 1
                    type_ = rng.choices(TYPES, WEIGHTS)[0]
                    types[type_] = types.get(type_, 0) + 1
                    events.append(
                        Event(
                            type_,
                            {
                                "n": n,
                                "customer": {
                                    "id": rng.randrange(5000),
                                    "tier": rng.choice(["gold", "silver", "bronze"]),
                                },
                                "tags": rng.sample(["vip", "eu", "us", "new", "b2b", "gift"], 2),
                                "amount": round(rng.uniform(1, 500), 2),
                            },
                            correlation_id=f"corr-{n // 10}",
                            causation_id=f"cause-{n // 5}" if n % 3 else None,
                        )
                    )
                await store.append_batch(f"{category}{s}", events)
                await asyncio.sleep(0.001)  # a little time between transactions
    await run_sql(dsn, f'ANALYZE "{schema}".events')
    [(oldest, newest)] = await run_sql(
        dsn, f'SELECT min(created_at), max(created_at) FROM "{schema}".events'
    )
    by_frequency = sorted(types, key=lambda t: types[t])
    return {"oldest": oldest, "newest": newest, "rare": by_frequency[:3], "types": types}


@pytest.fixture(scope="module")
def table(pg_dsn: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """One 50k-event schema for every test of this module (built outside the tests' loops)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        found = asyncio.run(build(pg_dsn, schema))
        yield schema, found
    finally:
        asyncio.run(drop_schema(pg_dsn, schema))


def filters(found: dict[str, Any]) -> dict[str, tuple[dict[str, Any], str]]:
    """name -> (find_events arguments, the index that must serve them)."""
    oldest, newest = found["oldest"], found["newest"]
    span = newest - oldest
    rare = found["rare"]
    return {
        "correlation_id": ({"correlation_id": "corr-2500"}, "events_correlation_id_idx"),
        "causation_id": ({"causation_id": "cause-2501"}, "events_causation_id_idx"),
        "one event type": ({"event_type": rare[0]}, "events_event_type_idx"),
        "several event types": ({"event_type": rare[1:3]}, "events_event_type_idx"),
        "data_contains": ({"data_contains": {"customer": {"id": 42}}}, "events_data_idx"),
        "nested data_contains": (
            {"data_contains": {"customer": {"id": 4242, "tier": "gold"}}},
            "events_data_idx",
        ),
        "stream": ({"stream": "order-42"}, "events_stream_offset_key"),
        "stream_prefix": ({"stream_prefix": "invoice-4"}, "events_stream_offset_key"),
        "since and until": (
            {"since": oldest + span * 0.5, "until": oldest + span * 0.51},
            "events_created_at_idx",
        ),
        "since": ({"since": newest - span * 0.01}, "events_created_at_idx"),
        "until": ({"until": oldest + span * 0.01}, "events_created_at_idx"),
    }


FILTERS = [
    "correlation_id",
    "causation_id",
    "one event type",
    "several event types",
    "data_contains",
    "nested data_contains",
    "stream",
    "stream_prefix",
    "since and until",
    "since",
    "until",
]


@pytest.fixture
async def session(pg_dsn: str) -> AsyncIterator[Any]:
    opened = await _core.Session.open(PostgresOptions(pg_dsn).to_core_config(), None)
    yield opened
    await opened.close()


async def explain(
    session: Any, pg_dsn: str, schema: str, query: EventQuery, *, executions_before: int
) -> tuple[dict[str, Any], str]:
    """``EXPLAIN (ANALYZE)`` of ``find``'s statement for ``query`` (its first batch), prepared
    on one connection and executed ``executions_before`` times first, as a pooled connection
    of the store does. Returns the plan and the SQL."""
    async with pgstreams.connect(pg_dsn, schema_name=schema) as store:
        sql = store._core._find_sql(query.to_core())
    assert f'"{schema}".events' in sql and sql.endswith(f"LIMIT ${sql.count('$')}"), sql
    values = ", ".join(arguments(query, -1, LIMIT))
    await session.execute("DEALLOCATE ALL")
    await session.execute(f"PREPARE find AS {sql}")
    for _ in range(executions_before):
        await session.query(f"EXECUTE find({values})")
    [(document,)] = await session.query(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE find({values})")
    return document[0]["Plan"], sql


async def check_plan(
    session: Any,
    pg_dsn: str,
    table: tuple[str, dict[str, Any]],
    filter_name: str,
    executions_before: int,
) -> None:
    schema, found = table
    arguments_, index = filters(found)[filter_name]
    query = EventQuery.checked(
        **{("event_types" if k == "event_type" else k): v for k, v in arguments_.items()}
    )
    plan, sql = await explain(session, pg_dsn, schema, query, executions_before=executions_before)
    shown = f"{filter_name} {arguments_}\n{sql}\n{describe(plan)}"

    # The parameters given are those find_events sends: the same rows come back.
    async with pgstreams.connect(pg_dsn, schema_name=schema) as store:
        matching = [e async for e in store.find_events(**arguments_, limit=LIMIT)]
    assert matching, shown
    assert plan["Actual Rows"] == len(matching), shown

    nodes = list(plan_nodes(plan))
    kinds = [node["Node Type"] for node in nodes]
    assert "Seq Scan" not in kinds, shown
    used = {node.get("Index Name") for node in nodes}
    assert index in used, shown
    assert "events_pkey" not in used, shown  # not a walk of the whole feed in position order
    if index in ("events_data_idx", "events_created_at_idx"):  # GIN and BRIN: bitmaps only
        [scan] = [node for node in nodes if node.get("Index Name") == index]
        assert scan["Node Type"] == "Bitmap Index Scan", shown


@pytest.mark.parametrize("filter_name", FILTERS)
async def test_each_filter_is_planned_on_its_index(
    session: Any, pg_dsn: str, table: tuple[str, dict[str, Any]], filter_name: str
) -> None:
    await check_plan(session, pg_dsn, table, filter_name, executions_before=0)


@pytest.mark.parametrize("filter_name", FILTERS)
async def test_each_filter_is_planned_with_its_values_every_time(
    pg_dsn: str, table: tuple[str, dict[str, Any]], filter_name: str
) -> None:
    """Ten runs of the same query on the store's one connection leave no prepared statement
    of it behind: it is planned with its values each time, never as a generic plan."""
    schema, found = table
    arguments_, _ = filters(found)[filter_name]
    async with pgstreams.connect(pg_dsn, schema_name=schema, max_pool_size=1) as store:
        for _ in range(10):
            assert [e async for e in store.find_events(**arguments_, limit=LIMIT)]
        cached = await store._core.query("SELECT statement FROM pg_prepared_statements")
    assert not [text for (text,) in cached if "ORDER BY position LIMIT" in text], cached


async def test_the_table_is_what_the_plans_were_checked_on(
    pg_dsn: str, table: tuple[str, dict[str, Any]]
) -> None:
    schema, found = table
    [(count, streams, types)] = await run_sql(
        pg_dsn,
        f'SELECT count(*), count(DISTINCT stream_name), count(DISTINCT event_type) FROM "{schema}".events',
    )
    assert (count, streams) == (TOTAL, len(CATEGORIES) * STREAMS_PER_CATEGORY)
    assert types == len(found["types"])
    # The rare types the filters use are rare indeed (well under 1% of the events each).
    assert all(found["types"][t] < TOTAL / 100 for t in found["rare"])


BACKWARD_SQL = (
    "SELECT stream_name, stream_offset, position, event_id, event_type, data, metadata, "
    'correlation_id, causation_id, created_at, version FROM "{schema}".events '
    "WHERE stream_name = $1 AND stream_offset <= $2 ORDER BY stream_offset DESC LIMIT $3"
)


@pytest.mark.parametrize(("start", "limit"), [(2**63 - 1, 1), (2**63 - 1, 10), (50, 10)])
async def test_backward_reads_stay_a_backward_scan_of_the_stream_index_when_reused(
    session: Any, table: tuple[str, dict[str, Any]], start: int, limit: int
) -> None:
    """``get_last_event`` and ``read_stream(backwards=True)``'s statement (``db/read.rs``),
    first planned and as cached after ten executions on one connection."""
    schema, _ = table
    await session.execute("DEALLOCATE ALL")
    await session.execute(f"PREPARE backward AS {BACKWARD_SQL.format(schema=schema)}")
    values = f"'order-42', {start}, {limit}"
    for executions in range(12):
        [(document,)] = await session.query(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE backward({values})"
        )
        plan = document[0]["Plan"]
        shown = f"after {executions} executions:\n{describe(plan)}"
        nodes = list(plan_nodes(plan))
        kinds = [node["Node Type"] for node in nodes]
        assert "Seq Scan" not in kinds and "Sort" not in kinds, shown
        [scan] = [node for node in nodes if node.get("Index Name")]
        assert scan["Index Name"] == "events_stream_offset_key", shown
        assert scan["Scan Direction"] == "Backward", shown
        assert scan["Actual Rows"] == min(limit, EVENTS_PER_STREAM, start + 1), shown
