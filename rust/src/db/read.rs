//! Batched reads. Each call fetches one batch on a pooled connection and returns it; the
//! iterators in Python ask for the next batch with the last offset or position seen, so no
//! connection or transaction is held between batches and memory stays flat.
//!
//! A batch can hold a row the server cannot send as UTF-8 (text that another tool wrote
//! into a `SQL_ASCII` database): the server then fails the whole statement, which would stop
//! every reader at that batch forever without saying which event is to blame. So on that
//! error a read falls back to fetching the batch's keys, then its rows one at a time, and
//! returns the rows before the bad one together with who the bad one is.

use postgres_types::{ToSql, Type};
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::errors::{CoreError, CoreResult};

/// The columns of an event row, in `convert::stored_events` order.
pub const EVENT_COLUMNS: &str = "stream_name, stream_offset, position, event_id, event_type, \
                                 data, metadata, correlation_id, causation_id, created_at, version";

/// What identifies an event row, readable whatever its text holds: the stream name comes as
/// its stored bytes (converting to SQL_ASCII is the one conversion the server never checks).
const KEY_COLUMNS: &str = "position, stream_offset, event_id, convert_to(stream_name, 'SQL_ASCII')";

/// One kind of batch read: its statement, and the same selection returning only keys.
pub struct Read {
    rows: String,
    keys: String,
    one: String,
}

impl Read {
    /// The read of `selection` (its WHERE, ORDER BY and LIMIT) from the events of schema `s`.
    pub fn new(s: &str, selection: &str) -> Self {
        Read {
            rows: format!("SELECT {EVENT_COLUMNS} FROM {s}.events {selection}"),
            keys: format!("SELECT {KEY_COLUMNS} FROM {s}.events {selection}"),
            one: format!("SELECT {EVENT_COLUMNS} FROM {s}.events WHERE position = $1"),
        }
    }
}

/// The statements of reads, for one schema.
pub struct Statements {
    pub read_stream: Read,
    pub read_stream_backwards: Read,
    pub read_all: Read,
    pub stream_version: String,
    pub head_position: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            read_stream: Read::new(
                s,
                "WHERE stream_name = $1 AND stream_offset >= $2 ORDER BY stream_offset LIMIT $3",
            ),
            read_stream_backwards: Read::new(
                s,
                "WHERE stream_name = $1 AND stream_offset <= $2 \
                 ORDER BY stream_offset DESC LIMIT $3",
            ),
            read_all: Read::new(s, "WHERE position > $1 ORDER BY position LIMIT $2"),
            stream_version: format!(
                "SELECT coalesce((SELECT version FROM {s}.streams WHERE stream_name = $1), -1)"
            ),
            head_position: format!("SELECT {s}.head_position()"),
        }
    }
}

/// An event row the server could not send, named as far as its keys go.
#[derive(Debug)]
pub struct BadRow {
    pub stream: String,
    pub offset: i64,
    pub position: i64,
    pub id: Uuid,
    pub cause: String,
}

/// A batch: its rows in order, and the row that stopped it early, if one did.
pub struct Batch {
    pub rows: Vec<Row>,
    pub bad: Option<BadRow>,
}

/// The server refused to send a value as UTF-8 (SQLSTATE 22021 or 22P05).
pub fn cannot_be_sent(error: &CoreError) -> bool {
    matches!(
        error.sqlstate(),
        Some(code) if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE
            || *code == SqlState::UNTRANSLATABLE_CHARACTER
    )
}

/// How a read's statement is planned.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Planning<'a> {
    /// Prepared once per connection (the fixed reads: one plan fits every value).
    Cached,
    /// Planned with its values on every run (the filtered queries of `query`): sent as an
    /// unnamed statement with these parameter types, in one round trip.
    WithValues(&'a [Type]),
}

fn typed<'a>(
    params: &[&'a (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}

/// Runs one batch read, falling back to row by row when a row cannot be sent.
pub async fn read_batch(
    client: &deadpool_postgres::Client,
    read: &Read,
    params: &[&(dyn ToSql + Sync)],
    planning: Planning<'_>,
) -> CoreResult<Batch> {
    let fetched = match planning {
        Planning::Cached => {
            let statement = client.prepare_cached(&read.rows).await?;
            client.query(&statement, params).await
        }
        Planning::WithValues(types) => {
            let params = typed(params, types);
            client.query_typed(read.rows.as_str(), &params).await
        }
    };
    match fetched.map_err(CoreError::from) {
        Ok(rows) => Ok(Batch { rows, bad: None }),
        Err(error) if cannot_be_sent(&error) => row_by_row(client, read, params, planning).await,
        Err(error) => Err(error),
    }
}

/// The slow path: the batch's keys, then each row alone until the one that fails.
async fn row_by_row(
    client: &deadpool_postgres::Client,
    read: &Read,
    params: &[&(dyn ToSql + Sync)],
    planning: Planning<'_>,
) -> CoreResult<Batch> {
    let keys = match planning {
        Planning::Cached => client.query(read.keys.as_str(), params).await?,
        Planning::WithValues(types) => {
            let params = typed(params, types);
            client.query_typed(read.keys.as_str(), &params).await?
        }
    };
    let one = client.prepare_cached(&read.one).await?;
    let mut rows = Vec::with_capacity(keys.len());
    for key in &keys {
        let position: i64 = key.get(0);
        match client
            .query_one(&one, &[&position])
            .await
            .map_err(CoreError::from)
        {
            Ok(row) => rows.push(row),
            Err(error) if cannot_be_sent(&error) => {
                let stream: Vec<u8> = key.get(3);
                let bad = BadRow {
                    stream: String::from_utf8_lossy(&stream).into_owned(),
                    offset: key.get(1),
                    position,
                    id: key.get(2),
                    cause: error.to_string(),
                };
                return Ok(Batch {
                    rows,
                    bad: Some(bad),
                });
            }
            Err(error) => return Err(error),
        }
    }
    Ok(Batch { rows, bad: None })
}

pub async fn read_stream(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    start_offset: i64,
    limit: i64,
) -> CoreResult<Batch> {
    read_batch(
        client,
        &sql.read_stream,
        &[&stream, &start_offset, &limit],
        Planning::Cached,
    )
    .await
}

/// Up to `limit` events of `stream` from `start_offset` down, newest first: what aggregate
/// loading with snapshots needs (one backward scan of the stream index, never the stream).
pub async fn read_stream_backwards(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    start_offset: i64,
    limit: i64,
) -> CoreResult<Batch> {
    let read = &sql.read_stream_backwards;
    read_batch(
        client,
        read,
        &[&stream, &start_offset, &limit],
        Planning::Cached,
    )
    .await
}

pub async fn read_all(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    after_position: i64,
    limit: i64,
) -> CoreResult<Batch> {
    read_batch(
        client,
        &sql.read_all,
        &[&after_position, &limit],
        Planning::Cached,
    )
    .await
}

pub async fn stream_version(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.stream_version).await?;
    Ok(client.query_one(&statement, &[&stream]).await?.get(0))
}

/// The highest position ever committed (0 for a store never written); never goes back.
pub async fn head_position(
    client: &deadpool_postgres::Client,
    sql: &Statements,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.head_position).await?;
    Ok(client.query_one(&statement, &[]).await?.get(0))
}
