//! One LISTEN connection per store, shared by every waiting consumer. An enqueue sends one
//! NOTIFY per batch on the store's channel with the stream name as payload; this task wakes
//! the consumers waiting on that stream. If the connection drops it reconnects, and the
//! waiters' polling covers the gap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

use super::connection::connect_raw;
use crate::config::CoreConfig;

pub struct Listener {
    config: CoreConfig,
    channel: String,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    task: Mutex<Option<JoinHandle<()>>>,
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
            channel,
            waiters: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        })
    }

    /// The wake-up handle of `stream`, starting the LISTEN task on first use.
    pub fn subscribe(self: &Arc<Self>, stream: &str) -> Arc<Notify> {
        self.ensure_running();
        let mut waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        waiters
            .entry(stream.to_owned())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    fn wake(&self, stream: &str) {
        let waiters = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = waiters.get(stream) {
            notify.notify_waiters();
        }
    }

    fn ensure_running(self: &Arc<Self>) {
        let mut task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let listener = Arc::clone(self);
        *task = Some(tokio::spawn(async move { listener.run().await }));
    }

    async fn run(self: Arc<Self>) {
        loop {
            if let Err(error) = self.listen_once().await {
                log::warn!("pgstreams: LISTEN connection lost ({error}); waiting consumers poll until it is back");
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
                        log::debug!("pgstreams: LISTEN connection error: {error}");
                        break;
                    }
                }
            }
        }));
        client
            .batch_execute(&format!("LISTEN \"{}\"", self.channel))
            .await?;
        while let Some(stream) = receiver.recv().await {
            self.wake(&stream);
        }
        Ok(())
    }

    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}
