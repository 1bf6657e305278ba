//! JSON text (as PostgreSQL's jsonb sends it) -> Python objects, in one pass with no
//! intermediate tree.
//!
//! Written for what a jsonb column can hold, not just for what pgstreams writes, since another
//! tool may have written the row:
//! - **Any depth.** Containers are kept on a heap stack, never the native one: a document
//!   nested 10,000 deep decodes (serde_json, used before, refused 128 and poisoned the reader).
//! - **Exact numbers.** An integer literal becomes an `int` of any size (`2**64` stays
//!   18446744073709551616, not a float). A number with a fraction or an exponent becomes the
//!   nearest `float`, as JSON readers do, unless it does not fit a float at all (`1e400`,
//!   `1e-400`): then a `decimal.Decimal` holding it exactly, never an infinity or a silent 0.
//! - **Every string.** `\u` escapes of lone surrogates (PostgreSQL's `json` type keeps them)
//!   become Python's lone surrogates, as Python's json does.
//!
//! Object keys repeat across the events of a batch ("id", "amount", ...), so a batch shares
//! one `KeyCache`: each distinct short key becomes one Python string, reused (with its hash
//! already computed) for every dict that has it. Measured on 250-byte events: key strings
//! were the largest single cost of decoding.

use std::collections::HashMap;
use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};

use super::pytypes;

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

/// Why a document could not be decoded, and where (a byte offset into its text).
#[derive(Debug)]
pub struct DecodeError {
    pub message: String,
    pub offset: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl DecodeError {
    pub fn into_pyerr(self) -> PyErr {
        pyo3::exceptions::PyValueError::new_err(format!("invalid JSON: {self}"))
    }
}

/// A container being filled: a list, or a dict with the key of the value being parsed.
enum Open<'py> {
    List(Bound<'py, PyList>),
    Dict(Bound<'py, PyDict>, Option<Bound<'py, PyString>>),
}

struct Parser<'a, 'py, 'k> {
    py: Python<'py>,
    text: &'a [u8],
    pos: usize,
    keys: &'k mut KeyCache,
}

type Parsed<T> = Result<T, DecodeError>;

impl<'a, 'py> Parser<'a, 'py, '_> {
    fn fail<T>(&self, message: impl Into<String>) -> Parsed<T> {
        Err(DecodeError {
            message: message.into(),
            offset: self.pos,
        })
    }

    fn python<T>(&self, result: PyResult<T>) -> Parsed<T> {
        result.or_else(|error| self.fail(format!("cannot build the value: {error}")))
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8) -> Parsed<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(format!("expected '{}'", byte as char))
        }
    }

    fn literal(&mut self, word: &[u8], value: Bound<'py, PyAny>) -> Parsed<Bound<'py, PyAny>> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            self.fail("expected a JSON value")
        }
    }

    /// The whole document: values nest through `stack`, never through recursion.
    fn document(&mut self) -> Parsed<Bound<'py, PyAny>> {
        let mut stack: Vec<Open<'py>> = Vec::new();
        'value: loop {
            // A value begins here: a scalar, or a container that is opened (and, when not
            // empty, pushed so that its first member is parsed next).
            let mut value = match self.peek() {
                Some(b'{') => {
                    self.pos += 1;
                    let dict = PyDict::new(self.py);
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        dict.into_any()
                    } else {
                        let key = self.key()?;
                        stack.push(Open::Dict(dict, Some(key)));
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    let list = PyList::empty(self.py);
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        list.into_any()
                    } else {
                        stack.push(Open::List(list));
                        continue 'value;
                    }
                }
                Some(b'"') => self.string()?.into_any(),
                Some(b't') => {
                    self.literal(b"true", PyBool::new(self.py, true).to_owned().into_any())?
                }
                Some(b'f') => {
                    self.literal(b"false", PyBool::new(self.py, false).to_owned().into_any())?
                }
                Some(b'n') => self.literal(b"null", self.py.None().into_bound(self.py))?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.fail("expected a JSON value"),
                None => return self.fail("unexpected end of the document"),
            };
            // The value is complete: put it in its container, then either go on to the
            // container's next member, or close the container, which completes it in turn.
            loop {
                match stack.last_mut() {
                    None => {
                        if self.peek().is_some() {
                            return self.fail("unexpected text after the document");
                        }
                        return Ok(value);
                    }
                    Some(Open::List(list)) => {
                        self.python(list.append(value))?;
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => self.pos += 1,
                            _ => return self.fail("expected ',' or ']'"),
                        }
                    }
                    Some(Open::Dict(dict, key)) => {
                        let member = key.take().expect("a dict's key is read before its value");
                        self.python(dict.set_item(member, value))?;
                        match self.peek() {
                            Some(b',') => {
                                self.pos += 1;
                                *key = Some(self.key()?);
                                continue 'value;
                            }
                            Some(b'}') => self.pos += 1,
                            _ => return self.fail("expected ',' or '}'"),
                        }
                    }
                }
                value = match stack.pop() {
                    Some(Open::List(list)) => list.into_any(),
                    Some(Open::Dict(dict, _)) => dict.into_any(),
                    None => unreachable!("a container was just closed"),
                };
            }
        }
    }

    /// An object key and its ':'.
    fn key(&mut self) -> Parsed<Bound<'py, PyString>> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a string key");
        }
        let key = match self.raw_string()? {
            Text::Plain(text) => self.keys.key(self.py, text),
            other => self.to_py_string(other)?,
        };
        self.expect(b':')?;
        Ok(key)
    }

    fn string(&mut self) -> Parsed<Bound<'py, PyString>> {
        let text = self.raw_string()?;
        self.to_py_string(text)
    }

    fn to_py_string(&self, text: Text<'a>) -> Parsed<Bound<'py, PyString>> {
        match text {
            Text::Plain(text) => Ok(PyString::new(self.py, text)),
            Text::Unescaped(text) => Ok(PyString::new(self.py, &text)),
            Text::Utf16(units) => self.python(utf16_with_surrogates(self.py, &units)),
        }
    }

    /// The string starting at the opening quote, with its escapes resolved.
    fn raw_string(&mut self) -> Parsed<Text<'a>> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let Some(end) = memchr::memchr2(b'"', b'\\', &self.text[start..]) else {
            return self.fail("unterminated string");
        };
        if self.text[start + end] == b'"' {
            self.pos = start + end + 1;
            return match std::str::from_utf8(&self.text[start..start + end]) {
                Ok(text) => Ok(Text::Plain(text)),
                Err(error) => self.fail(format!("a string is not valid UTF-8 ({error})")),
            };
        }
        self.escaped_string(start)
    }

    /// The slow path, from `start` (just after the quote): a string with escapes.
    fn escaped_string(&mut self, start: usize) -> Parsed<Text<'a>> {
        let mut out = String::new();
        // Becomes Some once a lone surrogate is met: Rust strings cannot hold one.
        let mut utf16: Option<Vec<u16>> = None;
        self.pos = start;
        loop {
            let rest = &self.text[self.pos..];
            let Some(next) = memchr::memchr2(b'"', b'\\', rest) else {
                return self.fail("unterminated string");
            };
            let chunk = match std::str::from_utf8(&rest[..next]) {
                Ok(chunk) => chunk,
                Err(error) => return self.fail(format!("a string is not valid UTF-8 ({error})")),
            };
            match &mut utf16 {
                Some(units) => units.extend(chunk.encode_utf16()),
                None => out.push_str(chunk),
            }
            self.pos += next;
            if self.text[self.pos] == b'"' {
                self.pos += 1;
                return Ok(match utf16 {
                    Some(units) => Text::Utf16(units),
                    None => Text::Unescaped(out),
                });
            }
            self.pos += 1; // the backslash
            let escape = self.text.get(self.pos).copied();
            self.pos += 1;
            let plain = match escape {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    let unit = self.hex4()?;
                    let pair = (0xD800..0xDC00).contains(&unit)
                        && self.text[self.pos..].starts_with(b"\\u")
                        && {
                            let saved = self.pos;
                            self.pos += 2;
                            let low = self.hex4()?;
                            if (0xDC00..0xE000).contains(&low) {
                                let c = 0x10000
                                    + ((u32::from(unit) - 0xD800) << 10)
                                    + (u32::from(low) - 0xDC00);
                                push_char(
                                    &mut out,
                                    &mut utf16,
                                    char::from_u32(c).unwrap_or('\u{fffd}'),
                                );
                                true
                            } else {
                                self.pos = saved;
                                false
                            }
                        };
                    if pair {
                        continue;
                    }
                    match char::from_u32(u32::from(unit)) {
                        Some(c) => c,
                        None => {
                            // A lone surrogate: from here on, build UTF-16.
                            let units = utf16.get_or_insert_with(|| out.encode_utf16().collect());
                            units.push(unit);
                            continue;
                        }
                    }
                }
                _ => return self.fail("invalid escape in a string"),
            };
            push_char(&mut out, &mut utf16, plain);
        }
    }

    fn hex4(&mut self) -> Parsed<u16> {
        let digits = self.text.get(self.pos..self.pos + 4);
        let value = digits
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u16::from_str_radix(d, 16).ok());
        match value {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => self.fail("invalid \\u escape"),
        }
    }

    fn number(&mut self) -> Parsed<Bound<'py, PyAny>> {
        let start = self.pos;
        let mut integer = true;
        let bytes = self.text;
        let mut i = self.pos;
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        if bytes.get(i) == Some(&b'0') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            self.pos = i;
            return self.fail("invalid number (a leading zero)");
        }
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if !digits(&mut i) {
            self.pos = i;
            return self.fail("invalid number");
        }
        if bytes.get(i) == Some(&b'.') {
            integer = false;
            i += 1;
            if !digits(&mut i) {
                self.pos = i;
                return self.fail("invalid number");
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            integer = false;
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                self.pos = i;
                return self.fail("invalid number");
            }
        }
        self.pos = i;
        // Only ASCII digits, signs, '.', 'e' were accepted above.
        let text = std::str::from_utf8(&bytes[start..i]).expect("ASCII");
        let py = self.py;
        if integer {
            if let Ok(small) = text.parse::<i64>() {
                let Ok(int) = small.into_pyobject(py);
                return Ok(int.into_any());
            }
            return self.python(py.get_type::<pyo3::types::PyInt>().call1((text,)));
        }
        let float: f64 = text.parse().expect("a JSON number parses as f64");
        let mantissa_is_zero = text
            .split(['e', 'E'])
            .next()
            .is_some_and(|m| m.bytes().all(|b| matches!(b, b'0' | b'-' | b'.')));
        if float.is_finite() && (float != 0.0 || mantissa_is_zero) {
            return Ok(PyFloat::new(py, float).into_any());
        }
        // Beyond what a float holds (1e400, 1e-400): the exact value, not inf or 0.
        self.python(pytypes::decimal_type(py).and_then(|decimal| decimal.call1((text,))))
    }
}

/// A decoded string: borrowed when it had no escapes, owned when it had, UTF-16 when it
/// holds a lone surrogate.
enum Text<'a> {
    Plain(&'a str),
    Unescaped(String),
    Utf16(Vec<u16>),
}

fn push_char(out: &mut String, utf16: &mut Option<Vec<u16>>, c: char) {
    match utf16 {
        Some(units) => {
            let mut buffer = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buffer));
        }
        None => out.push(c),
    }
}

/// A Python string from UTF-16 that may hold lone surrogates (Python's `surrogatepass`).
fn utf16_with_surrogates<'py>(py: Python<'py>, units: &[u16]) -> PyResult<Bound<'py, PyString>> {
    let bytes: Vec<u8> = units.iter().flat_map(|u| u.to_le_bytes()).collect();
    let mut little_endian: std::os::raw::c_int = -1;
    // SAFETY: `bytes` outlives the call, its length is passed, and the error handler name is
    // a NUL-terminated literal; the result is a new reference or NULL with an exception set.
    unsafe {
        let object = pyo3::ffi::PyUnicode_DecodeUTF16(
            bytes.as_ptr().cast(),
            bytes.len() as pyo3::ffi::Py_ssize_t,
            c"surrogatepass".as_ptr(),
            &mut little_endian,
        );
        Ok(Bound::from_owned_ptr_or_err(py, object)?.cast_into::<PyString>()?)
    }
}

/// Builds the Python value of one JSON document, sharing `keys` with the rest of its batch.
pub fn decode_cached<'py>(
    py: Python<'py>,
    text: &[u8],
    keys: &mut KeyCache,
) -> Result<Bound<'py, PyAny>, DecodeError> {
    Parser {
        py,
        text,
        pos: 0,
        keys,
    }
    .document()
}

/// Builds the Python value of one JSON document.
pub fn decode<'py>(py: Python<'py>, text: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    decode_cached(py, text, &mut KeyCache::default()).map_err(DecodeError::into_pyerr)
}
