//! Python value -> JSON text, validated as it is written.
//!
//! Floats are written in positional notation and always with a fractional part: PostgreSQL
//! stores jsonb numbers as `numeric`, which keeps the scale it was given, so `1e16` written as
//! `10000000000000000.0` comes back as a float, while `1e16` would come back as the integer
//! 10000000000000000.

use std::fmt::Write as _;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

use super::pytypes;

/// Deeper nesting than this is almost surely a cycle (`d["self"] = d`), which would otherwise
/// overflow the stack; it also stays below the decoder's limit of 128.
const MAX_DEPTH: usize = 100;

/// Why a value cannot be stored, with the path to it built while unwinding.
pub struct EncodeError {
    message: String,
    /// Segments from the innermost outwards, e.g. `["bad"]` then `[2]`.
    reversed_path: Vec<String>,
}

impl EncodeError {
    fn new(message: String) -> Self {
        EncodeError {
            message,
            reversed_path: Vec::new(),
        }
    }

    fn within(mut self, segment: String) -> Self {
        self.reversed_path.push(segment);
        self
    }

    /// `events[1].data["bad"]: cannot store a value of type set as JSON`.
    pub fn describe(&self, root: &str) -> String {
        let mut path = root.to_owned();
        for segment in self.reversed_path.iter().rev() {
            path.push_str(segment);
        }
        format!("{path}: {}", self.message)
    }
}

type EncodeResult = Result<(), EncodeError>;

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "<unknown>".into())
}

fn key_segment(key: &str) -> String {
    let mut segment = String::from("[");
    let _ = write_json_string(&mut segment, key);
    segment.push(']');
    segment
}

/// Writes `text` as a JSON string literal (serde_json's escaping: `"`, `\`, control characters).
fn write_json_string(out: &mut String, text: &str) -> std::fmt::Result {
    let quoted = serde_json::to_string(text).map_err(|_| std::fmt::Error)?;
    out.write_str(&quoted)
}

fn push_str_checked(out: &mut Vec<u8>, text: &str) -> EncodeResult {
    if text.contains('\0') {
        return Err(EncodeError::new(
            "strings cannot contain the NUL character (\\u0000): PostgreSQL text and jsonb reject it".into(),
        ));
    }
    serde_json::to_writer(&mut *out, text)
        .map_err(|e| EncodeError::new(format!("cannot write string: {e}")))
}

fn py_str<'a>(value: &'a Bound<'_, PyString>) -> Result<std::borrow::Cow<'a, str>, EncodeError> {
    value.to_cow().map_err(|_| {
        EncodeError::new("strings cannot contain lone surrogates (they are not valid UTF-8)".into())
    })
}

fn write_float(out: &mut Vec<u8>, value: f64) -> EncodeResult {
    if !value.is_finite() {
        return Err(EncodeError::new(format!(
            "{value} is not valid JSON (NaN and infinities cannot be stored)"
        )));
    }
    // Rust's Display gives the shortest text that parses back to the same f64, never in
    // exponent form; adding ".0" to whole numbers keeps them floats through numeric.
    let start = out.len();
    let _ = std::io::Write::write_fmt(out, format_args!("{value}"));
    if !out[start..].contains(&b'.') {
        out.extend_from_slice(b".0");
    }
    Ok(())
}

/// Integers are signed 64-bit, the range JSON readers in other languages (and PostgreSQL's
/// `bigint`) hold exactly; anything larger is refused rather than stored for some reader to
/// round. (Reading accepts any size: a document another tool wrote comes back exact.)
fn write_int(out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> EncodeResult {
    if let Ok(v) = value.extract::<i64>() {
        let _ = std::io::Write::write_fmt(out, format_args!("{v}"));
        return Ok(());
    }
    Err(EncodeError::new(format!(
        "integer {} is outside the signed 64-bit range (-2**63 to 2**63-1)",
        value.str().map(|s| s.to_string()).unwrap_or_default()
    )))
}

fn write_value(out: &mut Vec<u8>, value: &Bound<'_, PyAny>, depth: usize) -> EncodeResult {
    if depth > MAX_DEPTH {
        return Err(EncodeError::new(format!(
            "nesting deeper than {MAX_DEPTH} levels (is there a reference cycle?)"
        )));
    }
    let py = value.py();
    if value.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(s) = value.cast_exact::<PyString>() {
        push_str_checked(out, &py_str(s)?)?;
    } else if value.is_exact_instance_of::<PyBool>() {
        out.extend_from_slice(if value.is_truthy().unwrap_or(false) {
            b"true"
        } else {
            b"false"
        });
    } else if value.is_exact_instance_of::<PyInt>() {
        write_int(out, value)?;
    } else if let Ok(f) = value.cast_exact::<PyFloat>() {
        write_float(out, f.value())?;
    } else if let Ok(dict) = value.cast::<PyDict>() {
        write_dict(out, dict, depth)?;
    } else if let Ok(list) = value.cast::<PyList>() {
        write_sequence(out, list.iter(), depth)?;
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        write_sequence(out, tuple.iter(), depth)?;
    } else if let Ok(s) = value.cast::<PyString>() {
        push_str_checked(out, &py_str(s)?)?;
    } else if value.is_instance_of::<PyBool>() {
        out.extend_from_slice(if value.is_truthy().unwrap_or(false) {
            b"true"
        } else {
            b"false"
        });
    } else if value.is_instance_of::<PyInt>() {
        write_int(out, value)?;
    } else if let Ok(f) = value.cast::<PyFloat>() {
        write_float(out, f.value())?;
    } else {
        write_known_object(out, value, py)?;
    }
    Ok(())
}

/// UUID, datetime, date and Decimal are written as strings; anything else is refused.
fn write_known_object(out: &mut Vec<u8>, value: &Bound<'_, PyAny>, py: Python<'_>) -> EncodeResult {
    let is = |ty: PyResult<&Bound<'_, pyo3::types::PyType>>| {
        ty.ok()
            .is_some_and(|t| value.is_instance(t).unwrap_or(false))
    };
    let text = if is(pytypes::uuid_type(py)) || is(pytypes::decimal_type(py)) {
        value.str()
    } else if is(pytypes::datetime_type(py)) || is(pytypes::date_type(py)) {
        value
            .call_method0("isoformat")
            .and_then(|s| Ok(s.cast_into::<PyString>()?))
    } else {
        return Err(EncodeError::new(format!(
            "cannot store a value of type {} as JSON (allowed: dict, list, tuple, str, int, float, bool, None, UUID, datetime, date, Decimal)",
            type_name(value)
        )));
    };
    let text =
        text.map_err(|e| EncodeError::new(format!("cannot convert {}: {e}", type_name(value))))?;
    push_str_checked(out, &py_str(&text)?)
}

fn write_dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>, depth: usize) -> EncodeResult {
    out.push(b'{');
    let mut first = true;
    for (key, item) in dict.iter() {
        let key = match key.cast::<PyString>() {
            Ok(k) => k.clone(),
            Err(_) => {
                let shown = key.repr().map(|r| r.to_string()).unwrap_or_default();
                return Err(EncodeError::new(format!(
                    "dict keys must be str, found key {shown} of type {}",
                    type_name(&key)
                )));
            }
        };
        let key_text = py_str(&key)?;
        if !first {
            out.push(b',');
        }
        first = false;
        push_str_checked(out, &key_text).map_err(|e| e.within(key_segment(&key_text)))?;
        out.push(b':');
        write_value(out, &item, depth + 1).map_err(|e| e.within(key_segment(&key_text)))?;
    }
    out.push(b'}');
    Ok(())
}

fn write_sequence<'py>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    depth: usize,
) -> EncodeResult {
    out.push(b'[');
    for (index, item) in items.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_value(out, &item, depth + 1).map_err(|e| e.within(format!("[{index}]")))?;
    }
    out.push(b']');
    Ok(())
}

/// Appends the JSON text of `value` to `out`; on failure the error names the path below the
/// value (the caller knows the root, e.g. `events[3].data`).
pub fn encode_into(out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> Result<(), EncodeError> {
    write_value(out, value, 0)
}

pub fn encode(value: &Bound<'_, PyAny>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value, 0)?;
    Ok(out)
}
