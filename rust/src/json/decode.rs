//! JSON text (as PostgreSQL's jsonb sends it) -> Python objects, in one pass with no
//! intermediate tree: serde_json drives a visitor that builds the Python values directly.
//! Numbers with a fraction or exponent become floats, the rest ints (as Python's json does).

use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

struct ValueSeed<'py>(Python<'py>);
struct KeySeed<'py>(Python<'py>);

fn to_serde<E: serde::de::Error>(error: PyErr) -> E {
    E::custom(error.to_string())
}

impl<'de, 'py> DeserializeSeed<'de> for ValueSeed<'py> {
    type Value = Bound<'py, PyAny>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for ValueSeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyBool::new(self.0, v).to_owned().into_any())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyFloat::new(self.0, v).into_any())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.0);
        while let Some(item) = seq.next_element_seed(ValueSeed(self.0))? {
            list.append(item).map_err(to_serde)?;
        }
        Ok(list.into_any())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            let value = map.next_value_seed(ValueSeed(self.0))?;
            dict.set_item(key, value).map_err(to_serde)?;
        }
        Ok(dict.into_any())
    }
}

impl<'de, 'py> DeserializeSeed<'de> for KeySeed<'py> {
    type Value = Bound<'py, PyString>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for KeySeed<'py> {
    type Value = Bound<'py, PyString>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v))
    }
}

/// Builds the Python value of one JSON document.
pub fn decode<'py>(py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    // serde_json refuses nesting beyond 128 levels; the encoder refuses beyond 100, so
    // everything pgstreams wrote reads back.
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = ValueSeed(py).deserialize(&mut deserializer).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!("invalid JSON from the server: {e}"))
    })?;
    deserializer.end().map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!("invalid JSON from the server: {e}"))
    })?;
    Ok(value)
}
