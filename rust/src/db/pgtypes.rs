//! Wire formats the hot paths use directly: jsonb as already-serialized JSON text (no
//! intermediate value tree either way) and timestamptz as raw microseconds.

use bytes::BufMut;
use postgres_types::{accepts, to_sql_checked, FromSql, IsNull, ToSql, Type};

/// Serialized JSON, sent as `json` or `jsonb` (binary jsonb is a version byte, 1, then text).
#[derive(Clone, Debug, Default)]
pub struct JsonText(pub Vec<u8>);

impl ToSql for JsonText {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }
    accepts!(JSON, JSONB);
    to_sql_checked!();
}

/// Borrowed JSON text of a `json`/`jsonb` column.
pub struct RawJson<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawJson<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            match raw.split_first() {
                Some((1, text)) => Ok(RawJson(text)),
                _ => Err("unsupported jsonb version".into()),
            }
        } else {
            Ok(RawJson(raw))
        }
    }
    accepts!(JSON, JSONB);
}

/// Microseconds since 2000-01-01 UTC, PostgreSQL's own timestamp representation.
const POSTGRES_EPOCH_IN_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A timestamp as microseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Micros(pub i64);

impl ToSql for Micros {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let since_postgres_epoch = self
            .0
            .checked_sub(POSTGRES_EPOCH_IN_UNIX_MICROS)
            .ok_or("timestamp out of range")?;
        out.put_i64(since_postgres_epoch);
        Ok(IsNull::No)
    }
    accepts!(TIMESTAMPTZ, TIMESTAMP);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Micros {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into().map_err(|_| "bad timestamp length")?;
        // 'infinity' is i64::MAX: no instant a Python datetime can hold.
        i64::from_be_bytes(bytes)
            .checked_add(POSTGRES_EPOCH_IN_UNIX_MICROS)
            .map(Micros)
            .ok_or_else(|| "timestamp out of range ('infinity')".into())
    }
    accepts!(TIMESTAMPTZ, TIMESTAMP);
}

/// The bytes of a text column as the server sent them, whatever they hold (or of the `bytea`
/// that `convert_to(text, 'SQL_ASCII')` makes of one): what a lenient reader falls back on
/// when the text is not valid UTF-8 (`&str` refuses it).
pub struct RawText<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawText<'a> {
    fn from_sql(
        _ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawText(raw))
    }
    accepts!(TEXT, VARCHAR, BPCHAR, NAME, BYTEA);
}
