//! Validated input, built once by the shared store base and handed to either store.
//!
//! `EventBatch` is a batch of `pgstreams.Event`s checked and serialized by the one JSON codec;
//! the PostgreSQL store sends its columns as they are, the in-memory store reads them back as
//! rows. `Receipts` are acks, nacks and lease extensions parsed by the one rule for ids and
//! leases. Both are opaque to Python: what is checked once is never converted twice.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use uuid::Uuid;

use crate::db::append::{check_unique_ids, EventColumns};
use crate::db::queue::Receipt;
use crate::errors::ConfigurationError;
use crate::py::convert;
use crate::py::types::{uuid_from_object, uuid_object, QueuedEvent};

/// `EventBatch(events, unique_ids=True)`: refuses the whole batch, before anything is sent,
/// if any event is not a `pgstreams.Event` or holds what cannot be stored (the error names
/// the place, e.g. `events[1].data["bad"]`). `unique_ids=False` for enqueue, where a repeated
/// id is a no-op rather than an error.
#[pyclass(frozen, module = "pgstreams._core")]
pub struct EventBatch {
    pub columns: Arc<EventColumns>,
}

#[pymethods]
impl EventBatch {
    #[new]
    #[pyo3(signature = (events, unique_ids = true))]
    fn py_new(events: &Bound<'_, PyAny>, unique_ids: bool) -> PyResult<Self> {
        let columns = EventColumns::from_events(convert::new_events(events)?);
        if unique_ids {
            check_unique_ids(&columns.ids)?;
        }
        Ok(EventBatch {
            columns: Arc::new(columns),
        })
    }

    fn __len__(&self) -> usize {
        self.columns.ids.len()
    }

    /// `[(id, type, data, metadata, correlation_id, causation_id, version), ...]` with data
    /// and metadata as JSON bytes: what the in-memory store keeps.
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let c = &*self.columns;
        let list = PyList::empty(py);
        for i in 0..c.ids.len() {
            list.append((
                uuid_object(py, c.ids[i])?,
                PyString::new(py, &c.types[i]),
                PyBytes::new(py, &c.data[i].0),
                PyBytes::new(py, &c.metadata[i].0),
                c.correlation_ids[i].as_deref(),
                c.causation_ids[i].as_deref(),
                c.versions[i],
            ))?;
        }
        Ok(list)
    }
}

/// A `QueuedEvent` acts on its own delivery (its lease); a bare id on the current lease.
fn receipt(value: &Bound<'_, PyAny>) -> PyResult<Receipt> {
    if let Ok(queued) = value.cast::<QueuedEvent>() {
        let queued = queued.get();
        return Ok(Receipt {
            id: queued.id.uuid(value.py())?,
            lease: Some(queued.lease.uuid(value.py())?),
        });
    }
    Ok(Receipt {
        id: event_id(value, "a QueuedEvent or an event id (UUID)")?,
        lease: None,
    })
}

/// An event id: a `uuid.UUID` (or anything with a 128-bit `.int`), or its text in one of
/// the forms `Uuid::parse_str` takes (simple, hyphenated, braced, URN).
/// `expected` says what the caller could have passed instead.
fn event_id(value: &Bound<'_, PyAny>, expected: &str) -> PyResult<Uuid> {
    if let Ok(text) = value.cast::<PyString>() {
        return Uuid::parse_str(text.to_str()?).map_err(|_| {
            ConfigurationError::new_err(format!(
                "{} is not a valid event id",
                text.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        });
    }
    uuid_from_object(value).map_err(|_| {
        ConfigurationError::new_err(format!(
            "expected {expected}, got {}",
            value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

/// `Receipts(values)`: acks, nacks or lease extensions, each a `QueuedEvent` or an event id.
/// One bad receipt refuses them all.
#[pyclass(frozen, module = "pgstreams._core")]
pub struct Receipts {
    pub items: Vec<Receipt>,
}

#[pymethods]
impl Receipts {
    #[new]
    fn py_new(values: &Bound<'_, PyAny>) -> PyResult<Self> {
        Self::from_values(values)
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    /// `[(id, lease or None), ...]`: what the in-memory store matches against.
    fn pairs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for r in &self.items {
            let lease = match r.lease {
                Some(lease) => uuid_object(py, lease)?,
                None => py.None(),
            };
            list.append((uuid_object(py, r.id)?, lease))?;
        }
        Ok(list)
    }
}

impl Receipts {
    pub fn from_values(values: &Bound<'_, PyAny>) -> PyResult<Self> {
        let items = values
            .try_iter()?
            .map(|v| receipt(&v?))
            .collect::<PyResult<_>>()?;
        Ok(Receipts { items })
    }

    /// The one receipt of a nack or a lease extension.
    pub fn single(&self) -> PyResult<Receipt> {
        match self.items.as_slice() {
            [one] => Ok(*one),
            _ => Err(ConfigurationError::new_err("expected exactly one receipt")),
        }
    }
}

/// `parse_event_ids(values) -> list[UUID]`: the ids of a redrive or a dead-letter deletion,
/// by the same rule as receipts.
#[pyfunction]
pub fn parse_event_ids<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for value in values.try_iter()? {
        list.append(uuid_object(py, event_id(&value?, "an event id (UUID)")?)?)?;
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use pyo3::prelude::*;
    use pyo3::types::PyList;
    use uuid::Uuid;

    use super::Receipts;

    #[test]
    fn ids_are_read_in_every_form_uuid_accepts_and_nothing_else() {
        Python::initialize();
        Python::attach(|py| {
            let id = Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
            let object = crate::py::types::uuid_object(py, id).unwrap();
            let forms = PyList::new(
                py,
                [
                    object.into_bound(py),
                    "67e55044-10b1-426f-9247-bb680e5fe0c8"
                        .into_pyobject(py)
                        .unwrap()
                        .into_any(),
                    "67e5504410b1426f9247bb680e5fe0c8"
                        .into_pyobject(py)
                        .unwrap()
                        .into_any(),
                    "{67e55044-10b1-426f-9247-bb680e5fe0c8}"
                        .into_pyobject(py)
                        .unwrap()
                        .into_any(),
                    "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8"
                        .into_pyobject(py)
                        .unwrap()
                        .into_any(),
                ],
            )
            .unwrap();
            let receipts = Receipts::from_values(&forms).unwrap();
            assert!(receipts
                .items
                .iter()
                .all(|r| r.id == id && r.lease.is_none()));
            for bad in [
                "",
                "67e55044",
                "67e55044-10b1-426f-9247-bb680e5fe0c8x",
                "not-a-uuid",
            ] {
                let list = PyList::new(py, [bad]).unwrap();
                assert!(Receipts::from_values(&list).is_err(), "{bad}");
            }
            let numbers = PyList::new(py, [5]).unwrap();
            assert!(Receipts::from_values(&numbers).is_err());
        });
    }
}
