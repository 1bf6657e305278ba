//! JSON text (as PostgreSQL's jsonb sends it) -> Python objects, in one pass with no
//! intermediate tree: serde_json drives a visitor that builds the Python values directly.
//! Numbers with a fraction or exponent become floats, the rest ints (as Python's json does).
//!
//! Object keys repeat across the events of a batch ("id", "amount", ...), so a batch shares
//! one `KeyCache`: each distinct short key becomes one Python string, reused (with its hash
//! already computed) for every dict that has it. Measured on 250-byte events: key strings
//! were the largest single cost of decoding.

use std::collections::HashMap;
use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Keys longer than this are rarely repeated field names; caching them would only grow the map.
const MAX_CACHED_KEY_LEN: usize = 64;
/// A bound on distinct keys per cache, so a batch of documents with data-like keys
/// (user ids as keys, say) cannot grow it without limit.
const MAX_CACHED_KEYS: usize = 4096;

#[derive(Default)]
pub struct KeyCache {
    keys: HashMap<Box<str>, Py<PyString>>,
}

impl KeyCache {
    fn key<'py>(&mut self, py: Python<'py>, text: &str) -> Bound<'py, PyString> {
        if text.len() > MAX_CACHED_KEY_LEN {
            return PyString::new(py, text);
        }
        if let Some(found) = self.keys.get(text) {
            return found.bind(py).clone();
        }
        let key = PyString::intern(py, text);
        if self.keys.len() < MAX_CACHED_KEYS {
            self.keys.insert(text.into(), key.clone().unbind());
        }
        key
    }
}

struct ValueSeed<'a, 'py> {
    py: Python<'py>,
    keys: &'a mut KeyCache,
}

struct KeySeed<'a, 'py> {
    py: Python<'py>,
    keys: &'a mut KeyCache,
}

fn to_serde<E: serde::de::Error>(error: PyErr) -> E {
    E::custom(error.to_string())
}

impl<'de, 'py> DeserializeSeed<'de> for ValueSeed<'_, 'py> {
    type Value = Bound<'py, PyAny>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for ValueSeed<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.py.None().into_bound(self.py))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyBool::new(self.py, v).to_owned().into_any())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.py);
        Ok(int.into_any())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.py);
        Ok(int.into_any())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyFloat::new(self.py, v).into_any())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.py, v).into_any())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.py);
        while let Some(item) = seq.next_element_seed(ValueSeed {
            py: self.py,
            keys: &mut *self.keys,
        })? {
            list.append(item).map_err(to_serde)?;
        }
        Ok(list.into_any())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.py);
        while let Some(key) = map.next_key_seed(KeySeed {
            py: self.py,
            keys: &mut *self.keys,
        })? {
            let value = map.next_value_seed(ValueSeed {
                py: self.py,
                keys: &mut *self.keys,
            })?;
            dict.set_item(key, value).map_err(to_serde)?;
        }
        Ok(dict.into_any())
    }
}

impl<'de, 'py> DeserializeSeed<'de> for KeySeed<'_, 'py> {
    type Value = Bound<'py, PyString>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for KeySeed<'_, 'py> {
    type Value = Bound<'py, PyString>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.keys.key(self.py, v))
    }
}

fn invalid(error: serde_json::Error) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(format!("invalid JSON from the server: {error}"))
}

/// Builds the Python value of one JSON document, sharing `keys` with the rest of its batch.
/// serde_json refuses nesting beyond 128 levels; the encoder refuses beyond 100, so
/// everything pgstreams wrote reads back.
pub fn decode_cached<'py>(
    py: Python<'py>,
    text: &[u8],
    keys: &mut KeyCache,
) -> PyResult<Bound<'py, PyAny>> {
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let value = ValueSeed { py, keys }
        .deserialize(&mut deserializer)
        .map_err(invalid)?;
    deserializer.end().map_err(invalid)?;
    Ok(value)
}

/// Builds the Python value of one JSON document.
pub fn decode<'py>(py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    decode_cached(py, text, &mut KeyCache::default())
}
