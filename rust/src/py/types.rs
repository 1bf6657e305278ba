//! The result classes both stores return: `StoredEvent`, `QueuedEvent`, `DeadLetter`.
//!
//! Frozen, and lazy where it pays: an event read from PostgreSQL keeps its id and timestamps
//! as plain integers and builds the `UUID`/`datetime` objects only when asked (building them
//! costs more than decoding a small JSON document). The in-memory store constructs the same
//! classes from Python objects.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use uuid::Uuid;

use crate::json::pytypes_public as pytypes;

/// A UUID as read from the database, or as given by Python.
pub enum LazyUuid {
    Raw(Uuid),
    Object(Py<PyAny>),
}

impl LazyUuid {
    pub fn from_py(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        if value.is_instance(pytypes::uuid_type(value.py())?)? {
            Ok(LazyUuid::Object(value.clone().unbind()))
        } else {
            Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "id must be a uuid.UUID, got {}",
                value.get_type().name()?
            )))
        }
    }

    pub fn to_object(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            LazyUuid::Object(o) => Ok(o.clone_ref(py)),
            LazyUuid::Raw(u) => uuid_object(py, *u),
        }
    }

    pub fn uuid(&self, py: Python<'_>) -> PyResult<Uuid> {
        match self {
            LazyUuid::Raw(u) => Ok(*u),
            LazyUuid::Object(o) => uuid_from_object(o.bind(py)),
        }
    }
}

pub fn uuid_object(py: Python<'_>, value: Uuid) -> PyResult<Py<PyAny>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item(pyo3::intern!(py, "int"), value.as_u128())?;
    Ok(pytypes::uuid_type(py)?.call((), Some(&kwargs))?.unbind())
}

pub fn uuid_from_object(value: &Bound<'_, PyAny>) -> PyResult<Uuid> {
    let int: u128 = value.getattr(pyo3::intern!(value.py(), "int"))?.extract()?;
    Ok(Uuid::from_u128(int))
}

/// A timestamp as microseconds since the Unix epoch (UTC), or a `datetime` given by Python.
pub enum LazyTime {
    Micros(i64),
    Object(Py<PyAny>),
}

impl LazyTime {
    pub fn from_py(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        if value.is_instance(pytypes::datetime_type(value.py())?)? {
            Ok(LazyTime::Object(value.clone().unbind()))
        } else {
            Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "{name} must be a datetime, got {}",
                value.get_type().name()?
            )))
        }
    }

    pub fn to_object(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            LazyTime::Object(o) => Ok(o.clone_ref(py)),
            LazyTime::Micros(us) => datetime_from_micros(py, *us),
        }
    }
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub fn datetime_from_micros(py: Python<'_>, micros: i64) -> PyResult<Py<PyAny>> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = in_day / 1_000_000;
    let args = (
        year,
        month,
        day,
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60,
        in_day % 1_000_000,
        pytypes::utc(py)?,
    );
    Ok(pytypes::datetime_type(py)?.call1(args)?.unbind())
}

fn repr_of(py: Python<'_>, value: &Py<PyAny>) -> String {
    value
        .bind(py)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn optional(py: Python<'_>, value: &Option<Py<PyString>>) -> Py<PyAny> {
    match value {
        Some(v) => v.clone_ref(py).into_any(),
        None => py.None(),
    }
}

fn optional_string(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Py<PyString>>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => Ok(Some(
            v.cast::<PyString>()
                .map_err(|_| {
                    pyo3::exceptions::PyTypeError::new_err(format!("{name} must be a str or None"))
                })?
                .clone()
                .unbind(),
        )),
    }
}

/// Equality over the constructor arguments, so results compare by value across stores.
fn fields_equal(py: Python<'_>, a: Bound<'_, PyTuple>, b: Bound<'_, PyTuple>) -> PyResult<bool> {
    let _ = py;
    a.eq(b)
}

#[pyclass(frozen, module = "pgstreams", name = "StoredEvent")]
pub struct StoredEvent {
    #[pyo3(get)]
    pub stream: Py<PyString>,
    #[pyo3(get)]
    pub offset: i64,
    #[pyo3(get)]
    pub position: i64,
    pub id: LazyUuid,
    #[pyo3(get, name = "type")]
    pub event_type: Py<PyString>,
    #[pyo3(get)]
    pub data: Py<PyAny>,
    #[pyo3(get)]
    pub metadata: Py<PyAny>,
    pub correlation_id: Option<Py<PyString>>,
    pub causation_id: Option<Py<PyString>>,
    pub timestamp: LazyTime,
}

#[pymethods]
impl StoredEvent {
    #[new]
    #[pyo3(signature = (stream, offset, position, id, r#type, data, metadata, correlation_id, causation_id, timestamp))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        stream: Bound<'_, PyString>,
        offset: i64,
        position: i64,
        id: &Bound<'_, PyAny>,
        r#type: Bound<'_, PyString>,
        data: Bound<'_, PyAny>,
        metadata: Bound<'_, PyAny>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        causation_id: Option<&Bound<'_, PyAny>>,
        timestamp: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(StoredEvent {
            stream: stream.unbind(),
            offset,
            position,
            id: LazyUuid::from_py(id)?,
            event_type: r#type.unbind(),
            data: data.unbind(),
            metadata: metadata.unbind(),
            correlation_id: optional_string(correlation_id, "correlation_id")?,
            causation_id: optional_string(causation_id, "causation_id")?,
            timestamp: LazyTime::from_py(timestamp, "timestamp")?,
        })
    }

    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.id.to_object(py)
    }
    #[getter]
    fn correlation_id(&self, py: Python<'_>) -> Py<PyAny> {
        optional(py, &self.correlation_id)
    }
    #[getter]
    fn causation_id(&self, py: Python<'_>) -> Py<PyAny> {
        optional(py, &self.causation_id)
    }
    #[getter]
    fn timestamp(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.timestamp.to_object(py)
    }

    fn _fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                self.stream.clone_ref(py).into_any(),
                self.offset.into_pyobject(py)?.into_any().unbind(),
                self.position.into_pyobject(py)?.into_any().unbind(),
                self.id(py)?,
                self.event_type.clone_ref(py).into_any(),
                self.data.clone_ref(py),
                self.metadata.clone_ref(py),
                self.correlation_id(py),
                self.causation_id(py),
                self.timestamp(py)?,
            ],
        )
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        match other.cast::<StoredEvent>() {
            Ok(other) => fields_equal(py, self._fields(py)?, other.get()._fields(py)?),
            Err(_) => Ok(false),
        }
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        Ok((slf.get_type().into_any(), slf.get()._fields(slf.py())?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "StoredEvent(stream={}, offset={}, position={}, type={}, id={})",
            repr_of(py, &self.stream.clone_ref(py).into_any()),
            self.offset,
            self.position,
            repr_of(py, &self.event_type.clone_ref(py).into_any()),
            repr_of(py, &self.id(py)?)
        ))
    }
}

#[pyclass(frozen, module = "pgstreams", name = "QueuedEvent")]
pub struct QueuedEvent {
    pub id: LazyUuid,
    #[pyo3(get)]
    pub stream: Py<PyString>,
    #[pyo3(get, name = "type")]
    pub event_type: Py<PyString>,
    #[pyo3(get)]
    pub data: Py<PyAny>,
    #[pyo3(get)]
    pub metadata: Py<PyAny>,
    pub correlation_id: Option<Py<PyString>>,
    pub causation_id: Option<Py<PyString>>,
    #[pyo3(get)]
    pub delivery_count: i64,
    pub enqueued_at: LazyTime,
    pub consumer_id: Option<Py<PyString>>,
    pub lease_expires_at: LazyTime,
    pub lease: LazyUuid,
}

#[pymethods]
impl QueuedEvent {
    #[new]
    #[pyo3(signature = (id, stream, r#type, data, metadata, correlation_id, causation_id, delivery_count, enqueued_at, consumer_id, lease_expires_at, lease))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        id: &Bound<'_, PyAny>,
        stream: Bound<'_, PyString>,
        r#type: Bound<'_, PyString>,
        data: Bound<'_, PyAny>,
        metadata: Bound<'_, PyAny>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        causation_id: Option<&Bound<'_, PyAny>>,
        delivery_count: i64,
        enqueued_at: &Bound<'_, PyAny>,
        consumer_id: Option<&Bound<'_, PyAny>>,
        lease_expires_at: &Bound<'_, PyAny>,
        lease: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        Ok(QueuedEvent {
            id: LazyUuid::from_py(id)?,
            stream: stream.unbind(),
            event_type: r#type.unbind(),
            data: data.unbind(),
            metadata: metadata.unbind(),
            correlation_id: optional_string(correlation_id, "correlation_id")?,
            causation_id: optional_string(causation_id, "causation_id")?,
            delivery_count,
            enqueued_at: LazyTime::from_py(enqueued_at, "enqueued_at")?,
            consumer_id: optional_string(consumer_id, "consumer_id")?,
            lease_expires_at: LazyTime::from_py(lease_expires_at, "lease_expires_at")?,
            lease: LazyUuid::from_py(lease)?,
        })
    }

    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.id.to_object(py)
    }
    #[getter]
    fn correlation_id(&self, py: Python<'_>) -> Py<PyAny> {
        optional(py, &self.correlation_id)
    }
    #[getter]
    fn causation_id(&self, py: Python<'_>) -> Py<PyAny> {
        optional(py, &self.causation_id)
    }
    #[getter]
    fn enqueued_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.enqueued_at.to_object(py)
    }
    #[getter]
    fn consumer_id(&self, py: Python<'_>) -> Py<PyAny> {
        optional(py, &self.consumer_id)
    }
    #[getter]
    fn lease_expires_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.lease_expires_at.to_object(py)
    }
    #[getter]
    fn lease(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.lease.to_object(py)
    }

    fn _fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                self.id(py)?,
                self.stream.clone_ref(py).into_any(),
                self.event_type.clone_ref(py).into_any(),
                self.data.clone_ref(py),
                self.metadata.clone_ref(py),
                self.correlation_id(py),
                self.causation_id(py),
                self.delivery_count.into_pyobject(py)?.into_any().unbind(),
                self.enqueued_at(py)?,
                self.consumer_id(py),
                self.lease_expires_at(py)?,
                self.lease(py)?,
            ],
        )
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        match other.cast::<QueuedEvent>() {
            Ok(other) => fields_equal(py, self._fields(py)?, other.get()._fields(py)?),
            Err(_) => Ok(false),
        }
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        Ok((slf.get_type().into_any(), slf.get()._fields(slf.py())?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "QueuedEvent(stream={}, type={}, id={}, delivery_count={})",
            repr_of(py, &self.stream.clone_ref(py).into_any()),
            repr_of(py, &self.event_type.clone_ref(py).into_any()),
            repr_of(py, &self.id(py)?),
            self.delivery_count
        ))
    }
}

#[pyclass(frozen, module = "pgstreams", name = "DeadLetter")]
pub struct DeadLetter {
    pub id: LazyUuid,
    #[pyo3(get)]
    pub stream: Py<PyString>,
    #[pyo3(get, name = "type")]
    pub event_type: Py<PyString>,
    #[pyo3(get)]
    pub data: Py<PyAny>,
    #[pyo3(get)]
    pub metadata: Py<PyAny>,
    pub correlation_id: Option<Py<PyString>>,
    pub causation_id: Option<Py<PyString>>,
    #[pyo3(get)]
    pub delivery_count: i64,
    pub enqueued_at: LazyTime,
    pub failed_at: LazyTime,
    #[pyo3(get)]
    pub reason: Py<PyString>,
}

#[pymethods]
impl DeadLetter {
    #[new]
    #[pyo3(signature = (id, stream, r#type, data, metadata, correlation_id, causation_id, delivery_count, enqueued_at, failed_at, reason))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        id: &Bound<'_, PyAny>,
        stream: Bound<'_, PyString>,
        r#type: Bound<'_, PyString>,
        data: Bound<'_, PyAny>,
        metadata: Bound<'_, PyAny>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        causation_id: Option<&Bound<'_, PyAny>>,
        delivery_count: i64,
        enqueued_at: &Bound<'_, PyAny>,
        failed_at: &Bound<'_, PyAny>,
        reason: Bound<'_, PyString>,
    ) -> PyResult<Self> {
        Ok(DeadLetter {
            id: LazyUuid::from_py(id)?,
            stream: stream.unbind(),
            event_type: r#type.unbind(),
            data: data.unbind(),
            metadata: metadata.unbind(),
            correlation_id: optional_string(correlation_id, "correlation_id")?,
            causation_id: optional_string(causation_id, "causation_id")?,
            delivery_count,
            enqueued_at: LazyTime::from_py(enqueued_at, "enqueued_at")?,
            failed_at: LazyTime::from_py(failed_at, "failed_at")?,
            reason: reason.unbind(),
        })
    }

    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.id.to_object(py)
    }
    #[getter]
    fn correlation_id(&self, py: Python<'_>) -> Py<PyAny> {
        optional(py, &self.correlation_id)
    }
    #[getter]
    fn causation_id(&self, py: Python<'_>) -> Py<PyAny> {
        optional(py, &self.causation_id)
    }
    #[getter]
    fn enqueued_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.enqueued_at.to_object(py)
    }
    #[getter]
    fn failed_at(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.failed_at.to_object(py)
    }

    fn _fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                self.id(py)?,
                self.stream.clone_ref(py).into_any(),
                self.event_type.clone_ref(py).into_any(),
                self.data.clone_ref(py),
                self.metadata.clone_ref(py),
                self.correlation_id(py),
                self.causation_id(py),
                self.delivery_count.into_pyobject(py)?.into_any().unbind(),
                self.enqueued_at(py)?,
                self.failed_at(py)?,
                self.reason.clone_ref(py).into_any(),
            ],
        )
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        match other.cast::<DeadLetter>() {
            Ok(other) => fields_equal(py, self._fields(py)?, other.get()._fields(py)?),
            Err(_) => Ok(false),
        }
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        Ok((slf.get_type().into_any(), slf.get()._fields(slf.py())?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "DeadLetter(stream={}, type={}, id={}, reason={})",
            repr_of(py, &self.stream.clone_ref(py).into_any()),
            repr_of(py, &self.event_type.clone_ref(py).into_any()),
            repr_of(py, &self.id(py)?),
            repr_of(py, &self.reason.clone_ref(py).into_any())
        ))
    }
}
