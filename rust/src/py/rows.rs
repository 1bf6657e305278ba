//! Fetched rows that become Python objects only when handed to the event loop: the result
//! types of statements whose rows need no decoding of their own.

use pyo3::prelude::*;
use pyo3::types::PyList;
use tokio_postgres::Row;

use crate::py::{codec, convert};

/// Fetched rows that become Python objects only when the result is handed to the event
/// loop (`bridge::deliver`), the one moment the GIL is taken: `$name(rows)` is built by
/// `$convert(py, &rows)`.
macro_rules! rows_into_py {
    ($($(#[$doc:meta])* $name:ident => $convert:path;)+) => {$(
        $(#[$doc])*
        pub struct $name(pub Vec<Row>);

        impl<'py> IntoPyObject<'py> for $name {
            type Target = PyList;
            type Output = Bound<'py, PyList>;
            type Error = PyErr;
            fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
                $convert(py, &self.0)
            }
        }
    )+};
}

rows_into_py! {
    /// Rows of a dead-letter listing -> `DeadLetter`s.
    DeadLetterRows => convert::dead_letters;
    /// Rows of any statement -> tuples.
    TupleRows => codec::rows_to_tuples;
}
