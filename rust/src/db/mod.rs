//! The database side of the core: plain async Rust over tokio-postgres, no PyO3, so
//! `cargo test` can drive it without Python.

pub mod admin;
pub mod append;
pub mod configuration;
pub mod connection;
pub mod generic;
pub mod groups;
pub mod listener;
pub mod migrate;
pub mod offsets;
pub mod pgtypes;
pub mod query;
pub mod queue;
pub mod queue_admin;
pub mod read;
pub mod recorder;
pub mod retention;
pub mod sql;
pub mod streams;
pub mod transaction;

pub use pgtypes::{JsonText, Micros, RawJson};
