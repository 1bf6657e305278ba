//! Stream configurations: stored as one row per stream name (migration 004). The queue
//! reads its dead-letter columns through `max_delivery_attempts()`, `dead_letters_enabled()`
//! and `retry_delay()`; the rest travels as JSON documents whose keys are the fields of
//! `pgstreams.configuration`'s dataclasses (durations in seconds).

use tokio_postgres::Row;

use super::pgtypes::JsonText;
use crate::errors::CoreResult;

/// The statements of stream configuration, for one schema.
pub struct Statements {
    pub set: String,
    pub get: String,
    pub list: String,
    pub delete: String,
}

/// The configuration as one JSON document (`StreamConfiguration.to_document()` in Python).
fn document_of(c: &str) -> String {
    format!(
        "jsonb_build_object('description', {c}.description, 'tags', {c}.tags, \
           'retention', {c}.retention, 'lifecycle', {c}.lifecycle, \
           'performance', {c}.performance, 'access_control', {c}.access_control, \
           'dead_letter_queue', jsonb_build_object( \
             'enabled', {c}.dead_letter_enabled, \
             'dead_letter_stream_name', {c}.dead_letter_stream_name, \
             'max_delivery_attempts', {c}.max_delivery_attempts, \
             'retry_delay', extract(epoch FROM {c}.retry_delay)::float8, \
             'enable_exponential_backoff', {c}.enable_exponential_backoff, \
             'backoff_multiplier', {c}.backoff_multiplier, \
             'max_retry_delay', extract(epoch FROM {c}.max_retry_delay)::float8))"
    )
}

/// Gives the queued (not dead) messages of stream `$1` the default delivery limit again
/// when `gone` (a CTE of deleted configuration rows) is not empty: what deleting a
/// configuration means for the queue. `SET ... = DEFAULT` is the column default, 5, the
/// same as `max_delivery_attempts()` of a stream without configuration.
pub fn reset_delivery_limit(s: &str, gone: &str) -> String {
    format!(
        "UPDATE {s}.queue_events q SET max_delivery_attempts = DEFAULT \
         WHERE q.stream_name = $1 AND q.failed_at IS NULL AND EXISTS (SELECT 1 FROM {gone})"
    )
}

impl Statements {
    pub fn new(s: &str) -> Self {
        let document = document_of("c");
        let reset = reset_delivery_limit(s, "gone");
        Statements {
            // Upserts the row, and gives the stream's queued messages their new delivery
            // limit in the same statement, so the configuration applies at once to messages
            // already queued (each row carries its limit, read by the dequeue without a
            // join). 2147483647: no limit, when dead letters are disabled.
            set: format!(
                "WITH d AS (SELECT $2::jsonb AS doc, $2::jsonb->'dead_letter_queue' AS q), \
                 saved AS ( \
                   INSERT INTO {s}.stream_configurations AS c (stream_name, description, tags, \
                          max_delivery_attempts, retry_delay, enable_exponential_backoff, \
                          backoff_multiplier, max_retry_delay, dead_letter_enabled, \
                          dead_letter_stream_name, retention, lifecycle, performance, access_control) \
                   SELECT $1, d.doc->>'description', d.doc->'tags', \
                          (d.q->>'max_delivery_attempts')::integer, \
                          make_interval(secs => (d.q->>'retry_delay')::float8), \
                          (d.q->>'enable_exponential_backoff')::boolean, \
                          (d.q->>'backoff_multiplier')::float8, \
                          make_interval(secs => (d.q->>'max_retry_delay')::float8), \
                          (d.q->>'enabled')::boolean, d.q->>'dead_letter_stream_name', \
                          d.doc->'retention', d.doc->'lifecycle', d.doc->'performance', \
                          d.doc->'access_control' \
                   FROM d \
                   ON CONFLICT (stream_name) DO UPDATE SET description = excluded.description, \
                          tags = excluded.tags, max_delivery_attempts = excluded.max_delivery_attempts, \
                          retry_delay = excluded.retry_delay, \
                          enable_exponential_backoff = excluded.enable_exponential_backoff, \
                          backoff_multiplier = excluded.backoff_multiplier, \
                          max_retry_delay = excluded.max_retry_delay, \
                          dead_letter_enabled = excluded.dead_letter_enabled, \
                          dead_letter_stream_name = excluded.dead_letter_stream_name, \
                          retention = excluded.retention, lifecycle = excluded.lifecycle, \
                          performance = excluded.performance, access_control = excluded.access_control, \
                          updated_at = now() \
                   RETURNING c.max_delivery_attempts, c.dead_letter_enabled \
                 ) \
                 UPDATE {s}.queue_events q \
                 SET max_delivery_attempts = CASE WHEN saved.dead_letter_enabled \
                                                  THEN saved.max_delivery_attempts ELSE 2147483647 END \
                 FROM saved WHERE q.stream_name = $1 AND q.failed_at IS NULL"
            ),
            get: format!(
                "SELECT c.stream_name, {document} FROM {s}.stream_configurations c \
                 WHERE c.stream_name = $1"
            ),
            list: format!(
                "SELECT c.stream_name, {document} FROM {s}.stream_configurations c \
                 ORDER BY c.stream_name COLLATE \"C\""
            ),
            delete: format!(
                "WITH gone AS (DELETE FROM {s}.stream_configurations WHERE stream_name = $1 RETURNING 1), \
                 reset AS ({reset}) \
                 SELECT count(*) > 0 FROM gone"
            ),
        }
    }
}

pub async fn set(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    document: &JsonText,
) -> CoreResult<()> {
    let statement = client.prepare_cached(&sql.set).await?;
    client.execute(&statement, &[&stream, document]).await?;
    Ok(())
}

/// `[(stream, document)]`: one row, or none without a configuration.
pub async fn get(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.get).await?;
    Ok(client.query(&statement, &[&stream]).await?)
}

/// `[(stream, document)]` of every configuration, in code point order.
pub async fn list(client: &deadpool_postgres::Client, sql: &Statements) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.list).await?;
    Ok(client.query(&statement, &[]).await?)
}

pub async fn delete(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<bool> {
    let statement = client.prepare_cached(&sql.delete).await?;
    Ok(client.query_one(&statement, &[&stream]).await?.get(0))
}
