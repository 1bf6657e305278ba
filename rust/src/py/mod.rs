//! The PyO3 layer: result classes, conversions across the boundary, and the `Core` and
//! `Session` classes the Python package wraps. Database code lives in `db/`, not here.

pub mod batch;
pub mod bridge;
pub mod codec;
pub mod convert;
pub mod core;
pub mod event;
pub mod follow;
pub mod rows;
pub mod session;
pub mod transaction;
pub mod types;
