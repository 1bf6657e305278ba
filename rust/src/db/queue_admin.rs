//! Looking at and tidying a queue: its counts, its dead letters, redrive, deletion, purge.
//!
//! The reads here never write. A message whose last allowed delivery has expired (`SPENT`) is
//! reported as the dead letter it already is, though only the next dequeue (or a redrive)
//! moves it to `dead_letter_queue`: a "get" costs one read, not a sweep and a read.

use tokio_postgres::Row;
use uuid::Uuid;

use super::sql::SPENT;
use crate::errors::CoreResult;

/// The columns of a dead letter, in `convert::dead_letters` order.
const DEAD_LETTER_COLUMNS: &str = "id, stream_name, event_type, data, metadata, correlation_id, \
    causation_id, delivery_attempts, enqueued_at, failed_at, reason";

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
        Statements {
            // visible, delayed, leased, dead, age of the oldest live message in seconds.
            stats: format!(
                "WITH m AS ( \
                   SELECT q.visible_at, q.lease_token, q.enqueued_at, {SPENT} AS spent \
                   FROM {s}.queue_events q WHERE q.stream_name = $1 \
                 ) \
                 SELECT count(*) FILTER (WHERE NOT spent AND visible_at <= now()), \
                        count(*) FILTER (WHERE visible_at > now() AND lease_token IS NULL), \
                        count(*) FILTER (WHERE visible_at > now() AND lease_token IS NOT NULL), \
                        count(*) FILTER (WHERE spent) \
                          + (SELECT count(*) FROM {s}.dead_letter_queue d WHERE d.stream_name = $1), \
                        extract(epoch FROM now() - min(enqueued_at) FILTER (WHERE NOT spent))::float8 \
                 FROM m"
            ),
            // A spent message failed when its last lease expired, which is also the failed_at
            // the move gives it: the listing does not change when the move happens.
            dead_letters: format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM ( \
                   SELECT {DEAD_LETTER_COLUMNS} FROM {s}.dead_letter_queue WHERE stream_name = $1 \
                   UNION ALL \
                   SELECT q.id, q.stream_name, q.event_type, q.data, q.metadata, q.correlation_id, \
                          q.causation_id, q.delivery_attempts, q.enqueued_at, q.visible_at, 'max_deliveries' \
                   FROM {s}.queue_events q WHERE q.stream_name = $1 AND {SPENT} \
                 ) d ORDER BY failed_at, id LIMIT $2"
            ),
            // Same id, delivery count 0, at the tail (a new seq), keeping enqueued_at.
            redrive: format!(
                "WITH moved AS (DELETE FROM {s}.dead_letter_queue \
                   WHERE stream_name = $1 AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[])) \
                   RETURNING *), \
                 requeued AS (INSERT INTO {s}.queue_events (id, stream_name, event_type, \
                   data, metadata, correlation_id, causation_id, enqueued_at, max_delivery_attempts) \
                   SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, \
                          enqueued_at, {s}.max_delivery_attempts($1) FROM moved \
                   ORDER BY failed_at, id ON CONFLICT (id) DO NOTHING RETURNING 1) \
                 SELECT count(*) FROM requeued"
            ),
            delete_dead_letters: format!(
                "WITH gone AS (DELETE FROM {s}.dead_letter_queue WHERE stream_name = $1 \
                   AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[])) RETURNING 1) \
                 SELECT count(*) FROM gone"
            ),
            purge: format!(
                "WITH gone AS (DELETE FROM {s}.queue_events WHERE stream_name = $1 RETURNING 1) \
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

/// Moves the stream's dead letters (those of `ids`, if given) back into the queue; spent
/// messages are moved to the dead letters first (`sweep`), so they are redriven too.
pub async fn redrive(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    sweep: &str,
    stream: &str,
    ids: Option<&[Uuid]>,
) -> CoreResult<i64> {
    let sweep = client.prepare_cached(sweep).await?;
    client.query_one(&sweep, &[&stream]).await?;
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

/// Deletes every message of the stream, leased or not; dead letters stay.
pub async fn purge(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.purge).await?;
    Ok(client.query_one(&statement, &[&stream]).await?.get(0))
}
