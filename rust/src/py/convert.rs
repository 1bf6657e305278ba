//! Conversions across the boundary, each done once per batch under the GIL: Python events
//! into owned `NewEvent`s before any I/O, and fetched rows into Python objects after it.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use tokio_postgres::Row;

use crate::config::MAX_NAME_BYTES;
use crate::db::append::NewEvent;
use crate::db::pgtypes::{JsonText, Micros, RawJson, RawText};
use crate::db::queue::{Receipt, DEQUEUE_ROW_OFFSET};
use crate::db::read::BadRow;
use crate::errors::{SerializationError, UndecodableEventError};
use crate::json;
use crate::py::event::Event;
use crate::py::types::{DeadLetter, LazyTime, LazyUuid, QueuedEvent, StoredEvent};

fn encode_json(value: &Bound<'_, PyAny>, path: impl FnOnce() -> String) -> PyResult<JsonText> {
    json::encode(value)
        .map(JsonText)
        .map_err(|e| SerializationError::new_err(e.describe(&path())))
}

/// A text field of an event: None, or a str PostgreSQL can store (no NUL, no lone surrogate).
fn optional_text(
    value: Option<Bound<'_, PyAny>>,
    path: impl Fn() -> String,
) -> PyResult<Option<String>> {
    value.map(|v| text(v, path)).transpose()
}

fn text(value: Bound<'_, PyAny>, path: impl Fn() -> String) -> PyResult<String> {
    let text = value
        .cast::<PyString>()
        .map_err(|_| SerializationError::new_err(format!("{}: must be a str", path())))?;
    let text = text.to_str().map_err(|_| {
        SerializationError::new_err(format!("{}: contains a lone surrogate", path()))
    })?;
    if text.contains('\0') {
        return Err(SerializationError::new_err(format!(
            "{}: contains the NUL character, which PostgreSQL rejects",
            path()
        )));
    }
    if text.len() > MAX_NAME_BYTES {
        return Err(SerializationError::new_err(format!(
            "{}: is longer than {MAX_NAME_BYTES} bytes in UTF-8",
            path()
        )));
    }
    Ok(text.to_owned())
}

/// Reads one `pgstreams.Event`; `label` names it in errors (`events[3]`). The Event checked
/// its own arguments when it was made; what is checked here is what storing needs: JSON, no
/// NUL, no lone surrogates.
fn new_event(event: &Bound<'_, PyAny>, label: &dyn Fn() -> String) -> PyResult<NewEvent> {
    let py = event.py();
    let event = event.cast::<Event>().map_err(|_| {
        SerializationError::new_err(format!(
            "{} must be a pgstreams.Event, got {}",
            label(),
            event
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let event = event.get();
    let optional = |value: &Option<Py<PyString>>, field: &str| {
        optional_text(
            value.as_ref().map(|t| t.bind(py).clone().into_any()),
            || format!("{}.{field}", label()),
        )
    };
    Ok(NewEvent {
        id: event.id.uuid(py)?,
        event_type: text(event.r#type.bind(py).clone().into_any(), || {
            format!("{}.type", label())
        })?,
        data: encode_json(event.data.bind(py), || format!("{}.data", label()))?,
        metadata: encode_json(event.metadata.bind(py).as_any(), || {
            format!("{}.metadata", label())
        })?,
        correlation_id: optional(&event.correlation_id, "correlation_id")?,
        causation_id: optional(&event.causation_id, "causation_id")?,
        version: event.version,
    })
}

/// Converts a whole batch before anything is sent, so one bad event means nothing is written.
pub fn new_events(events: &Bound<'_, PyAny>) -> PyResult<Vec<NewEvent>> {
    let mut converted = Vec::new();
    for (index, event) in events.try_iter()?.enumerate() {
        converted.push(new_event(&event?, &|| format!("events[{index}]"))?);
    }
    Ok(converted)
}

/// Shares one Python string per distinct value within a batch: a read of 1000 events of one
/// stream and a handful of types builds a handful of strings, not 2000.
#[derive(Default)]
pub struct StringCache<'a> {
    strings: HashMap<&'a str, Py<PyString>>,
}

impl<'a> StringCache<'a> {
    pub fn get(&mut self, py: Python<'_>, text: &'a str) -> Py<PyString> {
        self.strings
            .entry(text)
            .or_insert_with(|| PyString::new(py, text).unbind())
            .clone_ref(py)
    }

    pub fn optional(&mut self, py: Python<'_>, text: Option<&'a str>) -> Option<Py<PyString>> {
        text.map(|t| self.get(py, t))
    }
}

/// Reads the cells of one fetched row, turning any failure into a sentence (never a panic:
/// `Row::get` panics on a value it cannot convert, such as text that is not UTF-8 in a
/// `SQL_ASCII` database another tool wrote).
struct Cells<'r> {
    row: &'r Row,
    offset: usize,
}

impl<'r> Cells<'r> {
    fn get<T: postgres_types::FromSql<'r>>(&self, index: usize) -> Result<T, String> {
        let index = self.offset + index;
        self.row
            .try_get(index)
            .map_err(|error| format!("column {:?}: {error}", self.row.columns()[index].name()))
    }

    fn json<'py>(
        &self,
        py: Python<'py>,
        index: usize,
        keys: &mut json::KeyCache,
    ) -> Result<Py<PyAny>, String> {
        let raw: RawJson<'r> = self.get(index)?;
        json::decode_cached(py, raw.0, keys)
            .map(Bound::unbind)
            .map_err(|error| {
                format!(
                    "column {:?}: invalid JSON: {error}",
                    self.row.columns()[self.offset + index].name()
                )
            })
    }
}

/// What `stored_events` gives Python: the events up to the first row that could not be
/// decoded, and that row's error (`UndecodableEventError`), if any. The reader yields the
/// good events, then raises.
pub type EventsAndError<'py> = (Bound<'py, PyList>, Option<Py<PyAny>>);

fn stored_event<'r>(
    py: Python<'_>,
    cells: &Cells<'r>,
    strings: &mut StringCache<'r>,
    keys: &mut json::KeyCache,
) -> Result<StoredEvent, String> {
    Ok(StoredEvent {
        stream: strings.get(py, cells.get(0)?),
        offset: cells.get(1)?,
        position: cells.get(2)?,
        id: LazyUuid::Raw(cells.get(3)?),
        r#type: strings.get(py, cells.get(4)?),
        data: cells.json(py, 5, keys)?,
        metadata: cells.json(py, 6, keys)?,
        correlation_id: strings.optional(py, cells.get(7)?),
        causation_id: strings.optional(py, cells.get(8)?),
        timestamp: LazyTime::Micros(cells.get::<Micros>(9)?.0),
        version: i64::from(cells.get::<i32>(10)?),
    })
}

/// The `UndecodableEventError` of an event, named as far as it could be read.
fn undecodable_event(
    py: Python<'_>,
    stream: Option<String>,
    offset: Option<i64>,
    position: Option<i64>,
    id: Option<uuid::Uuid>,
    cause: &str,
) -> Py<PyAny> {
    let message = format!(
        "cannot decode the event at offset {} of stream {:?} (position {}, id {}): {cause}",
        offset.map_or("?".into(), |o| o.to_string()),
        stream.as_deref().unwrap_or("?"),
        position.map_or("?".into(), |p| p.to_string()),
        id.map_or("?".into(), |i| i.to_string()),
    );
    UndecodableEventError::new_err((message, stream, offset, position, id.map(|i| i.to_string())))
        .into_value(py)
        .into_any()
}

/// Rows of `events` (columns as in `read::EVENT_COLUMNS`) -> `StoredEvent`s, up to the first
/// row that cannot be decoded (or the row the server could not send, `bad`), and its error.
pub fn stored_events<'py>(
    py: Python<'py>,
    rows: &[Row],
    bad: Option<&BadRow>,
) -> PyResult<EventsAndError<'py>> {
    let mut strings = StringCache::default();
    let mut keys = json::KeyCache::default();
    let list = PyList::empty(py);
    for row in rows {
        let cells = Cells { row, offset: 0 };
        match stored_event(py, &cells, &mut strings, &mut keys) {
            Ok(event) => list.append(Bound::new(py, event)?)?,
            Err(cause) => {
                let stream = row
                    .try_get::<_, RawText<'_>>(0)
                    .ok()
                    .map(|text| String::from_utf8_lossy(text.0).into_owned());
                let error = undecodable_event(
                    py,
                    stream,
                    row.try_get(1).ok(),
                    row.try_get(2).ok(),
                    row.try_get(3).ok(),
                    &cause,
                );
                return Ok((list, Some(error)));
            }
        }
    }
    let error = bad.map(|b| {
        undecodable_event(
            py,
            Some(b.stream.clone()),
            Some(b.offset),
            Some(b.position),
            Some(b.id),
            &b.cause,
        )
    });
    Ok((list, error))
}

fn queued_event<'r>(
    py: Python<'_>,
    cells: &Cells<'r>,
    strings: &mut StringCache<'r>,
    keys: &mut json::KeyCache,
) -> Result<QueuedEvent, String> {
    Ok(QueuedEvent {
        id: LazyUuid::Raw(cells.get(0)?),
        stream: strings.get(py, cells.get(1)?),
        r#type: strings.get(py, cells.get(2)?),
        data: cells.json(py, 3, keys)?,
        metadata: cells.json(py, 4, keys)?,
        correlation_id: strings.optional(py, cells.get(5)?),
        causation_id: strings.optional(py, cells.get(6)?),
        delivery_count: i64::from(cells.get::<i32>(7)?),
        enqueued_at: LazyTime::Micros(cells.get::<Micros>(8)?.0),
        consumer_id: strings.optional(py, cells.get(9)?),
        lease_expires_at: LazyTime::Micros(cells.get::<Micros>(10)?.0),
        lease: LazyUuid::Raw(cells.get(11)?),
    })
}

/// A leased message that could not be decoded: its receipt and why.
pub struct UndecodableMessage {
    pub receipt: Receipt,
    pub cause: String,
}

/// Rows of a dequeue (message columns from `DEQUEUE_ROW_OFFSET`) -> `QueuedEvent`s, and the
/// messages that could not be decoded (the caller dead-letters them: no consumer could
/// ever handle them, and delivering them again would only burn deliveries).
pub fn queued_events<'py>(
    py: Python<'py>,
    rows: &[Row],
) -> PyResult<(Bound<'py, PyList>, Vec<UndecodableMessage>)> {
    let mut strings = StringCache::default();
    let mut keys = json::KeyCache::default();
    let list = PyList::empty(py);
    let mut undecodable = Vec::new();
    for row in rows {
        let cells = Cells {
            row,
            offset: DEQUEUE_ROW_OFFSET,
        };
        match queued_event(py, &cells, &mut strings, &mut keys) {
            Ok(event) => list.append(Bound::new(py, event)?)?,
            Err(cause) => {
                // The id and lease are uuids, always decodable.
                let receipt = Receipt {
                    id: row.get(DEQUEUE_ROW_OFFSET),
                    lease: row.get(DEQUEUE_ROW_OFFSET + 11),
                };
                undecodable.push(UndecodableMessage { receipt, cause });
            }
        }
    }
    Ok((list, undecodable))
}

/// A text cell of a dead letter, decoded leniently: a listing of what failed must show every
/// row, whatever another tool wrote in it.
fn lenient_text(row: &Row, index: usize) -> Option<String> {
    row.try_get::<_, Option<RawText<'_>>>(index)
        .ok()
        .flatten()
        .map(|text| String::from_utf8_lossy(text.0).into_owned())
}

/// A JSON cell of a dead letter, sent as its text's bytes: its value, or those bytes when it
/// cannot be decoded.
fn lenient_json(py: Python<'_>, row: &Row, index: usize, keys: &mut json::KeyCache) -> Py<PyAny> {
    let Ok(RawText(text)) = row.try_get::<_, RawText<'_>>(index) else {
        return py.None();
    };
    match json::decode_cached(py, text, keys) {
        Ok(value) => value.unbind(),
        Err(_) => PyBytes::new(py, text).into_any().unbind(),
    }
}

/// Rows of a dead-letter listing (columns as in `queue_admin::Statements::dead_letters`) ->
/// `DeadLetter`s. Every row comes back: a JSON value that cannot be decoded is given as its
/// raw bytes, text that is not UTF-8 with replacement characters.
pub fn dead_letters<'py>(py: Python<'py>, rows: &[Row]) -> PyResult<Bound<'py, PyList>> {
    let mut keys = json::KeyCache::default();
    let list = PyList::empty(py);
    for row in rows {
        let string = |index: usize| {
            PyString::new(py, &lenient_text(row, index).unwrap_or_default()).unbind()
        };
        let optional =
            |index: usize| lenient_text(row, index).map(|t| PyString::new(py, &t).unbind());
        let letter = DeadLetter {
            id: LazyUuid::Raw(row.get(0)),
            stream: string(1),
            r#type: string(2),
            data: lenient_json(py, row, 3, &mut keys),
            metadata: lenient_json(py, row, 4, &mut keys),
            correlation_id: optional(5),
            causation_id: optional(6),
            delivery_count: i64::from(row.get::<_, i32>(7)),
            enqueued_at: LazyTime::Micros(row.get::<_, Micros>(8).0),
            failed_at: LazyTime::Micros(row.get::<_, Micros>(9).0),
            reason: string(10),
        };
        list.append(Bound::new(py, letter)?)?;
    }
    Ok(list)
}
