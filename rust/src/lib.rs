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
    m.add_class::<py::batch::EventBatch>()?;
    m.add_class::<py::batch::Receipts>()?;
    m.add_function(wrap_pyfunction!(py::batch::parse_event_ids, m)?)?;
    m.add_function(wrap_pyfunction!(py::bridge::_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(py::codec::json_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(py::codec::json_loads, m)?)?;
    m.add("BUNDLED_MIGRATIONS", migrations::BUNDLED.to_vec())?;
    m.add(
        "TIMESTAMP_END_MICROS",
        db::pgtypes::TIMESTAMP_END_UNIX_MICROS,
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
