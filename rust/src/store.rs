//! The state one `PostgresEventStore` shares across its calls: configuration, pool, the
//! statements for its schema and the LISTEN task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::config::CoreConfig;
use crate::db::connection::build_pool;
use crate::db::listener::Listener;
use crate::db::sql::Sql;
use crate::errors::{CoreError, CoreResult};

pub struct Store {
    pub config: CoreConfig,
    pub pool: Pool,
    pub sql: Sql,
    pub listener: Option<Arc<Listener>>,
    closed: AtomicBool,
}

impl Store {
    /// Builds the store without connecting (must run inside the runtime: deadpool spawns).
    pub fn new(config: CoreConfig) -> CoreResult<Self> {
        let pool = build_pool(&config)?;
        let sql = Sql::new(&config.schema_name);
        let listener = config
            .listen_notify
            .then(|| Listener::new(config.clone(), sql.notify_channel.clone()));
        Ok(Store {
            config,
            pool,
            sql,
            listener,
            closed: AtomicBool::new(false),
        })
    }

    pub async fn client(&self) -> CoreResult<deadpool_postgres::Client> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CoreError::Closed);
        }
        Ok(self.pool.get().await?)
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

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(listener) = &self.listener {
            listener.stop();
        }
        self.pool.close();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
