//! pgstreams' Rust core (`pgstreams._core`). This file is the table of contents: modules,
//! and what the Python module exports.

pub mod config;
pub mod db;
pub mod errors;
pub mod group_commit;
pub mod json;
pub mod migrations;
pub mod py;
pub mod queue_wait;
pub mod runtime;
pub mod store;
pub mod tls;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The core logs (a lost LISTEN connection, a released lease...) through Python's
    // logging, as logger "pgstreams" like the rest of the package. Debug records are dropped
    // here: checking Python's level for each would take the GIL on a tokio thread.
    let _ = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::LoggersAndLevels)?
        .filter(log::LevelFilter::Info)
        .install();
    m.add_class::<py::core::Core>()?;
    m.add_class::<py::core::BlockingCore>()?;
    m.add_class::<py::session::Session>()?;
    m.add_class::<py::transaction::Transaction>()?;
    m.add_class::<py::transaction::BlockingTransaction>()?;
    m.add_class::<py::follow::FeedFollower>()?;
    m.add_function(wrap_pyfunction!(py::follow::notify_channel, m)?)?;
    m.add_class::<py::event::Event>()?;
    m.add_function(wrap_pyfunction!(py::event::new_event_id, m)?)?;
    m.add_class::<py::types::StoredEvent>()?;
    m.add_class::<py::core::EventPage>()?;
    m.add_class::<py::types::QueuedEvent>()?;
    m.add_class::<py::types::DeadLetter>()?;
    m.add_class::<py::batch::EventBatch>()?;
    m.add_class::<py::batch::Receipts>()?;
    m.add_function(wrap_pyfunction!(py::batch::parse_event_ids, m)?)?;
    m.add_function(wrap_pyfunction!(py::bridge::_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(py::bridge::_panicking_call, m)?)?;
    m.add_function(wrap_pyfunction!(py::bridge::_panicking_blocking_call, m)?)?;
    m.add_function(wrap_pyfunction!(py::session::migration_bootstrap_sql, m)?)?;
    m.add_function(wrap_pyfunction!(py::session::migration_record_sql, m)?)?;
    m.add_function(wrap_pyfunction!(py::session::event_data_index_sql, m)?)?;
    m.add_function(wrap_pyfunction!(py::codec::json_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(py::codec::json_loads, m)?)?;
    m.add("BUNDLED_MIGRATIONS", migrations::BUNDLED.to_vec())?;
    m.add("MAX_DURATION_SECONDS", config::MAX_DURATION_SECONDS)?;
    m.add(
        "MAX_STATEMENT_TIMEOUT_SECONDS",
        config::MAX_STATEMENT_TIMEOUT_SECONDS,
    )?;
    m.add("MAX_POOL_SIZE", config::MAX_POOL_SIZE)?;
    m.add("MAX_NAME_BYTES", config::MAX_NAME_BYTES)?;
    m.add("MAX_READ_BATCH_SIZE", config::MAX_READ_BATCH_SIZE)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
