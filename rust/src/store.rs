//! The state one `PostgresEventStore` shares across its calls: configuration, pool, the
//! statements for its schema and the LISTEN task; and `PooledConnection`, the connection a
//! call borrows from the pool.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use deadpool_postgres::{Object, Pool};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::CoreConfig;
use crate::db::connection::build_pool;
use crate::db::listener::Listener;
use crate::db::sql::Sql;
use crate::errors::{CoreError, CoreResult};
use crate::group_commit::GroupCommit;
use crate::{runtime, tls};

pub struct Store {
    pub config: CoreConfig,
    pub pool: Pool,
    pub sql: Sql,
    pub listener: Option<Arc<Listener>>,
    /// The queue small appends share transactions through (`group_commit`).
    pub group_commit: GroupCommit,
    /// For cancel requests, which open a connection of their own.
    tls: MakeRustlsConnect,
    /// The process that opened the pool: its connections are that process's sockets.
    pid: u32,
    closed: AtomicBool,
}

impl Store {
    /// Builds the store without connecting (must run inside the runtime: deadpool and the
    /// group commit's flusher spawn tasks).
    pub fn new(config: CoreConfig) -> CoreResult<Arc<Self>> {
        let pool = build_pool(&config)?;
        let sql = Sql::new(&config.schema_name);
        let listener = config
            .listen_notify
            .then(|| Listener::new(config.clone(), sql.notify_channel.clone()));
        let tls = tls::connector(&config)?;
        Ok(Arc::new_cyclic(|this: &Weak<Store>| Store {
            group_commit: GroupCommit::start(this.clone()),
            tls,
            config,
            pool,
            sql,
            listener,
            pid: std::process::id(),
            closed: AtomicBool::new(false),
        }))
    }

    /// Refuses a store used after `close()`, or in a process forked from the one that opened
    /// it (its connections are the parent's sockets, its tasks the parent's threads).
    pub fn check_usable(&self) -> CoreResult<()> {
        let pid = std::process::id();
        if pid != self.pid {
            return Err(CoreError::Forked {
                opened_in: self.pid,
                used_in: pid,
            });
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(CoreError::Closed);
        }
        Ok(())
    }

    pub async fn client(&self) -> CoreResult<PooledConnection> {
        self.check_usable()?;
        Ok(PooledConnection {
            object: Some(self.pool.get().await?),
            tls: self.tls.clone(),
        })
    }

    /// Opens `min_pool_size` connections (at least one, to fail fast on a bad DSN).
    pub async fn warm_up(&self) -> CoreResult<()> {
        let wanted = self.config.min_pool_size.max(1);
        let mut held = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            held.push(self.client().await?);
        }
        Ok(())
    }

    /// Stops the LISTEN task and closes the pool. In a forked child it only marks the store
    /// closed: the pool and the task belong to the parent's runtime and sockets.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if self.is_inherited() {
            return;
        }
        if let Some(listener) = &self.listener {
            listener.stop();
        }
        self.pool.close();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// True in a process other than the one that opened the store (after a fork).
    pub fn is_inherited(&self) -> bool {
        std::process::id() != self.pid
    }
}

impl Drop for Store {
    /// A store dropped without `close()` still stops its LISTEN task and its pool, so no
    /// backend outlives it.
    fn drop(&mut self) {
        self.close();
    }
}

/// A connection borrowed from the pool for one call.
///
/// Normally it goes back to the pool when dropped. But a call cancelled (or panicking) in
/// the middle of a statement leaves that statement running on the server. So when dropped
/// while `runtime::interrupted()`, it asks the server to cancel whatever it runs and closes
/// the connection instead of returning it. Closing, not reusing: a cancel request is
/// asynchronous (tokio-postgres returns once it is sent, and the server acts on it later),
/// so on a reused connection it could land on the next caller's statement. Cancellations
/// are rare; a new connection costs a few milliseconds once.
pub struct PooledConnection {
    object: Option<Object>,
    tls: MakeRustlsConnect,
}

impl Deref for PooledConnection {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.object
            .as_ref()
            .expect("a pooled connection is held until dropped")
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut Object {
        self.object
            .as_mut()
            .expect("a pooled connection is held until dropped")
    }
}

impl PooledConnection {
    /// Closes the connection instead of returning it to the pool: for one left inside an
    /// open transaction, which the server then rolls back.
    pub fn discard(mut self) {
        if let Some(object) = self.object.take() {
            drop(Object::take(object));
        }
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        if !runtime::interrupted() {
            return; // back to the pool
        }
        let cancel = object.cancel_token();
        // Out of the pool now, so nobody else is given it; closed once the cancel is sent.
        let connection = Object::take(object);
        let tls = self.tls.clone();
        // Dropped on a tokio thread (the bridge drops cancelled work there): spawn on it
        // directly rather than through runtime::runtime(), whose lock is for GIL holders.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(error) = cancel.cancel_query(tls).await {
                    log::debug!(target: "pgstreams", "pgstreams: could not cancel an abandoned statement: {error}");
                }
                drop(connection);
            });
        }
    }
}
