//! Module-level functions: the JSON codec (the in-memory store stores through it, so both
//! stores accept and return exactly the same values), and the generic parameter and row
//! conversions of non-hot statements.

use postgres_types::Type;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use tokio_postgres::Row;

use crate::db::generic::Value;
use crate::db::pgtypes::{Micros, RawJson};
use crate::errors::{ConfigurationError, SerializationError};
use crate::json;
use crate::py::types::{datetime_from_micros, uuid_from_object, uuid_object};

/// `json_dumps(value, path="value") -> bytes`: validates and serializes with the store's rules.
#[pyfunction]
#[pyo3(signature = (value, path = "value"))]
pub fn json_dumps<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
    path: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let text = json::encode(value).map_err(|e| SerializationError::new_err(e.describe(path)))?;
    Ok(PyBytes::new(py, &text))
}

/// `json_loads(text: bytes) -> Any`: parses JSON the way values come back from PostgreSQL.
#[pyfunction]
pub fn json_loads<'py>(py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    json::decode(py, text)
}

/// A Python parameter -> a loosely typed value, fitted to the server's type at send time.
pub fn param(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        Ok(Value::Null)
    } else if value.is_instance_of::<PyBool>() {
        Ok(Value::Bool(value.extract()?))
    } else if value.is_instance_of::<PyInt>() {
        Ok(Value::Int(value.extract().map_err(|_| {
            ConfigurationError::new_err("integer parameter does not fit in 64 bits")
        })?))
    } else if value.is_instance_of::<PyFloat>() {
        Ok(Value::Float(value.extract()?))
    } else if let Ok(text) = value.cast::<PyString>() {
        Ok(Value::Text(text.to_str()?.to_owned()))
    } else if value.is_instance_of::<PyDict>() {
        Ok(Value::Json(json::encode(value).map_err(|e| {
            SerializationError::new_err(e.describe("parameter"))
        })?))
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        Ok(Value::Array(
            value
                .try_iter()?
                .map(|v| param(&v?))
                .collect::<PyResult<_>>()?,
        ))
    } else if let Ok(uuid) = uuid_from_object(value) {
        Ok(Value::Uuid(uuid))
    } else {
        Err(ConfigurationError::new_err(format!(
            "unsupported parameter type {}",
            value.get_type().name()?
        )))
    }
}

/// The parameters of a statement (none when `values` is None).
pub fn params(values: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Value>> {
    match values {
        Some(values) => values.try_iter()?.map(|v| param(&v?)).collect(),
        None => Ok(Vec::new()),
    }
}

fn cell(py: Python<'_>, row: &Row, index: usize) -> PyResult<Py<PyAny>> {
    let ty = row.columns()[index].type_().clone();
    macro_rules! get {
        ($t:ty) => {
            row.try_get::<_, Option<$t>>(index)
                .map_err(|e| ConfigurationError::new_err(format!("column {index}: {e}")))?
        };
    }
    Ok(match ty {
        Type::BOOL => get!(bool).into_pyobject(py)?.to_owned().into_any().unbind(),
        Type::INT2 => get!(i16).into_pyobject(py)?.into_any().unbind(),
        Type::INT4 => get!(i32).into_pyobject(py)?.into_any().unbind(),
        Type::INT8 => get!(i64).into_pyobject(py)?.into_any().unbind(),
        Type::FLOAT4 => get!(f32).into_pyobject(py)?.into_any().unbind(),
        Type::FLOAT8 => get!(f64).into_pyobject(py)?.into_any().unbind(),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
            get!(&str).into_pyobject(py)?.into_any().unbind()
        }
        Type::BYTEA => match get!(&[u8]) {
            Some(bytes) => PyBytes::new(py, bytes).into_any().unbind(),
            None => py.None(),
        },
        Type::UUID => match get!(uuid::Uuid) {
            Some(u) => uuid_object(py, u)?,
            None => py.None(),
        },
        Type::JSON | Type::JSONB => match get!(RawJson<'_>) {
            Some(raw) => json::decode(py, raw.0)?.unbind(),
            None => py.None(),
        },
        Type::TIMESTAMPTZ | Type::TIMESTAMP => match get!(Micros) {
            Some(m) => datetime_from_micros(py, m.0)?,
            None => py.None(),
        },
        Type::VOID => py.None(),
        Type::TEXT_ARRAY => get!(Vec<String>).into_pyobject(py)?.into_any().unbind(),
        Type::INT8_ARRAY => get!(Vec<i64>).into_pyobject(py)?.into_any().unbind(),
        other => {
            return Err(ConfigurationError::new_err(format!(
                "column {:?} has type {other}, which the core does not convert; cast it in SQL",
                row.columns()[index].name()
            )))
        }
    })
}

/// Rows -> a list of tuples of Python values.
pub fn rows_to_tuples<'py>(py: Python<'py>, rows: &[Row]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for row in rows {
        let cells: Vec<Py<PyAny>> = (0..row.len())
            .map(|i| cell(py, row, i))
            .collect::<PyResult<_>>()?;
        list.append(PyTuple::new(py, cells)?)?;
    }
    Ok(list)
}
