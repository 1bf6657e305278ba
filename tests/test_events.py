"""``Event`` checks its arguments where it is made: a wrong id, type or metadata fails at
once, naming the argument, instead of surfacing later as an AttributeError or a misleading
message from the store."""

from __future__ import annotations

import uuid

import pytest

from pgstreams import ConfigurationError, Event, SerializationError


def test_an_id_may_be_a_uuid_or_its_text() -> None:
    value = uuid.uuid4()
    assert Event("E", {}, id=value).id == value
    assert Event("E", {}, id=str(value)).id == value


@pytest.mark.parametrize("bad", ["abc", "", "12345678-1234-1234-1234-12345678901"])
def test_an_id_that_is_not_a_uuid_is_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="id"):
        Event("E", {}, id=bad)


@pytest.mark.parametrize("bad", [5, 1.5, b"bytes", object()])
def test_an_id_of_another_type_is_refused(bad: object) -> None:
    with pytest.raises(SerializationError, match="id"):
        Event("E", {}, id=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [123, None, b"E", ["E"]])
def test_a_type_must_be_a_str(bad: object) -> None:
    with pytest.raises(SerializationError, match="type must be a str") as caught:
        Event(bad, {})  # type: ignore[arg-type]
    assert "None" not in str(caught.value).split("got")[0]  # it does not say None is fine


def test_an_empty_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="type must not be empty"):
        Event("", {})


@pytest.mark.parametrize("bad", [[("a", 1)], "text", 5])
def test_metadata_must_be_a_mapping(bad: object) -> None:
    with pytest.raises(SerializationError, match="metadata"):
        Event("E", {}, metadata=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["correlation_id", "causation_id"])
def test_correlation_and_causation_ids_are_str_or_none(name: str) -> None:
    assert getattr(Event("E", {}, **{name: None}), name) is None
    assert getattr(Event("E", {}, **{name: "x"}), name) == "x"
    with pytest.raises(SerializationError, match=name):
        Event("E", {}, **{name: 5})  # type: ignore[arg-type]
