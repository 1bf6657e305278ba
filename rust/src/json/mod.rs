//! JSON between Python values and PostgreSQL jsonb text, in one pass each way.
//!
//! The rules (DESIGN.md "JSON") are enforced here once, for both stores: the in-memory store
//! round-trips every value through this same codec, so it rejects and returns exactly what
//! PostgreSQL would.

pub mod decode;
pub mod encode;
pub mod pytypes;

pub use decode::{decode, decode_cached, KeyCache};
pub use encode::{encode, encode_into};
pub use pytypes as pytypes_public;

#[cfg(test)]
mod tests;
