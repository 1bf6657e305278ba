//! Consumer offsets: the NEXT offset a consumer group will read from a stream (Kafka-style).

use crate::errors::CoreResult;

/// The statements of consumer offsets, for one schema.
pub struct Statements {
    pub commit: String,
    pub get: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        Statements {
            commit: format!(
                "INSERT INTO {s}.consumer_offsets (stream_name, consumer_group, \"offset\") \
                 VALUES ($1, $2, $3) ON CONFLICT (stream_name, consumer_group) \
                 DO UPDATE SET \"offset\" = excluded.\"offset\", updated_at = now()"
            ),
            get: format!(
                "SELECT \"offset\" FROM {s}.consumer_offsets \
                 WHERE stream_name = $1 AND consumer_group = $2"
            ),
        }
    }
}

pub async fn commit(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    group: &str,
    offset: i64,
) -> CoreResult<bool> {
    let statement = client.prepare_cached(&sql.commit).await?;
    client
        .execute(&statement, &[&stream, &group, &offset])
        .await?;
    Ok(true)
}

pub async fn get(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    group: &str,
) -> CoreResult<Option<i64>> {
    let statement = client.prepare_cached(&sql.get).await?;
    let row = client.query_opt(&statement, &[&stream, &group]).await?;
    Ok(row.map(|r| r.get(0)))
}
