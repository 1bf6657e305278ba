//! Retention: the policies, what a run deletes (the plan, one statement for every stream),
//! and the bounded deletes a run is made of. The loop over batches is the caller's
//! (`pgstreams.operations`), so each batch is its own short statement and transaction.

use tokio_postgres::Row;

use crate::errors::CoreResult;

/// The statements of retention, for one schema.
pub struct Statements {
    pub set_policy: String,
    pub policies: String,
    pub delete_policy: String,
    pub plan: String,
    pub trim_events: String,
    pub dead_letter_plan: String,
    pub trim_dead_letters: String,
}

/// A policy as `set_policy` takes it (durations in seconds).
pub struct Policy {
    pub stream_name: String,
    pub max_age: Option<f64>,
    pub max_event_count: Option<i64>,
    pub enabled: bool,
    pub respect_consumer_groups: bool,
    pub max_dead_letter_age: Option<f64>,
}

impl Statements {
    pub fn new(s: &str) -> Self {
        // Which rule governs a stream's events, most specific first: its configuration's
        // retention when that sets a limit, else its own policy (a disabled one exempts it),
        // else the default policy '*'. One expression per field, so the three sources
        // cannot disagree on which one won.
        let pick = |configuration: &str, policy: &str, default: &str| {
            format!(
                "CASE WHEN c.stream_name IS NOT NULL THEN {configuration} \
                      WHEN p.stream_name IS NOT NULL THEN CASE WHEN p.enabled THEN {policy} END \
                      WHEN d.enabled THEN {default} END"
            )
        };
        let max_age = pick(
            "(c.retention->>'max_age')::float8",
            "extract(epoch FROM p.max_age)::float8",
            "extract(epoch FROM d.max_age)::float8",
        );
        let max_count = pick(
            "(c.retention->>'max_event_count')::bigint",
            "p.max_event_count",
            "d.max_event_count",
        );
        let respect = pick(
            "(c.retention->>'respect_consumer_groups')::boolean",
            "p.respect_consumer_groups",
            "d.respect_consumer_groups",
        );
        // The same order for the age of a queue's dead letters.
        let dead_letter_age = "CASE WHEN c.retention->>'max_dead_letter_age' IS NOT NULL \
                  THEN (c.retention->>'max_dead_letter_age')::float8 \
                  WHEN p.stream_name IS NOT NULL \
                  THEN CASE WHEN p.enabled THEN extract(epoch FROM p.max_dead_letter_age)::float8 END \
                  WHEN d.enabled THEN extract(epoch FROM d.max_dead_letter_age)::float8 END";
        Statements {
            set_policy: format!(
                "INSERT INTO {s}.retention_policies AS r (stream_name, max_age, max_event_count, \
                        enabled, respect_consumer_groups, max_dead_letter_age) \
                 VALUES ($1, make_interval(secs => $2::float8), $3, $4, $5, \
                         make_interval(secs => $6::float8)) \
                 ON CONFLICT (stream_name) DO UPDATE SET max_age = excluded.max_age, \
                        max_event_count = excluded.max_event_count, enabled = excluded.enabled, \
                        respect_consumer_groups = excluded.respect_consumer_groups, \
                        max_dead_letter_age = excluded.max_dead_letter_age, updated_at = now()"
            ),
            policies: format!(
                "SELECT stream_name, extract(epoch FROM max_age)::float8, max_event_count, enabled, \
                        respect_consumer_groups, extract(epoch FROM max_dead_letter_age)::float8 \
                 FROM {s}.retention_policies ORDER BY stream_name COLLATE \"C\""
            ),
            delete_policy: format!("DELETE FROM {s}.retention_policies WHERE stream_name = $1"),
            // Per stream: the offset its rule deletes below (the newest max_count stay; by age,
            // everything before its first event young enough: a stream is trimmed from its
            // start, so what stays is one run of offsets), lowered to the lowest offset a
            // consumer group committed when the rule respects them, raised to a deleted
            // stream's tombstone. Each lookup is an index probe on (stream_name,
            // stream_offset); the age probe walks only over the events it will delete.
            // Columns: stream, rule, first offset, delete below, kept for consumers, the
            // groups holding events back.
            plan: format!(
                "WITH rules AS ( \
                   SELECT s.stream_name, s.version, s.deleted_version, \
                          CASE WHEN c.stream_name IS NOT NULL THEN 'configuration' \
                               WHEN p.stream_name IS NOT NULL THEN 'policy' \
                               WHEN d.stream_name IS NOT NULL THEN 'default' END AS rule, \
                          {max_age} AS max_age, {max_count} AS max_count, \
                          coalesce({respect}, false) AS respect \
                   FROM {s}.streams s \
                   LEFT JOIN {s}.stream_configurations c ON c.stream_name = s.stream_name \
                        AND (c.retention->>'max_age' IS NOT NULL OR c.retention->>'max_event_count' IS NOT NULL) \
                   LEFT JOIN {s}.retention_policies p ON p.stream_name = s.stream_name \
                   LEFT JOIN {s}.retention_policies d ON d.stream_name = '*' \
                   WHERE s.version >= 0 \
                 ), bounds AS ( \
                   SELECT r.stream_name, r.version, r.rule, f.first_offset, \
                          r.deleted_version + 1 AS tombstone, \
                          greatest(r.version + 1 - r.max_count, \
                                   CASE WHEN r.max_age IS NOT NULL THEN coalesce( \
                                     (SELECT e.stream_offset FROM {s}.events e \
                                      WHERE e.stream_name = r.stream_name \
                                        AND e.created_at >= now() - make_interval(secs => r.max_age) \
                                      ORDER BY e.stream_offset LIMIT 1), \
                                     r.version + 1) END) AS rule_below, \
                          CASE WHEN r.respect THEN (SELECT min(o.\"offset\") FROM {s}.consumer_offsets o \
                                                    WHERE o.stream_name = r.stream_name) END AS consumed_below \
                   FROM rules r \
                   CROSS JOIN LATERAL (SELECT min(e.stream_offset) AS first_offset FROM {s}.events e \
                                       WHERE e.stream_name = r.stream_name) f \
                   WHERE f.first_offset IS NOT NULL \
                     AND (r.max_age IS NOT NULL OR r.max_count IS NOT NULL OR r.deleted_version IS NOT NULL) \
                 ), allowed AS ( \
                   SELECT b.*, CASE WHEN b.rule_below IS NOT NULL \
                                    THEN least(b.rule_below, b.consumed_below) END AS allowed_below \
                   FROM bounds b \
                 ), targets AS ( \
                   SELECT a.*, greatest(a.allowed_below, a.tombstone) AS delete_below FROM allowed a \
                 ), kept AS ( \
                   SELECT t.*, CASE WHEN t.rule_below IS NULL THEN 0 \
                                    ELSE greatest(0, least(t.rule_below, t.version + 1) \
                                                     - greatest(t.delete_below, t.first_offset)) END AS kept \
                   FROM targets t \
                 ) \
                 SELECT k.stream_name, \
                        CASE WHEN k.tombstone >= coalesce(k.allowed_below, k.tombstone) \
                             THEN 'deleted' ELSE k.rule END, \
                        k.first_offset, k.delete_below, k.kept, \
                        ARRAY(SELECT o.consumer_group FROM {s}.consumer_offsets o \
                              WHERE k.kept > 0 AND o.stream_name = k.stream_name AND o.\"offset\" < k.rule_below \
                              ORDER BY o.consumer_group COLLATE \"C\") \
                 FROM kept k \
                 WHERE k.delete_below > k.first_offset OR k.kept > 0 \
                 ORDER BY k.stream_name COLLATE \"C\""
            ),
            trim_events: format!(
                "WITH gone AS (DELETE FROM {s}.events \
                   WHERE stream_name = $1 AND stream_offset >= $2 AND stream_offset < $3 RETURNING 1) \
                 SELECT count(*) FROM gone"
            ),
            // Queues holding dead letters (marked or spent), with the age their rule allows.
            dead_letter_plan: format!(
                "WITH queues AS ( \
                   SELECT DISTINCT q.stream_name FROM {s}.queue_events q \
                   WHERE q.failed_at IS NOT NULL OR {s}.is_spent(q) \
                 ), ages AS ( \
                   SELECT q.stream_name, {dead_letter_age} AS max_age \
                   FROM queues q \
                   LEFT JOIN {s}.stream_configurations c ON c.stream_name = q.stream_name \
                   LEFT JOIN {s}.retention_policies p ON p.stream_name = q.stream_name \
                   LEFT JOIN {s}.retention_policies d ON d.stream_name = '*' \
                 ) \
                 SELECT stream_name, max_age FROM ages WHERE max_age IS NOT NULL \
                 ORDER BY stream_name COLLATE \"C\""
            ),
            // A spent message failed when its last lease expired (as dead_letter() records).
            trim_dead_letters: format!(
                "WITH doomed AS ( \
                   SELECT q.id FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 \
                     AND ((q.failed_at IS NOT NULL AND q.failed_at < now() - make_interval(secs => $2)) \
                          OR (q.failed_at IS NULL AND {s}.is_spent(q) \
                              AND q.visible_at < now() - make_interval(secs => $2))) \
                   LIMIT $3 FOR UPDATE SKIP LOCKED \
                 ), gone AS (DELETE FROM {s}.queue_events q USING doomed WHERE q.id = doomed.id RETURNING 1) \
                 SELECT count(*) FROM gone"
            ),
        }
    }
}

pub async fn set_policy(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    policy: &Policy,
) -> CoreResult<()> {
    let statement = client.prepare_cached(&sql.set_policy).await?;
    client
        .execute(
            &statement,
            &[
                &policy.stream_name,
                &policy.max_age,
                &policy.max_event_count,
                &policy.enabled,
                &policy.respect_consumer_groups,
                &policy.max_dead_letter_age,
            ],
        )
        .await?;
    Ok(())
}

/// `(stream, max age, max count, enabled, respect consumer groups, max dead letter age)`.
pub async fn policies(
    client: &deadpool_postgres::Client,
    sql: &Statements,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.policies).await?;
    Ok(client.query(&statement, &[]).await?)
}

pub async fn delete_policy(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
) -> CoreResult<bool> {
    let statement = client.prepare_cached(&sql.delete_policy).await?;
    Ok(client.execute(&statement, &[&stream]).await? > 0)
}

/// `(stream, rule, first offset, delete below, kept for consumers, waiting groups)` of each
/// stream a run touches, in code point order.
pub async fn plan(client: &deadpool_postgres::Client, sql: &Statements) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.plan).await?;
    Ok(client.query(&statement, &[]).await?)
}

/// Deletes the stream's events with `from <= offset < below`; returns how many.
pub async fn trim_events(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    from: i64,
    below: i64,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.trim_events).await?;
    Ok(client
        .query_one(&statement, &[&stream, &from, &below])
        .await?
        .get(0))
}

/// `(queue, max dead letter age in seconds)`, in code point order.
pub async fn dead_letter_plan(
    client: &deadpool_postgres::Client,
    sql: &Statements,
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.dead_letter_plan).await?;
    Ok(client.query(&statement, &[]).await?)
}

/// Deletes at most `limit` of the queue's dead letters older than `max_age` seconds.
pub async fn trim_dead_letters(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    max_age: f64,
    limit: i64,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.trim_dead_letters).await?;
    Ok(client
        .query_one(&statement, &[&stream, &max_age, &limit])
        .await?
        .get(0))
}
