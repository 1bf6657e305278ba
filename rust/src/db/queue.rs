//! Ephemeral streams: enqueue, SKIP LOCKED dequeue with leases, ack, nack, extend, release.
//! Every state change of a message is one statement. (The waiting dequeue, which needs a
//! whole store, is `crate::queue_wait`.)

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;
use uuid::Uuid;

use super::append::{rollback, EventColumns, BEGIN_PIPELINED_WRITE};
use super::listener::QUEUE_KIND;
use super::pgtypes::Micros;
use super::read::cannot_be_sent;
use crate::errors::{CoreError, CoreResult};

/// Which delivery an ack/nack/extend acts on: a specific lease (the `QueuedEvent` the
/// consumer holds, like a receipt handle) or, with `lease: None`, whatever lease is current.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub id: Uuid,
    pub lease: Option<Uuid>,
}

/// Column where the message columns start in a dequeue row (after the two counts).
pub const DEQUEUE_ROW_OFFSET: usize = 2;

/// The message columns of a dequeue row (alias `e`), in `convert::queued_events` order.
const QUEUED_COLUMNS: &str = "e.id, e.stream_name, e.event_type, e.data, e.metadata, \
    e.correlation_id, e.causation_id, e.delivery_attempts, e.enqueued_at, e.consumer_id, \
    e.visible_at, e.lease_token, e.seq";

/// The statements of the lease cycle, for one schema.
pub struct Statements {
    pub enqueue: String,
    pub enqueue_settings: String,
    pub copy_messages: String,
    pub notify: String,
    pub dequeue: String,
    pub release: String,
    pub dead_letter: String,
    pub candidates: String,
    pub sendable: String,
    pub acknowledge: String,
    pub nack: String,
    pub extend_lease: String,
}

/// Which message a receipt names (alias `q`): `$id`, under the lease `$token`, or under any
/// current lease when `$token` is NULL (a bare id).
fn held_by(id: &str, token: &str) -> String {
    format!(
        "q.id = {id} AND q.failed_at IS NULL \
         AND (q.lease_token = {token} OR ({token}::uuid IS NULL AND q.lease_token IS NOT NULL))"
    )
}

impl Statements {
    pub fn new(s: &str, channel: &str) -> Self {
        let held_by_ack = held_by("a.id", "a.token");
        let held_by_param = held_by("$1", "$2");
        Statements {
            // One round trip per batch: insert in order (seq follows the input order), skip ids
            // already known (queued, leased or dead: one row per id), and send one NOTIFY if
            // anything was inserted.
            enqueue: format!(
                "WITH input AS ( \
                   SELECT * FROM unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::text[]) \
                          WITH ORDINALITY AS t(id, event_type, data, metadata, correlation_id, causation_id, ord) \
                 ), settings AS (SELECT {s}.max_delivery_attempts($1) AS max_attempts), \
                 inserted AS ( \
                   INSERT INTO {s}.queue_events AS q (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, visible_at, max_delivery_attempts) \
                   SELECT i.id, $1, i.event_type, i.data, i.metadata, i.correlation_id, i.causation_id, \
                          CASE WHEN $8::float8 > 0 THEN now() + make_interval(secs => $8::float8) END, settings.max_attempts \
                   FROM input i CROSS JOIN settings \
                   ORDER BY i.ord \
                   ON CONFLICT (id) DO NOTHING \
                   RETURNING 1 \
                 ) \
                 SELECT (SELECT count(*) FROM inserted), \
                        CASE WHEN $9 AND EXISTS (SELECT 1 FROM inserted) \
                             THEN pg_notify('{channel}', '{QUEUE_KIND}:' || $1) END::text"
            ),
            // What a COPY enqueue writes into every row: the stream's delivery limit, and
            // when the messages become visible (NULL: at once).
            enqueue_settings: format!(
                "SELECT {s}.max_delivery_attempts($1), \
                        CASE WHEN $2::float8 > 0 THEN now() + make_interval(secs => $2::float8) END"
            ),
            copy_messages: format!(
                "COPY {s}.queue_events (id, stream_name, event_type, data, metadata, correlation_id, \
                 causation_id, visible_at, max_delivery_attempts) FROM STDIN (FORMAT binary)"
            ),
            notify: format!("SELECT pg_notify('{channel}', '{QUEUE_KIND}:' || $1)"),
            // Acknowledges the previous batch (folded in: no separate round trip), marks the
            // spent messages it meets dead, and leases the oldest deliverable messages, in one
            // statement. It reads only messages it can deliver: the oldest ready ones (ready
            // index, in seq order) and the oldest whose time has come (waiting index: delay
            // over, lease expired), merged by seq. Each side locks with SKIP LOCKED before
            // its LIMIT, so concurrent consumers take different messages. An expired lease
            // is a failed delivery: when the stream's configuration asks for a retry delay
            // (`retry_delay()`, migration 004) that has not passed since the lease ended, the
            // message waits for it instead, like a nack (`backoff`); on a stream without one
            // that costs nothing (the function returns NULL). The first row always exists and
            // carries how many were set aside (dead-lettered or backed off), so a short batch
            // caused by them can be refilled.
            dequeue: format!(
                "WITH acked AS ( \
                   DELETE FROM {s}.queue_events q USING unnest($5::uuid[], $6::uuid[]) AS a(id, token) \
                   WHERE {held_by_ack} \
                   RETURNING 1 \
                 ), ready AS ( \
                   SELECT q.id, q.seq, q.delivery_attempts, q.max_delivery_attempts, NULL::timestamptz AS expired_at \
                   FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND q.visible_at IS NULL AND q.id <> ALL($5::uuid[]) \
                   ORDER BY q.seq LIMIT $3 FOR UPDATE SKIP LOCKED \
                 ), due AS ( \
                   SELECT q.id, q.seq, q.delivery_attempts, q.max_delivery_attempts, \
                          CASE WHEN q.lease_token IS NOT NULL THEN q.visible_at END AS expired_at \
                   FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND q.visible_at <= now() AND q.id <> ALL($5::uuid[]) \
                   ORDER BY q.visible_at LIMIT $3 FOR UPDATE SKIP LOCKED \
                 ), picked AS ( \
                   SELECT * FROM ready UNION ALL SELECT * FROM due ORDER BY seq LIMIT $3 \
                 ), dead AS ( \
                   SELECT CASE WHEN count(*) > 0 \
                               THEN {s}.dead_letter(array_agg(p.id), 'max_deliveries') ELSE 0 END AS n \
                   FROM picked p WHERE p.delivery_attempts >= p.max_delivery_attempts \
                 ), backoff AS ( \
                   SELECT p.id, r.retry_at FROM picked p, \
                          LATERAL (SELECT p.expired_at + {s}.retry_delay($1, p.delivery_attempts) AS retry_at) r \
                   WHERE p.expired_at IS NOT NULL AND p.delivery_attempts < p.max_delivery_attempts \
                     AND r.retry_at > now() \
                 ), deferred AS ( \
                   UPDATE {s}.queue_events q SET lease_token = NULL, consumer_id = NULL, leased_at = NULL, \
                          visible_at = b.retry_at \
                   FROM backoff b WHERE q.id = b.id \
                   RETURNING 1 \
                 ), leased AS ( \
                   UPDATE {s}.queue_events q SET delivery_attempts = q.delivery_attempts + 1, \
                          lease_token = gen_random_uuid(), consumer_id = $2, leased_at = now(), \
                          visible_at = now() + make_interval(secs => $4) \
                   FROM picked p WHERE q.id = p.id AND p.delivery_attempts < p.max_delivery_attempts \
                     AND NOT EXISTS (SELECT 1 FROM backoff b WHERE b.id = p.id) \
                   RETURNING q.* \
                 ) \
                 SELECT counts.set_aside, counts.acked, {cols} \
                 FROM (SELECT (SELECT n FROM dead) + (SELECT count(*) FROM deferred) AS set_aside, \
                              (SELECT count(*) FROM acked) AS acked) counts \
                 LEFT JOIN leased e ON true ORDER BY e.seq",
                cols = QUEUED_COLUMNS
            ),
            // Undoes the leases of a dequeue whose caller was cancelled before it received
            // them: back in their place, ready, and the delivery not counted.
            release: format!(
                "UPDATE {s}.queue_events q SET lease_token = NULL, consumer_id = NULL, leased_at = NULL, \
                        visible_at = NULL, delivery_attempts = q.delivery_attempts - 1 \
                 FROM unnest($1::uuid[], $2::uuid[]) AS r(id, token) \
                 WHERE q.id = r.id AND q.lease_token = r.token AND q.failed_at IS NULL"
            ),
            dead_letter: format!("SELECT {s}.dead_letter($1::uuid[], $2)"),
            // The messages a dequeue would look at, and a test of whether one can be sent:
            // what finds a message whose text the server cannot send as UTF-8.
            candidates: format!(
                "SELECT q.id FROM {s}.queue_events q WHERE q.stream_name = $1 \
                 AND (q.visible_at IS NULL OR q.visible_at <= now()) ORDER BY q.seq LIMIT $2"
            ),
            sendable: format!(
                "SELECT stream_name, event_type, data, metadata, correlation_id, causation_id, \
                        consumer_id FROM {s}.queue_events WHERE id = $1"
            ),
            acknowledge: format!(
                "WITH acked AS ( \
                   DELETE FROM {s}.queue_events q USING unnest($1::uuid[], $2::uuid[]) AS a(id, token) \
                   WHERE {held_by_ack} \
                   RETURNING 1 \
                 ) SELECT count(*) FROM acked"
            ),
            // requeue: back in its place after the delay (argument, else the stream's retry
            // backoff, else none: ready at once); not requeued, or out of deliveries: dead.
            // Not requeued on a stream whose dead letters are disabled: deleted (`dropped`,
            // which the caller logs: nothing is dropped silently). Returns (acted, the stream
            // of the dropped message or NULL).
            nack: format!(
                "WITH target AS ( \
                   SELECT q.id, q.stream_name, q.delivery_attempts, q.max_delivery_attempts, \
                          {s}.dead_letters_enabled(q.stream_name) AS keeps_dead \
                   FROM {s}.queue_events q WHERE {held_by_param} FOR UPDATE \
                 ), dropped AS ( \
                   DELETE FROM {s}.queue_events q USING target t \
                   WHERE q.id = t.id AND NOT $3 AND NOT t.keeps_dead \
                   RETURNING q.stream_name \
                 ), dead AS ( \
                   SELECT CASE WHEN count(*) > 0 THEN {s}.dead_letter(array_agg(t.id), \
                               CASE WHEN $3 THEN 'max_deliveries' ELSE 'nacked' END) ELSE 0 END AS n \
                   FROM target t \
                   WHERE (NOT $3 AND t.keeps_dead) OR ($3 AND t.delivery_attempts >= t.max_delivery_attempts) \
                 ), requeued AS ( \
                   UPDATE {s}.queue_events q SET lease_token = NULL, consumer_id = NULL, leased_at = NULL, \
                          visible_at = CASE WHEN d.delay > interval '0' THEN now() + d.delay END \
                   FROM target t, LATERAL (SELECT coalesce(make_interval(secs => $4), \
                                            {s}.retry_delay(t.stream_name, t.delivery_attempts)) AS delay) d \
                   WHERE q.id = t.id AND $3 AND t.delivery_attempts < t.max_delivery_attempts \
                   RETURNING 1 \
                 ) SELECT (SELECT n FROM dead) + (SELECT count(*) FROM requeued) + (SELECT count(*) FROM dropped) > 0, \
                          (SELECT stream_name FROM dropped)"
            ),
            extend_lease: format!(
                "UPDATE {s}.queue_events q SET visible_at = now() + make_interval(secs => $3) \
                 WHERE {held_by_param}"
            ),
        }
    }
}

fn receipt_columns(receipts: &[Receipt]) -> (Vec<Uuid>, Vec<Option<Uuid>>) {
    receipts.iter().map(|r| (r.id, r.lease)).unzip()
}

/// Batches from this size are sent by binary COPY (`enqueue_by_copy`), smaller ones as one
/// statement of arrays.
pub const COPY_THRESHOLD: usize = 64;

/// Enqueues the batch in order (seq follows the input order); returns how many were new.
/// Ids already known (queued, leased or dead: one row per id) are skipped, so a retried
/// enqueue is harmless. Large batches go by COPY, which cannot skip: when an id is known, that
/// transaction fails whole and the batch is sent again as the statement that skips.
pub async fn enqueue(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    columns: &EventColumns,
    delay_seconds: f64,
    notify: bool,
) -> CoreResult<i64> {
    if columns.ids.is_empty() {
        return Ok(0);
    }
    if columns.ids.len() >= COPY_THRESHOLD {
        match enqueue_by_copy(client, sql, stream, columns, delay_seconds, notify).await {
            Err(error) if error.sqlstate() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            done => return done,
        }
    }
    let statement = client.prepare_cached(&sql.enqueue).await?;
    let row = client
        .query_one(
            &statement,
            &[
                &stream,
                &columns.ids,
                &columns.types,
                &columns.data,
                &columns.metadata,
                &columns.correlation_ids,
                &columns.causation_ids,
                &delay_seconds,
                &notify,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// The batch by binary COPY in one transaction and two round trips, like a COPY append:
/// BEGIN, the stream's settings and the start of the COPY together, then the rows, the end
/// of the COPY, the NOTIFY and COMMIT together. On an error the transaction is rolled back;
/// a cancelled caller's connection is closed, which ends it too.
async fn enqueue_by_copy(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    columns: &EventColumns,
    delay_seconds: f64,
    notify: bool,
) -> CoreResult<i64> {
    let settings = client.prepare_cached(&sql.enqueue_settings).await?;
    let copy = client.prepare_cached(&sql.copy_messages).await?;
    // Prepared before the COPY starts: nothing else can be sent on the connection during it.
    let notify_statement = client.prepare_cached(&sql.notify).await?;
    let params: [&(dyn ToSql + Sync); 2] = [&stream, &delay_seconds];
    let (began, settled, sink) = tokio::join!(
        client.batch_execute(BEGIN_PIPELINED_WRITE),
        client.query_one(&settings, &params),
        client.copy_in::<_, bytes::Bytes>(&copy),
    );
    let (row, sink) = match (began.and(settled), sink) {
        (Ok(row), Ok(sink)) => (row, sink),
        (failed, sink) => {
            drop(sink); // the COPY, if it started, must be aborted before the ROLLBACK
            rollback(client).await;
            return Err(failed.err().map_or_else(
                || CoreError::Internal("the COPY of an enqueue did not start".into()),
                CoreError::from,
            ));
        }
    };
    let max_attempts: i32 = row.try_get(0)?;
    let visible_at: Option<Micros> = row.try_get(1)?;
    let mut writer = Box::pin(BinaryCopyInWriter::new(
        sink,
        &[
            Type::UUID,
            Type::TEXT,
            Type::TEXT,
            Type::JSONB,
            Type::JSONB,
            Type::TEXT,
            Type::TEXT,
            Type::TIMESTAMPTZ,
            Type::INT4,
        ],
    ));
    for index in 0..columns.ids.len() {
        let written = writer
            .as_mut()
            .write(&[
                &columns.ids[index],
                &stream,
                &columns.types[index],
                &columns.data[index],
                &columns.metadata[index],
                &columns.correlation_ids[index],
                &columns.causation_ids[index],
                &visible_at,
                &max_attempts,
            ])
            .await;
        if let Err(error) = written {
            drop(writer); // aborts the COPY, which must end before the ROLLBACK
            rollback(client).await;
            return Err(error.into());
        }
    }
    let wake = async {
        if notify {
            client
                .execute(&notify_statement, &[&stream])
                .await
                .map(drop)
        } else {
            Ok(())
        }
    };
    // The NOTIFY and COMMIT go out right behind the end of the COPY. If the COPY failed (an
    // id already known), the transaction is aborted and COMMIT only ends it.
    let (copied, woke, committed) = tokio::join!(
        writer.as_mut().finish(),
        wake,
        client.batch_execute("COMMIT")
    );
    match (copied, woke, committed) {
        (Ok(count), Ok(()), Ok(())) => Ok(count as i64),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => Err(error.into()),
    }
}

/// What a dequeue asks for.
pub struct DequeueRequest {
    pub stream: String,
    pub consumer_id: String,
    pub max_count: i64,
    pub visibility_seconds: f64,
    /// The previous batch, acknowledged by the same statement.
    pub acks: Vec<Receipt>,
}

/// Leases up to `max_count` of the oldest deliverable messages, acknowledging `acks` in the
/// same statement; returns the leased rows in enqueue order. Spent messages met on the way
/// are marked dead, and expired leases still in their retry delay wait for it; if that left
/// the batch short, it asks again so a dead or waiting head never hides live messages.
pub async fn dequeue(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    request: &DequeueRequest,
    acks: &[Receipt],
) -> CoreResult<Vec<Row>> {
    let statement = client.prepare_cached(&sql.dequeue).await?;
    let (mut ack_ids, mut ack_leases) = receipt_columns(acks);
    let mut leased: Vec<Row> = Vec::new();
    let mut deadlocks = 0;
    loop {
        let wanted = request.max_count - leased.len() as i64;
        let fetched = client
            .query(
                &statement,
                &[
                    &request.stream,
                    &request.consumer_id,
                    &wanted,
                    &request.visibility_seconds,
                    &ack_ids,
                    &ack_leases,
                ],
            )
            .await
            .map_err(CoreError::from);
        let rows = match fetched {
            Ok(rows) => rows,
            Err(error) if deadlock_victim(&error) && deadlocks < DEADLOCK_RETRIES => {
                deadlocks += 1;
                continue;
            }
            Err(error) if cannot_be_sent(&error) => {
                // A message the server cannot send would fail every dequeue of the stream
                // forever: make it a dead letter (nothing was leased: the statement failed
                // whole) and look again.
                let unsendable = unsendable(client, sql, &request.stream, wanted).await?;
                if unsendable.is_empty() {
                    return Err(error);
                }
                log::warn!(target: "pgstreams",
                    "pgstreams: {} message(s) of stream {:?} cannot be sent as UTF-8 and go to \
                     the dead letters: {unsendable:?} ({error})",
                    unsendable.len(),
                    request.stream
                );
                dead_letter(client, sql, &unsendable, "undecodable").await?;
                continue;
            }
            Err(error) => return Err(error),
        };
        let set_aside: i64 = rows.first().map_or(0, |r| r.get(0));
        ack_ids.clear();
        ack_leases.clear();
        leased.extend(
            rows.into_iter()
                .filter(|r| r.get::<_, Option<Uuid>>(DEQUEUE_ROW_OFFSET).is_some()),
        );
        if set_aside == 0 || leased.len() as i64 >= request.max_count {
            return Ok(leased);
        }
    }
}

/// The deliverable messages among the next `limit` that the server cannot send.
async fn unsendable(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    limit: i64,
) -> CoreResult<Vec<Uuid>> {
    let candidates = client
        .query(sql.candidates.as_str(), &[&stream, &limit])
        .await?;
    let sendable = client.prepare_cached(&sql.sendable).await?;
    let mut found = Vec::new();
    for candidate in &candidates {
        let id: Uuid = candidate.get(0);
        match client
            .query(&sendable, &[&id])
            .await
            .map_err(CoreError::from)
        {
            Err(error) if cannot_be_sent(&error) => found.push(id),
            Err(error) => return Err(error),
            Ok(_) => {}
        }
    }
    Ok(found)
}

/// Releases the leases of messages a cancelled dequeue took but nobody received: they are
/// ready again, in their place, and that delivery does not count.
pub async fn release(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    receipts: &[Receipt],
) -> CoreResult<u64> {
    let (ids, leases) = receipt_columns(receipts);
    let statement = client.prepare_cached(&sql.release).await?;
    Ok(client.execute(&statement, &[&ids, &leases]).await?)
}

/// Makes these messages dead letters, with `reason`; returns how many were.
pub async fn dead_letter(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    ids: &[Uuid],
    reason: &str,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.dead_letter).await?;
    Ok(client.query_one(&statement, &[&ids, &reason]).await?.get(0))
}

pub async fn acknowledge(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    receipts: &[Receipt],
) -> CoreResult<i64> {
    if receipts.is_empty() {
        return Ok(0);
    }
    let (ids, leases) = receipt_columns(receipts);
    let statement = client.prepare_cached(&sql.acknowledge).await?;
    let mut deadlocks = 0;
    loop {
        match client.query_one(&statement, &[&ids, &leases]).await {
            Ok(row) => return Ok(row.get(0)),
            Err(error) => {
                let error = CoreError::from(error);
                if !deadlock_victim(&error) || deadlocks == DEADLOCK_RETRIES {
                    return Err(error);
                }
                deadlocks += 1;
            }
        }
    }
}

/// How often a queue statement chosen as a deadlock's victim is sent again. Concurrent
/// consumers can deadlock on row locks now and then: a dequeue whose snapshot predates
/// another's lease still locks that row while rechecking it (`FOR UPDATE SKIP LOCKED`), so an
/// acknowledgement of the row can wait on it while that dequeue waits on a third. The victim
/// statement ran alone in its own transaction and was rolled back whole (nothing acked,
/// leased or dead-lettered), so sending it again is safe.
const DEADLOCK_RETRIES: u32 = 3;

fn deadlock_victim(error: &CoreError) -> bool {
    error.sqlstate() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// Nacks one message: `(acted, dropped)`, dropped naming the stream of a message deleted
/// because that stream's dead letters are disabled (the caller logs it).
pub async fn nack(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    receipt: Receipt,
    requeue: bool,
    delay_seconds: Option<f64>,
) -> CoreResult<(bool, Option<String>)> {
    let statement = client.prepare_cached(&sql.nack).await?;
    let row = client
        .query_one(
            &statement,
            &[&receipt.id, &receipt.lease, &requeue, &delay_seconds],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

pub async fn extend_lease(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    receipt: Receipt,
    visibility_seconds: f64,
) -> CoreResult<bool> {
    let statement = client.prepare_cached(&sql.extend_lease).await?;
    let updated = client
        .execute(
            &statement,
            &[&receipt.id, &receipt.lease, &visibility_seconds],
        )
        .await?;
    Ok(updated > 0)
}
