//! Consumer groups' progress: per stream, the NEXT offset to read (Kafka-style); on the
//! global feed, the LAST position processed. The rules (forward only, bounded by the end,
//! an optional expected value) are the `commit_offset`/`commit_position` functions of
//! migration 001, so both are enforced in one statement under the group's row lock.

use tokio_postgres::Row;

use crate::errors::CoreResult;

/// The statements of consumer progress, for one schema.
pub struct Statements {
    pub commit: String,
    pub get: String,
    pub delete: String,
    pub commit_position: String,
    pub get_position: String,
    pub delete_position: String,
    pub groups: String,
    pub groups_of_stream: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        let group_columns =
            "stream_name, consumer_group, committed_offset, committed_position, lag, updated_at";
        Statements {
            commit: format!("SELECT outcome, committed, next_offset FROM {s}.commit_offset($1, $2, $3, $4, $5, $6)"),
            get: format!(
                "SELECT \"offset\" FROM {s}.consumer_offsets \
                 WHERE stream_name = $1 AND consumer_group = $2"
            ),
            delete: format!(
                "DELETE FROM {s}.consumer_offsets WHERE stream_name = $1 AND consumer_group = $2"
            ),
            commit_position: format!(
                "SELECT outcome, committed, head FROM {s}.commit_position($1, $2, $3, $4)"
            ),
            get_position: format!(
                "SELECT position FROM {s}.consumer_positions WHERE consumer_group = $1"
            ),
            delete_position: format!(
                "DELETE FROM {s}.consumer_positions WHERE consumer_group = $1"
            ),
            groups: format!(
                "SELECT {group_columns} FROM {s}.consumer_groups \
                 ORDER BY stream_name NULLS LAST, consumer_group"
            ),
            groups_of_stream: format!(
                "SELECT {group_columns} FROM {s}.consumer_groups WHERE stream_name = $1 \
                 ORDER BY consumer_group"
            ),
        }
    }
}

/// What a commit asked for beyond the offset or position.
pub struct Expectation {
    /// Check the committed value first: it must be `expected` (None: nothing committed yet).
    pub check: bool,
    pub expected: Option<i64>,
}

/// The answer of `commit_offset`/`commit_position`: the outcome (`committed`, `behind`,
/// `past_end`, `conflict`), the committed value found or written, and the bound (the
/// stream's next offset, or the head position).
pub struct Committed {
    pub outcome: String,
    pub committed: Option<i64>,
    pub bound: i64,
}

fn committed(row: Row) -> Committed {
    Committed {
        outcome: row.get(0),
        committed: row.get(1),
        bound: row.get(2),
    }
}

pub async fn commit(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    group: &str,
    offset: i64,
    expectation: &Expectation,
    force: bool,
) -> CoreResult<Committed> {
    let statement = client.prepare_cached(&sql.commit).await?;
    let row = client
        .query_one(
            &statement,
            &[
                &stream,
                &group,
                &offset,
                &expectation.check,
                &expectation.expected,
                &force,
            ],
        )
        .await?;
    Ok(committed(row))
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

/// Forgets a stream's consumer group; true if it existed.
pub async fn delete(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    group: &str,
) -> CoreResult<bool> {
    let statement = client.prepare_cached(&sql.delete).await?;
    Ok(client.execute(&statement, &[&stream, &group]).await? > 0)
}

pub async fn commit_position(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    group: &str,
    position: i64,
    expectation: &Expectation,
) -> CoreResult<Committed> {
    let statement = client.prepare_cached(&sql.commit_position).await?;
    let row = client
        .query_one(
            &statement,
            &[&group, &position, &expectation.check, &expectation.expected],
        )
        .await?;
    Ok(committed(row))
}

pub async fn get_position(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    group: &str,
) -> CoreResult<Option<i64>> {
    let statement = client.prepare_cached(&sql.get_position).await?;
    let row = client.query_opt(&statement, &[&group]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// Forgets a consumer group of the global feed; true if it existed.
pub async fn delete_position(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    group: &str,
) -> CoreResult<bool> {
    let statement = client.prepare_cached(&sql.delete_position).await?;
    Ok(client.execute(&statement, &[&group]).await? > 0)
}

/// `(stream or NULL, group, committed offset, committed position, lag, updated_at)` rows,
/// of one stream or of every stream and the global feed.
pub async fn groups(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: Option<&str>,
) -> CoreResult<Vec<Row>> {
    Ok(match stream {
        Some(stream) => {
            let statement = client.prepare_cached(&sql.groups_of_stream).await?;
            client.query(&statement, &[&stream]).await?
        }
        None => {
            let statement = client.prepare_cached(&sql.groups).await?;
            client.query(&statement, &[]).await?
        }
    })
}
