//! Looking at persistent streams as a whole: which exist, and the seed's `stream_metadata`.

use tokio_postgres::Row;

use crate::errors::CoreResult;

/// The statements about streams, for one schema.
pub struct Statements {
    pub list: String,
    pub metadata: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            // Code point order (COLLATE "C"), as the in-memory store sorts.
            list: format!(
                "SELECT stream_name FROM {s}.streams WHERE version >= 0 ORDER BY stream_name COLLATE \"C\""
            ),
            metadata: format!(
                "SELECT stream_name, length, first_offset, last_offset, oldest_timestamp, \
                 newest_timestamp, version FROM {s}.stream_metadata WHERE stream_name = $1 AND version >= 0"
            ),
        }
    }
}

/// Every persistent stream ever written, by name.
pub async fn list(client: &deadpool_postgres::Client, sql: &Statements) -> CoreResult<Vec<String>> {
    let statement = client.prepare_cached(&sql.list).await?;
    let rows = client.query(&statement, &[]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// `(stream, length, first offset, last offset, oldest, newest, version)`; no row for a
/// stream never written.
pub async fn metadata(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.metadata).await?;
    Ok(client.query(&statement, &[&stream]).await?)
}
