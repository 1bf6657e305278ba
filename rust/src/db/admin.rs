//! Stream administration and health: deleting a stream (its tombstone), the offset range
//! of a stream, `list_streams`, and the one-statement health snapshot.

use tokio_postgres::Row;

use super::configuration::reset_delivery_limit;
use crate::errors::CoreResult;

/// A stream row (alias `s`) that is listed: written, and written again since any deletion
/// (migration 003: `deleted_version`).
const LIVE: &str =
    "s.version >= 0 AND (s.deleted_version IS NULL OR s.version > s.deleted_version)";

/// The first and last stored offsets of stream row `s` (two probes of the (stream_name,
/// stream_offset) index). A stream's length is `last - first + 1`: pgstreams removes events
/// only from a stream's start or all of them, so its events are one run of offsets. Counting
/// instead would read every event of the store to list its streams.
fn offset_bounds(s: &str) -> String {
    format!(
        "LATERAL (SELECT (SELECT min(e.stream_offset) FROM {s}.events e WHERE e.stream_name = s.stream_name) AS first, \
                         (SELECT max(e.stream_offset) FROM {s}.events e WHERE e.stream_name = s.stream_name) AS last) b"
    )
}

/// The statements of stream administration and health, for one schema.
pub struct Statements {
    pub mark_deleted: String,
    pub offset_range: String,
    pub list_streams: String,
    pub health: String,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        let bounds = offset_bounds(s);
        let reset = reset_delivery_limit(s, "configuration");
        Statements {
            // One transaction: the tombstone (the version now; an append that waited on the
            // row lock moves the version past it and makes the stream live again), the
            // consumer offsets and the configuration. The events go afterwards, in batches.
            mark_deleted: format!(
                "WITH marked AS ( \
                   UPDATE {s}.streams SET deleted_version = version \
                   WHERE stream_name = $1 AND version >= 0 RETURNING version \
                 ), offsets AS ( \
                   DELETE FROM {s}.consumer_offsets o \
                   WHERE o.stream_name = $1 AND EXISTS (SELECT 1 FROM marked) \
                 ), configuration AS ( \
                   DELETE FROM {s}.stream_configurations c \
                   WHERE c.stream_name = $1 AND EXISTS (SELECT 1 FROM marked) RETURNING 1 \
                 ), reset AS ({reset}) \
                 SELECT (SELECT min(e.stream_offset) FROM {s}.events e WHERE e.stream_name = $1), \
                        m.version \
                 FROM marked m"
            ),
            offset_range: format!(
                "SELECT min(stream_offset), max(stream_offset) FROM {s}.events WHERE stream_name = $1"
            ),
            list_streams: format!(
                "SELECT s.stream_name, b.first, b.last, s.version, s.updated_at \
                 FROM {s}.streams s, {bounds} \
                 WHERE {LIVE} AND ($1::text IS NULL OR starts_with(s.stream_name, $1)) \
                 ORDER BY s.stream_name COLLATE \"C\""
            ),
            // One round trip: the time, then live streams [name, length, newest event age],
            // consumer groups [stream, group, committed offset, the stream's next offset] and
            // queues [name, ready, in flight, delayed, dead, oldest age], as JSON arrays in
            // code point order. The queue part reads every message (one pass, grouped).
            health: format!(
                "SELECT now(), \
                   (SELECT coalesce(jsonb_agg(jsonb_build_array(x.stream_name, x.length, x.age) \
                                              ORDER BY x.stream_name COLLATE \"C\"), '[]') \
                    FROM (SELECT s.stream_name, coalesce(b.last - b.first + 1, 0) AS length, \
                                 extract(epoch FROM now() - ( \
                                   SELECT e.created_at FROM {s}.events e \
                                   WHERE e.stream_name = s.stream_name AND e.stream_offset = b.last))::float8 AS age \
                          FROM {s}.streams s, {bounds} WHERE {LIVE}) x), \
                   (SELECT coalesce(jsonb_agg(jsonb_build_array(o.stream_name, o.consumer_group, o.\"offset\", \
                                                                coalesce(s.version, -1) + 1) \
                                              ORDER BY o.stream_name COLLATE \"C\", o.consumer_group COLLATE \"C\"), '[]') \
                    FROM {s}.consumer_offsets o LEFT JOIN {s}.streams s ON s.stream_name = o.stream_name), \
                   (SELECT coalesce(jsonb_agg(jsonb_build_array(m.stream_name, m.ready, m.in_flight, m.delayed, \
                                                                m.dead, m.age) \
                                              ORDER BY m.stream_name COLLATE \"C\"), '[]') \
                    FROM (SELECT q.stream_name, \
                                 count(*) FILTER (WHERE NOT q.dead AND (q.visible_at IS NULL OR q.visible_at <= now())) AS ready, \
                                 count(*) FILTER (WHERE NOT q.dead AND q.visible_at > now() AND q.lease_token IS NOT NULL) AS in_flight, \
                                 count(*) FILTER (WHERE NOT q.dead AND q.visible_at > now() AND q.lease_token IS NULL) AS delayed, \
                                 count(*) FILTER (WHERE q.dead) AS dead, \
                                 extract(epoch FROM now() - min(q.enqueued_at) FILTER (WHERE NOT q.dead))::float8 AS age \
                          FROM (SELECT q.stream_name, q.visible_at, q.lease_token, q.enqueued_at, \
                                       (q.failed_at IS NOT NULL OR {s}.is_spent(q)) AS dead \
                                FROM {s}.queue_events q) q \
                          GROUP BY q.stream_name) m)"
            ),
        }
    }
}

/// `[(first offset still stored or NULL, version)]`: one row when the stream was marked
/// deleted, none for a stream never written.
pub async fn mark_deleted(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.mark_deleted).await?;
    Ok(client.query(&statement, &[&stream]).await?)
}

/// `(first, last)` stored offset of the stream, None when it holds no event.
pub async fn offset_range(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<Option<(i64, i64)>> {
    let statement = client.prepare_cached(&sql.offset_range).await?;
    let row = client.query_one(&statement, &[&stream]).await?;
    let first: Option<i64> = row.get(0);
    let last: Option<i64> = row.get(1);
    Ok(first.zip(last))
}

/// `[(stream, first offset, last offset, version, last write)]` of the live streams whose
/// name starts with `prefix` (all without one), in code point order.
pub async fn list_streams(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    prefix: Option<&str>,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.list_streams).await?;
    Ok(client.query(&statement, &[&prefix]).await?)
}

/// One row: `(now, streams, consumer groups, queues)` (see `Statements::health`).
pub async fn health(client: &deadpool_postgres::Client, sql: &Statements) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.health).await?;
    Ok(client.query(&statement, &[]).await?)
}
