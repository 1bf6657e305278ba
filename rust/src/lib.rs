//! pgstreams' Rust core (`pgstreams._core`). This file is the table of contents: modules,
//! and what the Python module exports.

pub mod config;
pub mod db;
pub mod errors;
pub mod json;
pub mod migrations;
pub mod py;
pub mod runtime;
pub mod store;
pub mod tls;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<py::core::Core>()?;
    m.add_class::<py::session::Session>()?;
    m.add_class::<py::types::StoredEvent>()?;
    m.add_class::<py::types::QueuedEvent>()?;
    m.add_class::<py::types::DeadLetter>()?;
    m.add_function(wrap_pyfunction!(py::bridge::_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(py::codec::json_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(py::codec::json_loads, m)?)?;
    m.add_function(wrap_pyfunction!(py::codec::serialize_events, m)?)?;
    m.add("BUNDLED_MIGRATIONS", migrations::BUNDLED.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
