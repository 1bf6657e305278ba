//! The result classes both stores return: `StoredEvent`, `QueuedEvent`, `DeadLetter`.
//!
//! Frozen, and lazy where it pays: an event read from PostgreSQL keeps its id and timestamps
//! as plain integers and builds the `UUID`/`datetime` objects only when asked (building them
//! costs more than decoding a small JSON document). The in-memory store constructs the same
//! classes from Python objects.
//!
//! The three classes share one shape, written once in `result_class!`: a constructor taking
//! every field in order, a getter per field, equality and pickling over the constructor
//! arguments, and a short `repr`. What differs per field is its kind, which the `Field` trait
//! says (how it is checked on the way in and built on the way out).

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

/// How one kind of field is checked when Python constructs a result, and built when Python
/// reads it. `name` is the constructor argument, for error messages.
pub trait Field: Sized {
    fn from_py(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Self>;
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>>;
}

fn type_error(name: &str, wanted: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let got = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    pyo3::exceptions::PyTypeError::new_err(format!(
        "{} must be {wanted}, got {got}",
        name.trim_start_matches("r#")
    ))
}

impl Field for Py<PyString> {
    fn from_py(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        match value.cast::<PyString>() {
            Ok(text) => Ok(text.clone().unbind()),
            Err(_) => Err(type_error(name, "a str", value)),
        }
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.clone_ref(py).into_any())
    }
}

impl Field for Option<Py<PyString>> {
    fn from_py(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        if value.is_none() {
            return Ok(None);
        }
        match value.cast::<PyString>() {
            Ok(text) => Ok(Some(text.clone().unbind())),
            Err(_) => Err(type_error(name, "a str or None", value)),
        }
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Some(text) => text.clone_ref(py).into_any(),
            None => py.None(),
        })
    }
}

impl Field for i64 {
    fn from_py(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        value
            .extract()
            .map_err(|_| type_error(name, "an int of 64 bits", value))
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.into_pyobject(py)?.into_any().unbind())
    }
}

/// A JSON value (`data`, `metadata`): any object, as decoded.
impl Field for Py<PyAny> {
    fn from_py(value: &Bound<'_, PyAny>, _name: &str) -> PyResult<Self> {
        Ok(value.clone().unbind())
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.clone_ref(py))
    }
}

impl Field for LazyUuid {
    fn from_py(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        if value.is_instance(pytypes::uuid_type(value.py())?)? {
            Ok(LazyUuid::Object(value.clone().unbind()))
        } else {
            Err(type_error(name, "a uuid.UUID", value))
        }
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            LazyUuid::Object(o) => Ok(o.clone_ref(py)),
            LazyUuid::Raw(u) => uuid_object(py, *u),
        }
    }
}

impl Field for LazyTime {
    fn from_py(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Self> {
        if value.is_instance(pytypes::datetime_type(value.py())?)? {
            Ok(LazyTime::Object(value.clone().unbind()))
        } else {
            Err(type_error(name, "a datetime", value))
        }
    }
    fn to_py(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            LazyTime::Object(o) => Ok(o.clone_ref(py)),
            LazyTime::Micros(us) => datetime_from_micros(py, *us),
        }
    }
}

fn repr_of(py: Python<'_>, value: PyResult<Py<PyAny>>) -> String {
    value
        .and_then(|v| Ok(v.bind(py).repr()?.to_string()))
        .unwrap_or_else(|_| "?".into())
}

/// A frozen result class: fields in constructor order, each a `Field`; `repr` lists the
/// fields its `repr` shows. A field named after a Python keyword is written `r#type`.
macro_rules! result_class {
    (
        $(#[$doc:meta])*
        pub struct $name:ident { $($field:ident : $kind:ty),+ $(,)? }
        repr($($shown:ident),+)
    ) => {
        $(#[$doc])*
        #[pyclass(frozen, module = "pgstreams")]
        pub struct $name {
            $(pub $field: $kind),+
        }

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = ($($field),+))]
            #[allow(clippy::too_many_arguments)]
            fn py_new($($field: &Bound<'_, PyAny>),+) -> PyResult<Self> {
                Ok($name {
                    $($field: <$kind as Field>::from_py($field, stringify!($field))?),+
                })
            }

            $(
                #[getter]
                fn $field(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                    self.$field.to_py(py)
                }
            )+

            /// The constructor arguments: what equality and pickling compare and rebuild.
            fn _fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
                PyTuple::new(py, [$(self.$field.to_py(py)?),+])
            }

            fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
                match other.cast::<$name>() {
                    Ok(other) => self._fields(py)?.eq(other.get()._fields(py)?),
                    Err(_) => Ok(false),
                }
            }

            fn __reduce__<'py>(
                slf: &Bound<'py, Self>,
            ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
                Ok((slf.get_type().into_any(), slf.get()._fields(slf.py())?))
            }

            fn __repr__(&self, py: Python<'_>) -> String {
                let shown: Vec<String> = vec![$(
                    format!(
                        "{}={}",
                        stringify!($shown).trim_start_matches("r#"),
                        repr_of(py, self.$shown.to_py(py))
                    )
                ),+];
                format!("{}({})", stringify!($name), shown.join(", "))
            }
        }
    };
}

result_class! {
    /// An event of a persistent stream, as stored.
    pub struct StoredEvent {
        stream: Py<PyString>,
        offset: i64,
        position: i64,
        id: LazyUuid,
        r#type: Py<PyString>,
        data: Py<PyAny>,
        metadata: Py<PyAny>,
        correlation_id: Option<Py<PyString>>,
        causation_id: Option<Py<PyString>>,
        timestamp: LazyTime,
        version: i64,
    }
    repr(stream, offset, position, r#type, id)
}

result_class! {
    /// A message leased to a consumer; `lease` is the token of this delivery (a receipt).
    pub struct QueuedEvent {
        id: LazyUuid,
        stream: Py<PyString>,
        r#type: Py<PyString>,
        data: Py<PyAny>,
        metadata: Py<PyAny>,
        correlation_id: Option<Py<PyString>>,
        causation_id: Option<Py<PyString>>,
        delivery_count: i64,
        enqueued_at: LazyTime,
        consumer_id: Option<Py<PyString>>,
        lease_expires_at: LazyTime,
        lease: LazyUuid,
    }
    repr(stream, r#type, id, delivery_count)
}

result_class! {
    /// A message in the dead letter queue, with why it is there.
    pub struct DeadLetter {
        id: LazyUuid,
        stream: Py<PyString>,
        r#type: Py<PyString>,
        data: Py<PyAny>,
        metadata: Py<PyAny>,
        correlation_id: Option<Py<PyString>>,
        causation_id: Option<Py<PyString>>,
        delivery_count: i64,
        enqueued_at: LazyTime,
        failed_at: LazyTime,
        reason: Py<PyString>,
    }
    repr(stream, r#type, id, reason)
}
