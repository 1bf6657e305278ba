//! Conversions across the boundary, each done once per batch under the GIL: Python events
//! into owned `NewEvent`s before any I/O, and fetched rows into Python objects after it.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyString, PyType};
use tokio_postgres::Row;

use crate::db::append::NewEvent;
use crate::db::pgtypes::{JsonText, Micros, RawJson};
use crate::db::queue::DEQUEUE_ROW_OFFSET;
use crate::errors::SerializationError;
use crate::json;
use crate::py::types::{
    uuid_from_object, DeadLetter, LazyTime, LazyUuid, QueuedEvent, StoredEvent,
};

static EVENT_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn event_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    EVENT_TYPE.import(py, "pgstreams.events", "Event")
}

fn encode_json(value: &Bound<'_, PyAny>, path: impl FnOnce() -> String) -> PyResult<JsonText> {
    json::encode(value)
        .map(JsonText)
        .map_err(|e| SerializationError::new_err(e.describe(&path())))
}

/// A text field of an event: None, or a str PostgreSQL can store (no NUL, no lone surrogate).
fn optional_text(value: Bound<'_, PyAny>, path: impl Fn() -> String) -> PyResult<Option<String>> {
    if value.is_none() {
        return Ok(None);
    }
    text(value, path).map(Some)
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
    Ok(text.to_owned())
}

/// Reads one `pgstreams.Event`; `label` names it in errors (`events[3]`).
fn new_event(event: &Bound<'_, PyAny>, label: &dyn Fn() -> String) -> PyResult<NewEvent> {
    let py = event.py();
    if !event.is_instance(event_class(py)?)? {
        return Err(SerializationError::new_err(format!(
            "{} must be a pgstreams.Event, got {}",
            label(),
            event.get_type().name()?
        )));
    }
    let id = uuid_from_object(&event.getattr(pyo3::intern!(py, "id"))?)?;
    let event_type = text(event.getattr(pyo3::intern!(py, "type"))?, || {
        format!("{}.type", label())
    })?;
    if event_type.is_empty() {
        return Err(SerializationError::new_err(format!(
            "{}.type must not be empty",
            label()
        )));
    }
    let data = encode_json(&event.getattr(pyo3::intern!(py, "data"))?, || {
        format!("{}.data", label())
    })?;
    let metadata = encode_json(&event.getattr(pyo3::intern!(py, "metadata"))?, || {
        format!("{}.metadata", label())
    })?;
    Ok(NewEvent {
        id,
        event_type,
        data,
        metadata,
        correlation_id: optional_text(event.getattr(pyo3::intern!(py, "correlation_id"))?, || {
            format!("{}.correlation_id", label())
        })?,
        causation_id: optional_text(event.getattr(pyo3::intern!(py, "causation_id"))?, || {
            format!("{}.causation_id", label())
        })?,
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

fn decode_column(
    py: Python<'_>,
    row: &Row,
    index: usize,
    keys: &mut json::KeyCache,
) -> PyResult<Py<PyAny>> {
    let raw: RawJson<'_> = row.get(index);
    Ok(json::decode_cached(py, raw.0, keys)?.unbind())
}

/// Rows of `events` (columns as in `db::sql::EVENT_COLUMNS`) -> a list of `StoredEvent`.
pub fn stored_events<'py>(py: Python<'py>, rows: &[Row]) -> PyResult<Bound<'py, PyList>> {
    let mut strings = StringCache::default();
    let mut keys = json::KeyCache::default();
    let list = PyList::empty(py);
    for row in rows {
        let event = StoredEvent {
            stream: strings.get(py, row.get(0)),
            offset: row.get(1),
            position: row.get(2),
            id: LazyUuid::Raw(row.get(3)),
            r#type: strings.get(py, row.get(4)),
            data: decode_column(py, row, 5, &mut keys)?,
            metadata: decode_column(py, row, 6, &mut keys)?,
            correlation_id: strings.optional(py, row.get(7)),
            causation_id: strings.optional(py, row.get(8)),
            timestamp: LazyTime::Micros(row.get::<_, Micros>(9).0),
        };
        list.append(Bound::new(py, event)?)?;
    }
    Ok(list)
}

/// Rows of a dequeue (message columns from `DEQUEUE_ROW_OFFSET`) -> a list of `QueuedEvent`.
pub fn queued_events<'py>(py: Python<'py>, rows: &[Row]) -> PyResult<Bound<'py, PyList>> {
    let mut strings = StringCache::default();
    let mut keys = json::KeyCache::default();
    let list = PyList::empty(py);
    let o = DEQUEUE_ROW_OFFSET;
    for row in rows {
        let event = QueuedEvent {
            id: LazyUuid::Raw(row.get(o)),
            stream: strings.get(py, row.get(o + 1)),
            r#type: strings.get(py, row.get(o + 2)),
            data: decode_column(py, row, o + 3, &mut keys)?,
            metadata: decode_column(py, row, o + 4, &mut keys)?,
            correlation_id: strings.optional(py, row.get(o + 5)),
            causation_id: strings.optional(py, row.get(o + 6)),
            delivery_count: i64::from(row.get::<_, i32>(o + 7)),
            enqueued_at: LazyTime::Micros(row.get::<_, Micros>(o + 8).0),
            consumer_id: strings.optional(py, row.get(o + 9)),
            lease_expires_at: LazyTime::Micros(row.get::<_, Micros>(o + 10).0),
            lease: LazyUuid::Raw(row.get(o + 11)),
        };
        list.append(Bound::new(py, event)?)?;
    }
    Ok(list)
}

/// Rows of a dead-letter listing (columns as in `db::dead_letters::COLUMNS`) -> `DeadLetter`s.
pub fn dead_letters<'py>(py: Python<'py>, rows: &[Row]) -> PyResult<Bound<'py, PyList>> {
    let mut strings = StringCache::default();
    let mut keys = json::KeyCache::default();
    let list = PyList::empty(py);
    for row in rows {
        let letter = DeadLetter {
            id: LazyUuid::Raw(row.get(0)),
            stream: strings.get(py, row.get(1)),
            r#type: strings.get(py, row.get(2)),
            data: decode_column(py, row, 3, &mut keys)?,
            metadata: decode_column(py, row, 4, &mut keys)?,
            correlation_id: strings.optional(py, row.get(5)),
            causation_id: strings.optional(py, row.get(6)),
            delivery_count: i64::from(row.get::<_, i32>(7)),
            enqueued_at: LazyTime::Micros(row.get::<_, Micros>(8).0),
            failed_at: LazyTime::Micros(row.get::<_, Micros>(9).0),
            reason: strings.get(py, row.get(10)),
        };
        list.append(Bound::new(py, letter)?)?;
    }
    Ok(list)
}
