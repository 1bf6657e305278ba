//! Looking at persistent streams as a whole: the seed's `stream_metadata`. (Listing streams
//! is `admin::list_streams`.)

use tokio_postgres::Row;

use crate::errors::CoreResult;

/// The statements about streams, for one schema.
pub struct Statements {
    pub metadata: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            metadata: format!(
                "SELECT stream_name, length, first_offset, last_offset, oldest_timestamp, \
                 newest_timestamp, version FROM {s}.stream_metadata WHERE stream_name = $1 AND version >= 0"
            ),
        }
    }
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
