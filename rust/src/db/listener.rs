//! One LISTEN connection per store, shared by every waiting consumer.
//!
//! Every notification of a schema goes on one channel (`channel`), whatever it announces; its
//! payload says what, as `<kind>:<name>`: `q:<stream>` for an enqueue (or a requeue) on a
//! queue stream, `f:` for a transaction that appended to the global feed (a trigger of
//! migration 005). Waiters register on a payload (their key); this task wakes those waiting
//! on the payload that arrived. If the connection drops it reconnects, and the waiters'
//! polling covers the gap.
//!
//! The task starts with the first waiter and stops with the store (`stop`, called by
//! `Store::close` and by `Store`'s drop); once stopped it never starts again, so a call on a
//! closed store cannot open a LISTEN connection that nobody will close. A stream's entry in
//! the waiter map lives only while someone waits on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::connection::connect_raw;
use crate::config::CoreConfig;

/// The payload kind of a queue notification.
pub const QUEUE_KIND: &str = "q";
/// The payload of an append to the global feed (any stream).
pub const FEED_PAYLOAD: &str = "f:";

/// The key a waiter on a queue stream registers under.
pub fn queue_key(stream: &str) -> String {
    format!("{QUEUE_KIND}:{stream}")
}

/// A wake-up shared by the waiters of one key: `generation` counts the notifications, so a
/// waiter that read it before looking can tell whether one came while it looked.
#[derive(Default)]
pub struct Wakeup {
    notify: Notify,
    generation: AtomicU64,
}

impl Wakeup {
    fn wake(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A future that a later wake completes (`enable` it before looking, then await it).
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Waits until a notification newer than `seen` or `pause` has passed.
    pub async fn wait_past(&self, seen: u64, pause: Duration) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.generation() != seen {
            return;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// The channel of a schema's notifications. PostgreSQL truncates identifiers (channel names
/// included) to 63 bytes, so `pgstreams_<schema>` is used only while it fits; a longer schema
/// name gets `pgstreams:<first 36 bytes>:<16 hex digits of a hash of the whole name>`. The two
/// forms cannot meet (a schema name never contains ':'), and two long names share a channel
/// only if they share their first 36 bytes and a 64-bit hash.
pub fn channel(schema: &str) -> String {
    let plain = format!("pgstreams_{schema}");
    if plain.len() <= 63 {
        return plain;
    }
    // FNV-1a: stable across processes and releases (std's hasher is not).
    let hash = schema.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // Schema names are ASCII identifiers, so a byte prefix is a character prefix.
    format!("pgstreams:{}:{hash:016x}", &schema[..36])
}

/// A waiter's registration on one key: `wakeup` wakes it; dropping it deregisters.
pub struct Subscription {
    pub wakeup: Arc<Wakeup>,
    listener: Arc<Listener>,
    key: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiters = self
            .listener
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((_, count)) = waiters.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                waiters.remove(&self.key);
            }
        }
    }
}

struct State {
    task: Option<JoinHandle<()>>,
    stopped: bool,
}

pub struct Listener {
    config: CoreConfig,
    /// The process the store belongs to: a forked child must not start its LISTEN task.
    pid: u32,
    channel: String,
    /// Per key (a payload): its wake-up and how many subscriptions hold it.
    waiters: Mutex<HashMap<String, (Arc<Wakeup>, usize)>>,
    state: Mutex<State>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

const RECONNECT_DELAY: Duration = Duration::from_millis(500);

impl Listener {
    pub fn new(config: CoreConfig, channel: String) -> Arc<Self> {
        Arc::new(Listener {
            config,
            pid: std::process::id(),
            channel,
            waiters: Mutex::new(HashMap::new()),
            state: Mutex::new(State {
                task: None,
                stopped: false,
            }),
        })
    }

    /// Registers a waiter on `key` (`queue_key`, `FEED_PAYLOAD`), starting the LISTEN task on
    /// first use (unless stopped).
    pub fn subscribe(self: &Arc<Self>, key: &str) -> Subscription {
        self.ensure_running();
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        let (wakeup, count) = waiters.entry(key.to_owned()).or_default();
        *count += 1;
        Subscription {
            wakeup: Arc::clone(wakeup),
            listener: Arc::clone(self),
            key: key.to_owned(),
        }
    }

    /// How many keys have waiters now (the map holds nothing else).
    pub fn waited_streams(&self) -> usize {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn wake(&self, payload: &str) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        // Nobody waits on another program's payloads: they find no key.
        if let Some((wakeup, _)) = waiters.get(payload) {
            wakeup.wake();
        }
    }

    fn ensure_running(self: &Arc<Self>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let running = state.task.as_ref().is_some_and(|t| !t.is_finished());
        if state.stopped || running || std::process::id() != self.pid {
            return;
        }
        let listener = Arc::clone(self);
        state.task = Some(tokio::spawn(async move { listener.run().await }));
    }

    async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.listen_once().await {
                log::warn!(target: "pgstreams", "pgstreams: LISTEN connection lost ({error}); waiting consumers poll until it is back");
            }
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }

    async fn listen_once(&self) -> Result<(), crate::errors::CoreError> {
        let (client, mut connection) = connect_raw(&self.config, None).await?;
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        // Aborted when this function returns or is itself aborted (store closed), so the
        // LISTEN connection never outlives its store.
        let _driver = AbortOnDrop(tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if sender.send(n.payload().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        log::debug!(target: "pgstreams", "pgstreams: LISTEN connection error: {error}");
                        break;
                    }
                }
            }
        }));
        client
            .batch_execute(&format!("LISTEN \"{}\"", self.channel))
            .await?;
        while let Some(payload) = receiver.recv().await {
            self.wake(&payload);
        }
        Ok(())
    }

    /// Ends the LISTEN task for good: later subscriptions only poll.
    pub fn stop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stopped = true;
        if let Some(task) = state.task.take() {
            task.abort();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::channel;

    #[test]
    fn short_schema_names_keep_their_channel() {
        assert_eq!(channel("event_streaming"), "pgstreams_event_streaming");
        let longest = "s".repeat(53);
        assert_eq!(channel(&longest), format!("pgstreams_{longest}"));
    }

    #[test]
    fn long_schema_names_get_a_hashed_channel_that_fits() {
        let a = format!("{}a", "x".repeat(62));
        let b = format!("{}b", "x".repeat(62));
        for name in [&a, &b, &"y".repeat(54)] {
            assert!(channel(name).len() <= 63, "{}", channel(name));
        }
        assert_ne!(channel(&a), channel(&b));
        assert_eq!(channel(&a), channel(&a));
    }
}
