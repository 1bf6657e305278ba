//! `FeedFollower`: how `read_all(follow=True)` waits for the next append once caught up.
//! It registers with the store's LISTEN task for the feed's notification (one per appending
//! transaction, a trigger of migration 005) and polls as a fallback, faster when the store
//! does not LISTEN.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::db::listener::{Subscription, FEED_PAYLOAD};
use crate::py::bridge;
use crate::runtime;
use crate::store::Store;

const POLL_WITH_NOTIFY: Duration = Duration::from_millis(250);
const POLL_WITHOUT_NOTIFY: Duration = Duration::from_millis(50);

#[pyclass(frozen, module = "pgstreams._core")]
pub struct FeedFollower {
    subscription: Option<Subscription>,
}

impl FeedFollower {
    /// Registers for the feed's notification (unless the store does not LISTEN).
    pub fn new(store: &Arc<Store>) -> Self {
        let runtime = runtime::runtime();
        let _inside = runtime.enter(); // the LISTEN task may start here
        FeedFollower {
            subscription: store.listener.as_ref().map(|l| l.subscribe(FEED_PAYLOAD)),
        }
    }
}

#[pymethods]
impl FeedFollower {
    /// How many feed notifications arrived so far: read it before looking.
    fn generation(&self) -> u64 {
        self.subscription
            .as_ref()
            .map_or(0, |s| s.wakeup.generation())
    }

    /// Waits until a notification newer than `seen` arrives, or the polling interval passes.
    fn wait<'py>(&self, py: Python<'py>, seen: u64) -> PyResult<Bound<'py, PyAny>> {
        let wakeup = self.subscription.as_ref().map(|s| Arc::clone(&s.wakeup));
        bridge::awaitable(py, async move {
            match wakeup {
                Some(wakeup) => wakeup.wait_past(seen, POLL_WITH_NOTIFY).await,
                None => tokio::time::sleep(POLL_WITHOUT_NOTIFY).await,
            }
            Ok(())
        })
    }
}

/// The channel of a schema's notifications (`db::listener::channel`), for the migrator: the
/// feed's trigger (migration 005) notifies on it.
#[pyfunction]
pub fn notify_channel(schema: &str) -> PyResult<String> {
    crate::config::validate_identifier(schema)?;
    Ok(crate::db::listener::channel(schema))
}
