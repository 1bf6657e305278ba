//! Ephemeral streams: enqueue, SKIP LOCKED dequeue with leases, ack, nack, extend, and the
//! waiting dequeue woken by LISTEN/NOTIFY. Every state change of a message is one statement.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Row;
use uuid::Uuid;

use super::append::EventColumns;
use super::sql::SPENT;
use crate::errors::CoreResult;
use crate::store::Store;

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
    pub dequeue: String,
    pub acknowledge: String,
    pub nack: String,
    pub extend_lease: String,
    pub sweep_expired: String,
}

impl Statements {
    pub fn new(s: &str, channel: &str) -> Self {
        Statements {
            // One round trip per batch: insert in order (seq follows the input order), skip ids
            // already queued or dead-lettered, and send one NOTIFY if anything was inserted.
            enqueue: format!(
                "WITH input AS ( \
                   SELECT * FROM unnest($2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::text[]) \
                          WITH ORDINALITY AS t(id, event_type, data, metadata, correlation_id, causation_id, ord) \
                 ), settings AS (SELECT {s}.max_delivery_attempts($1) AS max_attempts), \
                 inserted AS ( \
                   INSERT INTO {s}.queue_events AS q (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, visible_at, max_delivery_attempts) \
                   SELECT i.id, $1, i.event_type, i.data, i.metadata, i.correlation_id, i.causation_id, \
                          now() + make_interval(secs => $8), settings.max_attempts \
                   FROM input i CROSS JOIN settings \
                   WHERE NOT EXISTS (SELECT 1 FROM {s}.dead_letter_queue d WHERE d.id = i.id) \
                   ORDER BY i.ord \
                   ON CONFLICT (id) DO NOTHING \
                   RETURNING 1 \
                 ) \
                 SELECT (SELECT count(*) FROM inserted), \
                        CASE WHEN $9 AND EXISTS (SELECT 1 FROM inserted) \
                             THEN pg_notify('{channel}', $1) END::text"
            ),
            // Acknowledges the previous batch (folded in: no separate round trip), moves messages
            // whose last delivery expired to the dead letter queue (failed when that lease
            // expired), and leases the oldest visible messages, all in one statement. The first
            // row always exists and carries how many were dead-lettered, so a short batch caused
            // by dead-lettering can be refilled.
            dequeue: format!(
                "WITH acked AS ( \
                   DELETE FROM {s}.queue_events q USING unnest($5::uuid[], $6::uuid[]) AS a(id, token) \
                   WHERE q.id = a.id AND (q.lease_token = a.token OR (a.token IS NULL AND q.lease_token IS NOT NULL)) \
                   RETURNING 1 \
                 ), picked AS ( \
                   SELECT q.id, q.delivery_attempts, q.max_delivery_attempts FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND q.visible_at <= now() AND q.id <> ALL($5::uuid[]) \
                   ORDER BY q.seq LIMIT $3 FOR UPDATE SKIP LOCKED \
                 ), dead AS ( \
                   DELETE FROM {s}.queue_events q USING picked p \
                   WHERE q.id = p.id AND p.delivery_attempts >= p.max_delivery_attempts \
                   RETURNING q.* \
                 ), moved AS ( \
                   INSERT INTO {s}.dead_letter_queue (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, delivery_attempts, enqueued_at, failed_at, reason) \
                   SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, \
                          delivery_attempts, enqueued_at, visible_at, 'max_deliveries' FROM dead \
                   ON CONFLICT (id) DO NOTHING RETURNING 1 \
                 ), leased AS ( \
                   UPDATE {s}.queue_events q SET delivery_attempts = q.delivery_attempts + 1, \
                          lease_token = gen_random_uuid(), consumer_id = $2, leased_at = now(), \
                          visible_at = now() + make_interval(secs => $4) \
                   FROM picked p WHERE q.id = p.id AND p.delivery_attempts < p.max_delivery_attempts \
                   RETURNING q.* \
                 ) \
                 SELECT counts.dead_lettered, counts.acked, {cols} \
                 FROM (SELECT (SELECT count(*) FROM dead) AS dead_lettered, (SELECT count(*) FROM acked) AS acked) counts \
                 LEFT JOIN leased e ON true ORDER BY e.seq",
                cols = QUEUED_COLUMNS
            ),
            acknowledge: format!(
                "WITH acked AS ( \
                   DELETE FROM {s}.queue_events q USING unnest($1::uuid[], $2::uuid[]) AS a(id, token) \
                   WHERE q.id = a.id AND (q.lease_token = a.token OR (a.token IS NULL AND q.lease_token IS NOT NULL)) \
                   RETURNING 1 \
                 ) SELECT count(*) FROM acked"
            ),
            // requeue: back in its place after the delay (argument, else the stream's retry
            // backoff, else none); not requeued, or out of deliveries: to the dead letter queue.
            nack: format!(
                "WITH target AS ( \
                   SELECT q.id, q.stream_name, q.delivery_attempts, q.max_delivery_attempts FROM {s}.queue_events q \
                   WHERE q.id = $1 AND (q.lease_token = $2 OR ($2::uuid IS NULL AND q.lease_token IS NOT NULL)) \
                   FOR UPDATE \
                 ), dead AS ( \
                   DELETE FROM {s}.queue_events q USING target t \
                   WHERE q.id = t.id AND (NOT $3 OR t.delivery_attempts >= t.max_delivery_attempts) \
                   RETURNING q.* \
                 ), moved AS ( \
                   INSERT INTO {s}.dead_letter_queue (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, delivery_attempts, enqueued_at, reason) \
                   SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, \
                          delivery_attempts, enqueued_at, CASE WHEN $3 THEN 'max_deliveries' ELSE 'nacked' END FROM dead \
                   ON CONFLICT (id) DO NOTHING RETURNING 1 \
                 ), requeued AS ( \
                   UPDATE {s}.queue_events q SET lease_token = NULL, consumer_id = NULL, leased_at = NULL, \
                          visible_at = now() + coalesce( \
                            make_interval(secs => $4), \
                            (SELECT CASE WHEN c.enable_exponential_backoff \
                                         THEN least(c.retry_delay * power(c.backoff_multiplier, greatest(t.delivery_attempts - 1, 0)), \
                                                    coalesce(c.max_retry_delay, c.retry_delay * power(c.backoff_multiplier, greatest(t.delivery_attempts - 1, 0)))) \
                                         ELSE c.retry_delay END \
                             FROM {s}.stream_configurations c WHERE c.stream_name = t.stream_name), \
                            interval '0') \
                   FROM target t WHERE q.id = t.id AND $3 AND t.delivery_attempts < t.max_delivery_attempts \
                   RETURNING 1 \
                 ) SELECT (SELECT count(*) FROM dead) + (SELECT count(*) FROM requeued)"
            ),
            extend_lease: format!(
                "UPDATE {s}.queue_events q SET visible_at = now() + make_interval(secs => $3) \
                 WHERE q.id = $1 AND (q.lease_token = $2 OR ($2::uuid IS NULL AND q.lease_token IS NOT NULL))"
            ),
            // The same move as dequeue's, for one stream, without leasing anything: what a
            // redrive does first, so a spent message is redriven with the other dead letters.
            sweep_expired: format!(
                "WITH dead AS ( \
                   DELETE FROM {s}.queue_events q \
                   WHERE q.stream_name = $1 AND {SPENT} \
                   RETURNING q.* \
                 ), moved AS ( \
                   INSERT INTO {s}.dead_letter_queue (id, stream_name, event_type, data, metadata, correlation_id, \
                          causation_id, delivery_attempts, enqueued_at, failed_at, reason) \
                   SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, \
                          delivery_attempts, enqueued_at, visible_at, 'max_deliveries' FROM dead \
                   ON CONFLICT (id) DO NOTHING RETURNING 1 \
                 ) SELECT count(*) FROM moved"
            ),
        }
    }
}

fn receipt_columns(receipts: &[Receipt]) -> (Vec<Uuid>, Vec<Option<Uuid>>) {
    receipts.iter().map(|r| (r.id, r.lease)).unzip()
}

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

/// What one dequeue call did: the leased messages (rows, in enqueue order) and how many
/// earlier deliveries it acknowledged on the way.
pub struct Dequeued {
    pub rows: Vec<Row>,
    pub acknowledged: i64,
}

/// Leases up to `max_count` of the oldest visible messages, acknowledging `acks` in the same
/// statement. Messages found out of deliveries go to the dead letter queue; if that left the
/// batch short, it asks again so a dead-lettered head never hides live messages behind it.
pub async fn dequeue(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    stream: &str,
    consumer_id: &str,
    max_count: i64,
    visibility_seconds: f64,
    acks: &[Receipt],
) -> CoreResult<Dequeued> {
    let statement = client.prepare_cached(&sql.dequeue).await?;
    let (mut ack_ids, mut ack_leases) = receipt_columns(acks);
    let mut leased: Vec<Row> = Vec::new();
    let mut acknowledged = 0;
    loop {
        let wanted = max_count - leased.len() as i64;
        let rows = client
            .query(
                &statement,
                &[
                    &stream,
                    &consumer_id,
                    &wanted,
                    &visibility_seconds,
                    &ack_ids,
                    &ack_leases,
                ],
            )
            .await?;
        let dead_lettered: i64 = rows.first().map_or(0, |r| r.get(0));
        acknowledged += rows.first().map_or(0, |r| r.get::<_, i64>(1));
        ack_ids.clear();
        ack_leases.clear();
        leased.extend(
            rows.into_iter()
                .filter(|r| r.get::<_, Option<Uuid>>(DEQUEUE_ROW_OFFSET).is_some()),
        );
        if dead_lettered == 0 || leased.len() as i64 >= max_count {
            return Ok(Dequeued {
                rows: leased,
                acknowledged,
            });
        }
    }
}

/// How long a waiting consumer sleeps between polls when no notification arrives: what
/// bounds the pick-up delay of a delayed message or an expired lease (a NOTIFY only comes
/// with an enqueue). Without LISTEN/NOTIFY, polling is all there is, so it polls faster.
const POLL_WITH_NOTIFY: Duration = Duration::from_millis(250);
const POLL_WITHOUT_NOTIFY: Duration = Duration::from_millis(50);

/// `dequeue`, waiting up to `wait` for a message: woken by the LISTEN task on an enqueue to
/// this stream, polling as a fallback. Holds no pooled connection while it waits.
#[allow(clippy::too_many_arguments)]
pub async fn dequeue_waiting(
    store: &Store,
    stream: &str,
    consumer_id: &str,
    max_count: i64,
    visibility_seconds: f64,
    acks: &[Receipt],
    wait: Duration,
) -> CoreResult<Dequeued> {
    let deadline = Instant::now() + wait;
    let notify = store.listener.as_ref().map(|l| l.subscribe(stream));
    let poll = if notify.is_some() {
        POLL_WITH_NOTIFY
    } else {
        POLL_WITHOUT_NOTIFY
    };
    let mut acks = acks.to_vec();
    let mut acknowledged = 0;
    loop {
        // Register for the wake-up before looking, so an enqueue that commits between the
        // look and the sleep is not missed.
        let notified = notify.as_ref().map(|n| n.clone());
        let notified_future = notified.as_ref().map(|n| n.notified());
        tokio::pin!(notified_future);
        if let Some(future) = notified_future.as_mut().as_pin_mut() {
            future.enable();
        }
        let outcome = {
            let client = store.client().await?;
            dequeue(
                &client,
                &store.sql.queue,
                stream,
                consumer_id,
                max_count,
                visibility_seconds,
                &acks,
            )
            .await?
        };
        acks.clear();
        acknowledged += outcome.acknowledged;
        let now = Instant::now();
        if !outcome.rows.is_empty() || now >= deadline {
            return Ok(Dequeued {
                rows: outcome.rows,
                acknowledged,
            });
        }
        let sleep = tokio::time::sleep((deadline - now).min(poll));
        match notified_future.as_mut().as_pin_mut() {
            Some(future) => {
                tokio::select! {
                    _ = future => {}
                    _ = sleep => {}
                }
            }
            None => sleep.await,
        }
    }
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
    Ok(client.query_one(&statement, &[&ids, &leases]).await?.get(0))
}

pub async fn nack(
    client: &deadpool_postgres::Client,
    sql: &Statements,
    receipt: Receipt,
    requeue: bool,
    delay_seconds: Option<f64>,
) -> CoreResult<bool> {
    let statement = client.prepare_cached(&sql.nack).await?;
    let row = client
        .query_one(
            &statement,
            &[&receipt.id, &receipt.lease, &requeue, &delay_seconds],
        )
        .await?;
    Ok(row.get::<_, i64>(0) > 0)
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
