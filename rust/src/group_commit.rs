//! Group commit: concurrent appends from many coroutines of one process share a transaction,
//! a round trip and a commit.
//!
//! A commit costs 0.2-0.35 ms here and appends to a schema serialize on the global feed's
//! lock from drawing positions to commit, so a process appending one small batch per commit
//! tops out at a few thousand commits a second, and more concurrent appenders only queue on
//! the lock. Instead, small appends (below `append::COPY_THRESHOLD` events) that overlap
//! another go through one queue per store: a flusher takes whatever has queued up (at most `MAX_GROUP_CALLS` calls
//! and `MAX_GROUP_EVENTS` events) and sends it as one `append_many` statement. A lone caller
//! is sent at once, alone, on the usual path; under concurrency the calls that arrive while
//! a group is in flight form the next group. Each call keeps its own outcome: one call's
//! `ConcurrencyError` or duplicate id fails that call only (`append_many` undoes it in a
//! subtransaction).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::db::append::{self, Appended, EventColumns, GroupedAppend};
use crate::errors::{CoreError, CoreResult};
use crate::store::Store;

/// At most this many calls per group: each is a subtransaction, and past 64 of them
/// PostgreSQL's subtransaction cache overflows, which slows every other session's snapshots.
const MAX_GROUP_CALLS: usize = 64;
/// At most this many events per group (a group is one statement's arrays).
const MAX_GROUP_EVENTS: usize = 4096;
/// Groups in flight at once: one being committed while the next is sent keeps the server busy
/// without letting a burst of lone calls each take a connection.
const GROUPS_IN_FLIGHT: usize = 2;

struct Pending {
    stream: String,
    columns: Arc<EventColumns>,
    expected_version: Option<i64>,
    reply: oneshot::Sender<CoreResult<Appended>>,
}

/// The queue of one store's small appends.
pub struct GroupCommit {
    sender: mpsc::UnboundedSender<Pending>,
    /// Small appends under way in this store. A call that finds none runs at once on its own
    /// task, with no queue and no hop to the flusher: the latency of a lone caller is that of
    /// a plain append. Only calls that overlap another go through the queue.
    active: AtomicUsize,
}

/// Counts a small append under way for as long as it lives.
struct Active<'a>(&'a AtomicUsize);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GroupCommit {
    /// Starts the flusher (inside the runtime); it ends when the store is dropped.
    pub fn start(store: Weak<Store>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(flush(store, receiver));
        GroupCommit {
            sender,
            active: AtomicUsize::new(0),
        }
    }

    /// Appends, alone or in a group; the result is this call's alone.
    pub async fn append(
        &self,
        store: &Store,
        stream: String,
        columns: Arc<EventColumns>,
        expected_version: Option<i64>,
    ) -> CoreResult<Appended> {
        let alone_now = self.active.fetch_add(1, Ordering::AcqRel) == 0;
        let _active = Active(&self.active);
        if alone_now {
            let mut client = store.client().await?;
            let sql = &store.sql.append;
            return append::append(&mut client, sql, &stream, &columns, expected_version).await;
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending {
                stream,
                columns,
                expected_version,
                reply,
            })
            .map_err(|_| CoreError::Closed)?;
        answer.await.map_err(|_| CoreError::Closed)?
    }
}

async fn flush(store: Weak<Store>, mut receiver: mpsc::UnboundedReceiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    while let Some(first) = receiver.recv().await {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        // Everything that queued up while waiting for a free slot joins this group.
        let mut events = first.columns.ids.len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_CALLS && events < MAX_GROUP_EVENTS {
            match receiver.try_recv() {
                Ok(next) => {
                    events += next.columns.ids.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        // A caller cancelled before its turn: its append is not sent at all.
        group.retain(|pending| !pending.reply.is_closed());
        let Some(store) = store.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            run(&store, group).await;
            drop(permit);
        });
    }
}

async fn run(store: &Store, group: Vec<Pending>) {
    match group.len() {
        0 => {}
        1 => {
            let [only] = <[Pending; 1]>::try_from(group).ok().expect("one call");
            let result = alone(store, &only).await;
            let _ = only.reply.send(result);
        }
        _ => match together(store, &group).await {
            Ok(results) => {
                for (pending, result) in group.into_iter().zip(results) {
                    let _ = pending.reply.send(result);
                }
            }
            // The group failed as a whole (a lost connection, a statement timeout): each call
            // is tried alone, so each gets its own precise outcome.
            Err(_) => {
                for pending in group {
                    let result = alone(store, &pending).await;
                    let _ = pending.reply.send(result);
                }
            }
        },
    }
}

async fn alone(store: &Store, pending: &Pending) -> CoreResult<Appended> {
    let mut client = store.client().await?;
    append::append(
        &mut client,
        &store.sql.append,
        &pending.stream,
        &pending.columns,
        pending.expected_version,
    )
    .await
}

async fn together(store: &Store, group: &[Pending]) -> CoreResult<Vec<CoreResult<Appended>>> {
    let client = store.client().await?;
    let appends: Vec<GroupedAppend<'_>> = group
        .iter()
        .map(|p| GroupedAppend {
            stream: &p.stream,
            columns: &p.columns,
            expected_version: p.expected_version,
        })
        .collect();
    append::append_many(&client, &store.sql.append, &appends).await
}
