//! Looking at and tidying a queue: its counts, its dead letters, redrive, deletion, purge.
//!
//! The reads here never write. A message whose last allowed lease has expired (`is_spent`,
//! migration 001) is reported as the dead letter it already is, though only the next dequeue
//! (or a redrive) marks it: a "get" costs one read, not a sweep and a read.

use tokio_postgres::Row;
use uuid::Uuid;

use crate::errors::CoreResult;

/// `raw("column")`: the column's stored bytes as `bytea`. Converting to SQL_ASCII is the one
/// conversion PostgreSQL never checks, so it cannot fail on text that is not valid UTF-8.
const RAW: &str = "convert_to(<text>, 'SQL_ASCII')";

fn raw(text: &str) -> String {
    RAW.replace("<text>", text)
}

/// The statements of queue inspection and housekeeping, for one schema.
pub struct Statements {
    pub stats: String,
    pub dead_letters: String,
    pub redrive: String,
    pub delete_dead_letters: String,
    pub purge: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        let dead = format!("(q.failed_at IS NOT NULL OR {s}.is_spent(q))");
        let ids = "($2::uuid[] IS NULL OR q.id = ANY($2::uuid[]))";
        Statements {
            // visible, delayed, leased, dead, age of the oldest live message in seconds.
            stats: format!(
                "WITH m AS ( \
                   SELECT q.visible_at, q.lease_token, q.enqueued_at, {dead} AS dead \
                   FROM {s}.queue_events q WHERE q.stream_name = $1 \
                 ) \
                 SELECT count(*) FILTER (WHERE NOT dead AND (visible_at IS NULL OR visible_at <= now())), \
                        count(*) FILTER (WHERE NOT dead AND visible_at > now() AND lease_token IS NULL), \
                        count(*) FILTER (WHERE NOT dead AND visible_at > now() AND lease_token IS NOT NULL), \
                        count(*) FILTER (WHERE dead), \
                        extract(epoch FROM now() - min(enqueued_at) FILTER (WHERE NOT dead))::float8 \
                 FROM m"
            ),
            // The seed's view, which reports a spent message as failed when its last lease
            // expired: what dead_letter() records when it marks it, so a listing does not
            // change when that happens. Text and JSON come as the stored bytes ({RAW}), which
            // the server sends without re-encoding: a listing of what failed shows every row,
            // even one whose text is not UTF-8 (`convert::dead_letters`).
            dead_letters: format!(
                "SELECT id, {stream}, {event_type}, {data}, {metadata}, {correlation_id}, \
                        {causation_id}, delivery_attempts, enqueued_at, failed_at, {reason} \
                 FROM {s}.dead_letter_queue WHERE stream_name = $1 ORDER BY failed_at, id LIMIT $2",
                stream = raw("stream_name"),
                event_type = raw("event_type"),
                data = raw("data::text"),
                metadata = raw("metadata::text"),
                correlation_id = raw("correlation_id"),
                causation_id = raw("causation_id"),
                reason = raw("reason"),
            ),
            redrive: format!("SELECT {s}.redrive_dead_letters($1, $2)"),
            delete_dead_letters: format!(
                "WITH gone AS (DELETE FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND {dead} AND {ids} RETURNING 1) \
                 SELECT count(*) FROM gone"
            ),
            purge: format!(
                "WITH gone AS (DELETE FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND NOT {dead} RETURNING 1) \
                 SELECT count(*) FROM gone"
            ),
        }
    }
}

/// One row: `(visible, delayed, leased, dead, oldest age in seconds or NULL)`.
pub async fn stats(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.stats).await?;
    Ok(client.query(&statement, &[&stream]).await?)
}

/// The stream's dead letters by failure time, then id, at most `limit`.
pub async fn dead_letters(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    limit: i64,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.dead_letters).await?;
    Ok(client.query(&statement, &[&stream, &limit]).await?)
}

/// Puts the stream's dead letters (those of `ids`, if given) back into the queue, spent
/// messages included (`redrive_dead_letters`, migration 001).
pub async fn redrive(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    ids: Option<&[Uuid]>,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.redrive).await?;
    Ok(client.query_one(&statement, &[&stream, &ids]).await?.get(0))
}

pub async fn delete_dead_letters(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    ids: Option<&[Uuid]>,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.delete_dead_letters).await?;
    Ok(client.query_one(&statement, &[&stream, &ids]).await?.get(0))
}

/// Deletes every live message of the stream, leased or not; dead letters stay.
pub async fn purge(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.purge).await?;
    Ok(client.query_one(&statement, &[&stream]).await?.get(0))
}
