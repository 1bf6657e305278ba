//! The waiting dequeue: `db::queue::dequeue`, looked again until a message comes, woken by
//! the store's LISTEN task and polling as a fallback. It needs a whole store (its pool, its
//! listener, its statements), so it sits beside `store.rs` rather than in `db/`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Row;
use tokio_util::sync::CancellationToken;

use crate::db::listener::queue_key;
use crate::db::queue::{dequeue, DequeueRequest};
use crate::errors::CoreResult;
use crate::store::Store;

/// How long a waiting consumer sleeps between polls when no notification arrives: what
/// bounds the pick-up delay of a delayed message or an expired lease (a NOTIFY only comes
/// with an enqueue). Without LISTEN/NOTIFY, polling is all there is, so it polls faster.
const POLL_WITH_NOTIFY: Duration = Duration::from_millis(250);
const POLL_WITHOUT_NOTIFY: Duration = Duration::from_millis(50);

/// `dequeue`, looking again until a message comes or `wait` has passed (zero: one look),
/// woken by the LISTEN task on an enqueue to this stream and polling as a fallback. Holds no
/// pooled connection while it waits.
///
/// Cancellation (`cancel`) stops it from starting another statement and ends a wait at once,
/// but a statement already sent always completes: its leased rows are returned even when
/// cancelled, and the caller (the bridge's `undo`) releases what nobody received. Dropping
/// this future instead would leave the server's leases to burn a delivery each.
pub async fn dequeue_waiting(
    store: &Store,
    request: DequeueRequest,
    wait: Duration,
    cancel: &CancellationToken,
) -> CoreResult<Vec<Row>> {
    // Before subscribing: a closed or inherited store must not start a LISTEN task.
    store.check_usable()?;
    // No deadline past what the clock can hold: `wait` is bounded, this is a second fence.
    let deadline = Instant::now().checked_add(wait);
    let notify = store
        .listener
        .as_ref()
        .map(|l| l.subscribe(&queue_key(&request.stream)));
    let poll = if notify.is_some() {
        POLL_WITH_NOTIFY
    } else {
        POLL_WITHOUT_NOTIFY
    };
    let mut acks = request.acks.as_slice();
    loop {
        // Register for the wake-up before looking, so an enqueue that commits between the
        // look and the sleep is not missed.
        let notified = notify.as_ref().map(|n| Arc::clone(&n.wakeup));
        let notified_future = notified.as_ref().map(|n| n.notified());
        tokio::pin!(notified_future);
        if let Some(future) = notified_future.as_mut().as_pin_mut() {
            future.enable();
        }
        let client = tokio::select! {
            client = store.client() => client?,
            _ = cancel.cancelled() => return Ok(Vec::new()),
        };
        let rows = dequeue(&client, &store.sql.queue, &request, acks).await?;
        drop(client);
        acks = &[];
        let now = Instant::now();
        if !rows.is_empty() || deadline.is_some_and(|d| now >= d) || cancel.is_cancelled() {
            return Ok(rows);
        }
        let pause = deadline.map_or(poll, |d| (d - now).min(poll));
        let sleep = tokio::time::sleep(pause);
        match notified_future.as_mut().as_pin_mut() {
            Some(future) => {
                tokio::select! {
                    _ = future => {}
                    _ = sleep => {}
                    _ = cancel.cancelled() => return Ok(Vec::new()),
                }
            }
            None => {
                tokio::select! {
                    _ = sleep => {}
                    _ = cancel.cancelled() => return Ok(Vec::new()),
                }
            }
        }
    }
}
