//! Batched reads. Each call fetches one batch on a pooled connection and returns it; the
//! iterators in Python ask for the next batch with the last offset or position seen, so no
//! connection or transaction is held between batches and memory stays flat.

use tokio_postgres::Row;

use crate::errors::CoreResult;

/// The columns of an event row, in `convert::stored_events` order.
const EVENT_COLUMNS: &str = "stream_name, stream_offset, position, event_id, event_type, data, \
                             metadata, correlation_id, causation_id, created_at";

/// The statements of reads, for one schema.
pub struct Statements {
    pub read_stream: String,
    pub read_all: String,
    pub stream_version: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE stream_name = $1 AND stream_offset >= $2 \
                 ORDER BY stream_offset LIMIT $3"
            ),
            read_all: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            stream_version: format!(
                "SELECT coalesce((SELECT version FROM {s}.streams WHERE stream_name = $1), -1)"
            ),
        }
    }
}

pub async fn read_stream(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    start_offset: i64,
    limit: i64,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.read_stream).await?;
    Ok(client
        .query(&statement, &[&stream, &start_offset, &limit])
        .await?)
}

pub async fn read_all(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    after_position: i64,
    limit: i64,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.read_all).await?;
    Ok(client.query(&statement, &[&after_position, &limit]).await?)
}

pub async fn stream_version(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.stream_version).await?;
    Ok(client.query_one(&statement, &[&stream]).await?.get(0))
}
