//! Ephemeral streams: enqueue, SKIP LOCKED dequeue with leases, ack, nack, extend, and the
//! waiting dequeue woken by LISTEN/NOTIFY. Every state change of a message is one statement.

use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Row;
use uuid::Uuid;

use super::append::{EventColumns, NewEvent};
use super::sql::Sql;
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

fn receipt_columns(receipts: &[Receipt]) -> (Vec<Uuid>, Vec<Option<Uuid>>) {
    receipts.iter().map(|r| (r.id, r.lease)).unzip()
}

pub async fn enqueue(
    client: &deadpool_postgres::Client,
    sql: &Sql,
    stream: &str,
    events: Vec<NewEvent>,
    delay_seconds: f64,
    notify: bool,
) -> CoreResult<i64> {
    if events.is_empty() {
        return Ok(0);
    }
    let columns = EventColumns::from_events(events);
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
    sql: &Sql,
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
                &store.sql,
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
    sql: &Sql,
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
    sql: &Sql,
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
    sql: &Sql,
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

/// Moves the stream's messages whose last delivery expired to the dead letter queue, so
/// counts and listings never show a message that can no longer be delivered as pending.
pub async fn sweep_expired(
    client: &deadpool_postgres::Client,
    sql: &Sql,
    stream: &str,
) -> CoreResult<i64> {
    let statement = client.prepare_cached(&sql.sweep_expired).await?;
    Ok(client.query_one(&statement, &[&stream]).await?.get(0))
}
