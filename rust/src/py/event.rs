//! `Event`: what a caller appends or enqueues, made in Rust.
//!
//! Making one was the costliest step of an append on the Python side: the frozen dataclass
//! with its argument checks and a UUIDv7 drawn from `os.urandom` took about 6.4 ms per 1000
//! events (measured here), more than serializing them. This class checks the same arguments
//! the same way, draws its id in Rust (and builds the `uuid.UUID` only when asked), and hands
//! its fields to `EventBatch` without attribute lookups.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping, PyString, PyTuple};
use uuid::Uuid;

use crate::config::MAX_NAME_BYTES;
use crate::errors::{ConfigurationError, SerializationError};
use crate::json::pytypes_public as pytypes;
use crate::py::types::{uuid_object, LazyUuid};

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Types and correlation and causation ids are index keys: at most `MAX_NAME_BYTES` of UTF-8.
/// A string with a lone surrogate is let through here and refused when stored, where the
/// error can name its place in the batch.
fn check_length(text: &Bound<'_, PyString>, name: &str) -> PyResult<()> {
    if let Ok(utf8) = text.to_str() {
        if utf8.len() > MAX_NAME_BYTES {
            return Err(ConfigurationError::new_err(format!(
                "Event {name} is longer than {MAX_NAME_BYTES} bytes in UTF-8"
            )));
        }
    }
    Ok(())
}

fn check_type(value: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
    let text = value.cast::<PyString>().map_err(|_| {
        SerializationError::new_err(format!(
            "Event type must be a str, got {}",
            type_name(value)
        ))
    })?;
    if text.len()? == 0 {
        return Err(ConfigurationError::new_err("Event type must not be empty"));
    }
    check_length(text, "type")?;
    Ok(text.clone().unbind())
}

fn check_optional_text(
    value: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<Py<PyString>>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            let text = v.cast::<PyString>().map_err(|_| {
                SerializationError::new_err(format!(
                    "Event {name} must be a str or None, got {}",
                    type_name(v)
                ))
            })?;
            check_length(text, name)?;
            Ok(Some(text.clone().unbind()))
        }
    }
}

/// A copy of the metadata as a dict (the event never shares the caller's mapping).
fn check_metadata<'py>(py: Python<'py>, value: Option<&Bound<'py, PyAny>>) -> PyResult<Py<PyDict>> {
    let copy = PyDict::new(py);
    match value {
        None => {}
        Some(v) if v.is_none() => {}
        Some(v) => {
            let mapping = v.cast::<PyMapping>().map_err(|_| {
                SerializationError::new_err(format!(
                    "Event metadata must be a mapping (a dict) or None, got {}",
                    type_name(v)
                ))
            })?;
            copy.update(mapping)?;
        }
    }
    Ok(copy.unbind())
}

fn check_id(value: Option<&Bound<'_, PyAny>>) -> PyResult<LazyUuid> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(LazyUuid::Raw(new_id()));
    };
    if value.is_instance(pytypes::uuid_type(value.py())?)? {
        return Ok(LazyUuid::Object(value.clone().unbind()));
    }
    if let Ok(text) = value.cast::<PyString>() {
        // Python's uuid.UUID(text) rule, which callers know: parse it there.
        let parsed = pytypes::uuid_type(value.py())?
            .call1((text,))
            .map_err(|_| {
                ConfigurationError::new_err(format!(
                    "Event id {} is not a UUID",
                    text.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
        return Ok(LazyUuid::Object(parsed.unbind()));
    }
    Err(SerializationError::new_err(format!(
        "Event id must be a uuid.UUID (or its text), got {}",
        type_name(value)
    )))
}

fn check_version(value: Option<&Bound<'_, PyAny>>) -> PyResult<i32> {
    let Some(value) = value else {
        return Ok(1);
    };
    if value.is_instance_of::<pyo3::types::PyBool>()
        || !value.is_instance_of::<pyo3::types::PyInt>()
    {
        return Err(SerializationError::new_err(format!(
            "Event version must be an int, got {}",
            type_name(value)
        )));
    }
    match value.extract::<i64>() {
        Ok(v) if (1..=i64::from(i32::MAX)).contains(&v) => Ok(v as i32),
        _ => Err(ConfigurationError::new_err(format!(
            "Event version must be from 1 to 2147483647, got {}",
            value.str().map(|s| s.to_string()).unwrap_or_default()
        ))),
    }
}

/// A UUIDv7: time-ordered, so ids appended together sit together in the unique index (random
/// v4 ids scatter every insert across the whole B-tree), and monotonic within the process.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// `new_event_id() -> uuid.UUID`: the id an `Event` gets when none is given.
#[pyfunction]
pub fn new_event_id(py: Python<'_>) -> PyResult<Py<PyAny>> {
    uuid_object(py, new_id())
}

/// An event to append or enqueue. `data` and `metadata` must be JSON (see the README); the id
/// is generated (time-ordered) when not given, so retrying the same `Event` is recognised as a
/// retry. `version` is the event's schema version, kept with a persistent stream's events
/// (`StoredEvent.version`); the queue does not keep it.
#[pyclass(frozen, module = "pgstreams")]
pub struct Event {
    pub r#type: Py<PyString>,
    pub data: Py<PyAny>,
    pub metadata: Py<PyDict>,
    pub id: LazyUuid,
    pub correlation_id: Option<Py<PyString>>,
    pub causation_id: Option<Py<PyString>>,
    pub version: i32,
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (r#type, data, *, metadata = None, id = None, correlation_id = None, causation_id = None, version = None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        r#type: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        id: Option<&Bound<'_, PyAny>>,
        correlation_id: Option<&Bound<'_, PyAny>>,
        causation_id: Option<&Bound<'_, PyAny>>,
        version: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Event {
            r#type: check_type(r#type)?,
            data: data.clone().unbind(),
            metadata: check_metadata(py, metadata)?,
            id: check_id(id)?,
            correlation_id: check_optional_text(correlation_id, "correlation_id")?,
            causation_id: check_optional_text(causation_id, "causation_id")?,
            version: check_version(version)?,
        })
    }

    #[getter]
    fn r#type(&self, py: Python<'_>) -> Py<PyString> {
        self.r#type.clone_ref(py)
    }
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyAny> {
        self.data.clone_ref(py)
    }
    #[getter]
    fn metadata(&self, py: Python<'_>) -> Py<PyDict> {
        self.metadata.clone_ref(py)
    }
    #[getter]
    fn id(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.id {
            LazyUuid::Object(o) => Ok(o.clone_ref(py)),
            LazyUuid::Raw(u) => uuid_object(py, *u),
        }
    }
    #[getter]
    fn correlation_id(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.correlation_id.as_ref().map(|t| t.clone_ref(py))
    }
    #[getter]
    fn causation_id(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.causation_id.as_ref().map(|t| t.clone_ref(py))
    }
    #[getter]
    fn version(&self) -> i32 {
        self.version
    }

    /// A copy whose metadata is this event's merged with `extra` (`extra` wins), same id.
    fn with_metadata(&self, py: Python<'_>, extra: &Bound<'_, PyAny>) -> PyResult<Self> {
        let merged = self.metadata.bind(py).copy()?;
        let mapping = extra.cast::<PyMapping>().map_err(|_| {
            SerializationError::new_err(format!(
                "metadata must be a mapping (a dict), got {}",
                type_name(extra)
            ))
        })?;
        merged.update(mapping)?;
        Ok(Event {
            r#type: self.r#type.clone_ref(py),
            data: self.data.clone_ref(py),
            metadata: merged.unbind(),
            id: match &self.id {
                LazyUuid::Object(o) => LazyUuid::Object(o.clone_ref(py)),
                LazyUuid::Raw(u) => LazyUuid::Raw(*u),
            },
            correlation_id: self.correlation_id(py),
            causation_id: self.causation_id(py),
            version: self.version,
        })
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        match other.cast::<Event>() {
            Ok(other) => self
                .__getnewargs_ex__(py)?
                .eq(other.get().__getnewargs_ex__(py)?),
            Err(_) => Ok(false),
        }
    }

    /// `(args, kwargs)` that make this event again: for pickling and copying.
    fn __getnewargs_ex__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("metadata", self.metadata.bind(py))?;
        kwargs.set_item("id", self.id(py)?)?;
        kwargs.set_item("correlation_id", self.correlation_id(py))?;
        kwargs.set_item("causation_id", self.causation_id(py))?;
        kwargs.set_item("version", self.version)?;
        let args = PyTuple::new(
            py,
            [
                self.r#type.clone_ref(py).into_any(),
                self.data.clone_ref(py),
            ],
        )?;
        PyTuple::new(py, [args.into_any(), kwargs.into_any()])
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let repr = |value: Bound<'_, PyAny>| value.repr().map(|r| r.to_string());
        Ok(format!(
            "Event(type={}, data={}, metadata={}, id={}, correlation_id={}, causation_id={}, version={})",
            repr(self.r#type.bind(py).clone().into_any())?,
            repr(self.data.bind(py).clone())?,
            repr(self.metadata.bind(py).clone().into_any())?,
            repr(self.id(py)?.into_bound(py))?,
            repr(self.correlation_id(py).map_or_else(|| py.None().into_bound(py), |t| t.into_bound(py).into_any()))?,
            repr(self.causation_id(py).map_or_else(|| py.None().into_bound(py), |t| t.into_bound(py).into_any()))?,
            self.version
        ))
    }
}
