//! Batched reads. Each call fetches one batch on a pooled connection and returns it; the
//! iterators in Python ask for the next batch with the last offset or position seen, so no
//! connection or transaction is held between batches and memory stays flat.

use tokio_postgres::Row;

use super::sql::Sql;
use crate::errors::CoreResult;

pub async fn read_stream(
    client: &deadpool_postgres::Client,
    sql: &Sql,
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
    sql: &Sql,
    after_position: i64,
    limit: i64,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.read_all).await?;
    Ok(client.query(&statement, &[&after_position, &limit]).await?)
}

pub async fn stream_version(
    client: &deadpool_postgres::Client,
    sql: &Sql,
    stream: &str,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.stream_version).await?;
    Ok(client.query_one(&statement, &[&stream]).await?.get(0))
}
